/* empty: what the tree's bitfield.h and arm-smmu-v3.h need is in kernel_env.h and driver_env.h */
