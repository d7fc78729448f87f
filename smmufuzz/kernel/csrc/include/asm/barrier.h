/* empty: barriers are in kernel_env.h (force-included) */
