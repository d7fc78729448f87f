/* empty: everything the kernel files need is in kernel_env.h (force-included) */
