/* driver_env.h: what drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h and the invalidation path extracted from
 * arm-smmu-v3.c (arm_smmu_v3_gen.c) need beyond kernel_env.h: the build-time checks of the tree's
 * include/linux/bitfield.h, byte order (little-endian), the locking and list primitives as the
 * single-threaded host runs them, and opaque stand-ins for the types the header only points to. */
#ifndef SMMUFUZZ_DRIVER_ENV_H
#define SMMUFUZZ_DRIVER_ENV_H

/* ---- include/linux/bitfield.h's needs ------------------------------------------------------- */
#define BUILD_BUG_ON_MSG(c, msg) ((void)sizeof(char[1 - 2 * !!(c)]))
#define BUILD_BUG_ON_ZERO(e) ((int)(sizeof(struct { int:(-!!(e)); })))
#define __BUILD_BUG_ON_NOT_POWER_OF_2(n) BUILD_BUG_ON_MSG(((n) & ((n) - 1)) != 0, "not a power of 2")
#define __compiletime_error(msg)
#define typecheck_pointer(x) ((void)(x))
/* a little-endian kernel defines __LITTLE_ENDIAN only; glibc's <endian.h> defines both as byte-order constants,
 * and the tree tests `#ifdef __BIG_ENDIAN` (arm_smmu_make_s2_domain_ste() sets STRTAB_STE_2_S2ENDI under it) */
#undef __BIG_ENDIAN
typedef u16 __be16;
typedef u32 __be32;
typedef u64 __be64;
#define cpu_to_le16(x) ((u16)(x))
#define cpu_to_le32(x) ((u32)(x))
#define cpu_to_le64(x) ((u64)(x))
#define le16_to_cpu(x) ((u16)(x))
#define le32_to_cpu(x) ((u32)(x))
#define le64_to_cpu(x) ((u64)(x))
#define cpu_to_be16(x) __builtin_bswap16(x)
#define cpu_to_be32(x) __builtin_bswap32(x)
#define cpu_to_be64(x) __builtin_bswap64(x)
#define be16_to_cpu(x) __builtin_bswap16(x)
#define be32_to_cpu(x) __builtin_bswap32(x)
#define be64_to_cpu(x) __builtin_bswap64(x)

/* ---- atomics, locks, lists: one host thread runs the C at a time ------------------------------ */
typedef struct { long counter; } atomic_long_t;
#define atomic_read(v) READ_ONCE((v)->counter)
#define atomic_set(v, i) WRITE_ONCE((v)->counter, (i))
#define atomic_inc(v) ((void)((v)->counter++))
#define atomic_dec(v) ((void)((v)->counter--))
typedef struct { int locked; } rwlock_t;
#define spin_lock_irqsave(l, f) ((void)(l), (f) = 0)
#define spin_unlock_irqrestore(l, f) ((void)(l), (void)(f))
#define spin_lock(l) ((void)(l))
#define spin_unlock(l) ((void)(l))
#define local_irq_save(f) ((f) = 0)
#define local_irq_restore(f) ((void)(f))
#define hweight8(w) __builtin_popcount((u8)(w))
#define ffs(x) __builtin_ffs(x)
#define VISIBLE_IF_KUNIT                /* the STE writer's helpers: global, as with CONFIG_KUNIT */
#define fls_long(x) ((x) ? (unsigned long)(64 - __builtin_clzl((unsigned long)(x))) : 0UL)
#define list_for_each_entry(pos, head, member)						\
	for (pos = list_entry((head)->next, __typeof__(*pos), member); &pos->member != (head);	\
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))

/* ---- what arm-smmu-v3.h names or embeds, never used on the invalidation path ------------------- */
struct mmu_notifier { void *ops; };
struct ida { int unused; };
struct rb_root { void *rb_node; };
struct rb_node { void *parent; void *left, *right; };
struct xarray { void *head; };
struct dentry;
struct platform_device;
struct acpi_iort_node;
struct iommufd_viommu;
struct iopf_fault;
struct iommu_page_response;
struct tegra241_cmdqv;
#define MAX_ORDER 10
#define SMP_CACHE_BYTES 64
typedef s64 ktime_t;
#define dev_name(d) "smmu"

/* ---- what arm_smmu_domain_finalise() reads ------------------------------------------------------ */
#define IOMMU_HWPT_ALLOC_DIRTY_TRACKING (1 << 1)   /* include/uapi/linux/iommufd.h */
#define VA_BITS 48      /* arm64's CONFIG_ARM64_VA_BITS; only pgtbl_cfg.ias reads it, which the host does not take */
#endif
