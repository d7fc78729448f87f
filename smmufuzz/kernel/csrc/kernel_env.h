/* kernel_env.h: the user-space stand-in for the kernel environment that drivers/iommu/io-pgtable*.c
 * and include/linux/{iommu,io-pgtable}.h expect.  Force-included (-include) into every kernel
 * translation unit; the headers under include/linux and include/asm are empty so that the real
 * kernel headers' includes resolve here.  A header that is missing from include/ shows up as a
 * compile error naming it (smmufuzz reports which).  Everything the kernel would get from the
 * machine (pages, the DMA API, WARN, TLB maintenance) goes to the host (Python) through the hooks
 * in struct kc_host, for the context (one emulated machine) that is current. */
#ifndef SMMUFUZZ_KERNEL_ENV_H
#define SMMUFUZZ_KERNEL_ENV_H
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>
#include <limits.h>

/* ---- compiler attributes ------------------------------------------------------------------- */
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define noinline __attribute__((noinline))
#define __init
#define __initdata
#define __initconst
#define __exit
#define __user
#define __iomem
#define __rcu
#define __force
#define __bitwise
#define __must_check
#define __maybe_unused __attribute__((unused))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define __packed __attribute__((packed))
#define __aligned(x) __attribute__((aligned(x)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define fallthrough __attribute__((__fallthrough__))
#define __counted_by(m)
#define __stringify_1(x) #x
#define __stringify(x) __stringify_1(x)
#define IS_ENABLED(option) __kc_is_defined(option)
#define __kc_is_defined(x) __kc_is_defined2(x)
#define __kc_is_defined2(val) __kc_is_defined3(__KC_PLACEHOLDER_##val)
#define __KC_PLACEHOLDER_1 0,
#define __kc_is_defined3(arg) __kc_second(arg 1, 0)
#define __kc_second(ignored, val, ...) val
#define EXPORT_SYMBOL(x)
#define EXPORT_SYMBOL_GPL(x)
#define subsys_initcall(x)
#define module_init(x)
#define MODULE_LICENSE(x)
#define MODULE_DESCRIPTION(x)
#define BUILD_BUG_ON(c) _Static_assert(!(c), "BUILD_BUG_ON: " #c)
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) do { *(volatile __typeof__(x) *)&(x) = (v); } while (0)
#define barrier() __asm__ __volatile__("" ::: "memory")
#define mb() __sync_synchronize()
#define rmb() __sync_synchronize()
#define wmb() kc_barrier(1)          /* the SMMU observes every store so far (reference/store_order.py) */
#define dma_wmb() kc_barrier(0)      /* ... every store so far before any later one */
#define dma_rmb() __sync_synchronize()
#define smp_mb() __sync_synchronize()
#define smp_wmb() __sync_synchronize()
#define smp_rmb() __sync_synchronize()
#define cmpxchg(p, o, n) __sync_val_compare_and_swap((p), (o), (n))
#define cmpxchg_relaxed(p, o, n) __sync_val_compare_and_swap((p), (o), (n))
#define cmpxchg64(p, o, n) __sync_val_compare_and_swap((p), (o), (n))
#define cmpxchg64_relaxed(p, o, n) __sync_val_compare_and_swap((p), (o), (n))
#define xchg(p, v) __sync_lock_test_and_set((p), (v))

/* ---- types ----------------------------------------------------------------------------------- */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef u16 __le16;
typedef u32 __le32;
typedef u64 __le64;
typedef u64 __u64;
typedef u32 __u32;
typedef u16 __u16;
typedef u8 __u8;
typedef long ssize_t;
typedef u64 phys_addr_t;
typedef u64 dma_addr_t;
typedef unsigned int gfp_t;
typedef u32 ioasid_t;
typedef struct { int counter; } atomic_t;
typedef struct { long counter; } atomic64_t;
typedef struct { int locked; } spinlock_t;
typedef struct { int refs; } refcount_t;
struct list_head { struct list_head *next, *prev; };
struct mutex { int locked; };
struct kref { int refs; };
struct rcu_head { void *next; };
struct work_struct { int pending; };

/* ---- bits and arithmetic -------------------------------------------------------------------- */
#define BITS_PER_LONG 64
#define BIT(n) (1UL << (n))
#define BIT_ULL(n) (1ULL << (n))
#define GENMASK(h, l) (((~0UL) - (1UL << (l)) + 1) & (~0UL >> (BITS_PER_LONG - 1 - (h))))
#define GENMASK_ULL(h, l) (((~0ULL) - (1ULL << (l)) + 1) & (~0ULL >> (63 - (h))))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ALIGN(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define min(a, b) ({ __typeof__(a) _ka = (a); __typeof__(b) _kb = (b); _ka < _kb ? _ka : _kb; })
#define max(a, b) ({ __typeof__(a) _ka = (a); __typeof__(b) _kb = (b); _ka > _kb ? _ka : _kb; })
#define min_t(t, a, b) ({ t _ka = (a); t _kb = (b); _ka < _kb ? _ka : _kb; })
#define max_t(t, a, b) ({ t _ka = (a); t _kb = (b); _ka > _kb ? _ka : _kb; })
#define ilog2(n) ((int)(63 - __builtin_clzll((unsigned long long)(n))))
#define is_power_of_2(n) ((n) != 0 && (((n) & ((n) - 1)) == 0))
static inline unsigned long __ffs(unsigned long x) { return __builtin_ctzl(x); }
static inline unsigned long __fls(unsigned long x) { return 63 - __builtin_clzl(x); }
static inline int fls(unsigned int x) { return x ? 32 - __builtin_clz(x) : 0; }
static inline int fls64(u64 x) { return x ? 64 - __builtin_clzll(x) : 0; }
static inline void set_bit(long nr, volatile unsigned long *a) { a[nr / 64] |= 1UL << (nr % 64); }
static inline void clear_bit(long nr, volatile unsigned long *a) { a[nr / 64] &= ~(1UL << (nr % 64)); }
static inline bool test_bit(long nr, const volatile unsigned long *a) { return (a[nr / 64] >> (nr % 64)) & 1; }
#define SZ_1K 0x400UL
#define SZ_4K 0x1000UL
#define SZ_16K 0x4000UL
#define SZ_64K 0x10000UL
#define SZ_1M 0x100000UL
#define SZ_2M 0x200000UL
#define SZ_32M 0x2000000UL
#define SZ_512M 0x20000000UL
#define SZ_1G 0x40000000UL
#define U64_MAX UINT64_MAX
#define U32_MAX UINT32_MAX

/* ---- errors ---------------------------------------------------------------------------------- */
#define EPERM 1
#define ENOENT 2
#define EIO 5
#define E2BIG 7
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28
#define ERANGE 34
#define EOPNOTSUPP 95
#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) unlikely((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)
static inline void *ERR_PTR(long e) { return (void *)e; }
static inline long PTR_ERR(const void *p) { return (long)p; }
static inline bool IS_ERR(const void *p) { return IS_ERR_VALUE((unsigned long)p); }
static inline bool IS_ERR_OR_NULL(const void *p) { return !p || IS_ERR(p); }

/* ---- the host: one emulated machine per context ------------------------------------------------ */
struct kc_host {
	u64 (*alloc_pages)(u64 host, u64 size);                  /* physical address, 0 on failure */
	void (*free_pages)(u64 host, u64 phys, u64 size);
	void (*dma_sync)(u64 host, u64 phys, u64 size, int what); /* 0 map_single, 1 sync_for_device, 2 unmap */
	void (*warn)(u64 host, const char *file, int line, const char *cond);
	void (*flush_all)(u64 host, u64 cookie);
	void (*flush_walk)(u64 host, u64 cookie, u64 iova, u64 size, u64 granule);
	void (*add_page)(u64 host, u64 cookie, u64 gather, u64 iova, u64 granule);
	void (*store_barrier)(u64 host, int complete);                 /* dma_wmb() 0, wmb() 1 */
};
struct page { struct list_head lru; unsigned long private; };
struct kc_ctx {
	u64 host;                 /* the host's id for this machine */
	u64 phys_base, size;      /* the physical range the arena stands for */
	char *virt;               /* its mapping */
	char *shadow;             /* what the host last saw of each live page */
	unsigned char *live;      /* per 4K page: allocated and tracked */
	struct page *vmemmap;     /* struct page per 4K page */
	u64 lo, hi;               /* live pages lie in [lo, hi) (physical) */
};
extern struct kc_host kc_host;
extern struct kc_ctx *kc_cur;
void kc_warn(const char *file, int line, const char *cond);
void kc_bug(const char *file, int line, const char *cond) __attribute__((noreturn));

#define WARN_ON(c) ({ bool __kc_c = !!(c); if (unlikely(__kc_c)) kc_warn(__FILE__, __LINE__, #c); unlikely(__kc_c); })
#define WARN_ON_ONCE(c) WARN_ON(c)
#define WARN(c, ...) WARN_ON(c)
#define WARN_ONCE(c, ...) WARN_ON(c)
#define BUG_ON(c) do { if (unlikely(c)) kc_bug(__FILE__, __LINE__, #c); } while (0)
#define BUG() kc_bug(__FILE__, __LINE__, "BUG()")
#define VM_BUG_ON(c) BUG_ON(c)
#define pr_err(...) ((void)0)
#define pr_warn(...) ((void)0)
#define pr_info(...) ((void)0)
#define pr_debug(...) ((void)0)
#define dev_err(d, ...) ((void)0)
#define dev_warn(d, ...) ((void)0)
#define dev_info(d, ...) ((void)0)
#define might_sleep() ((void)0)
#define lockdep_assert_held(l) ((void)0)

/* ---- memory: physical [phys_base, +size) of the current context is its arena ------------------- */
#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define NUMA_NO_NODE (-1)
#define GFP_KERNEL 0x1u
#define GFP_ATOMIC 0x2u
#define __GFP_ZERO 0x100u
#define __GFP_HIGHMEM 0x200u
#define __GFP_NOWARN 0x400u
#define GFP_KERNEL_ACCOUNT GFP_KERNEL
static inline phys_addr_t virt_to_phys(const volatile void *v)
{ return (u64)((const char *)v - kc_cur->virt) + kc_cur->phys_base; }
static inline void *phys_to_virt(phys_addr_t p) { return kc_cur->virt + (p - kc_cur->phys_base); }
#define __pa(v) virt_to_phys((void *)(v))
#define __va(p) phys_to_virt((phys_addr_t)(p))
static inline struct page *virt_to_page(const void *v)
{ return &kc_cur->vmemmap[(virt_to_phys(v) - kc_cur->phys_base) >> PAGE_SHIFT]; }
static inline void *page_address(const struct page *pg)
{ return phys_to_virt(kc_cur->phys_base + ((u64)(pg - kc_cur->vmemmap) << PAGE_SHIFT)); }
static inline int get_order(unsigned long size)
{ int o = 0; size = (size - 1) >> PAGE_SHIFT; while (size) { o++; size >>= 1; } return o; }
struct page *alloc_pages_node(int nid, gfp_t gfp, unsigned int order);
static inline struct page *alloc_pages(gfp_t gfp, unsigned int order) { return alloc_pages_node(NUMA_NO_NODE, gfp, order); }
void __free_pages(struct page *pg, unsigned int order);
static inline void put_page(struct page *pg) { __free_pages(pg, 0); }
enum node_stat_item { NR_IOMMU_PAGES, NR_SECONDARY_PAGETABLE };
static inline void *page_pgdat(struct page *pg) { (void)pg; return NULL; }
#define mod_node_page_state(pgdat, item, n) ((void)(pgdat), (void)(n))
#define mod_lruvec_page_state(pg, item, n) ((void)(pg), (void)(n))
static inline void *kmalloc(size_t n, gfp_t g) { (void)g; return malloc(n); }
static inline void *kzalloc(size_t n, gfp_t g) { (void)g; return calloc(1, n); }
static inline void *kcalloc(size_t k, size_t n, gfp_t g) { (void)g; return calloc(k, n); }
static inline void kfree(const void *p) { free((void *)p); }
static inline bool list_empty(const struct list_head *h) { return h->next == h; }
static inline void INIT_LIST_HEAD(struct list_head *h) { h->next = h; h->prev = h; }
static inline void list_add_tail(struct list_head *e, struct list_head *h)
{ e->prev = h->prev; e->next = h; h->prev->next = e; h->prev = e; }
static inline void list_del(struct list_head *e) { e->prev->next = e->next; e->next->prev = e->prev; }
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define LIST_HEAD_INIT(name) { &(name), &(name) }
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)

/* ---- devices and the DMA API: cache maintenance goes to the host -------------------------------- */
struct dev_iommu;
struct device { struct dev_iommu *iommu; int numa_node; };
struct bus_type;
struct fwnode_handle;
static inline int dev_to_node(struct device *d) { return d ? d->numa_node : NUMA_NO_NODE; }
enum dma_data_direction { DMA_BIDIRECTIONAL = 0, DMA_TO_DEVICE = 1, DMA_FROM_DEVICE = 2, DMA_NONE = 3 };
void kc_dma(u64 phys, u64 size, int what);
void kc_barrier(int complete);
static inline dma_addr_t dma_map_single(struct device *d, void *p, size_t sz, enum dma_data_direction dir)
{ (void)d; (void)dir; kc_dma(virt_to_phys(p), sz, 0); return virt_to_phys(p); }
static inline void dma_unmap_single(struct device *d, dma_addr_t a, size_t sz, enum dma_data_direction dir)
{ (void)d; (void)dir; kc_dma(a, sz, 2); }
static inline int dma_mapping_error(struct device *d, dma_addr_t a) { (void)d; (void)a; return 0; }
static inline void dma_sync_single_for_device(struct device *d, dma_addr_t a, size_t sz, enum dma_data_direction dir)
{ (void)d; (void)dir; kc_dma(a, sz, 1); }

/* ---- names include/linux/iommu.h and io-pgtable.h refer to ------------------------------------------ */
struct scatterlist;
struct sg_table { struct scatterlist *sgl; unsigned int nents, orig_nents; };
struct of_phandle_args; struct iova_bitmap; struct notifier_block; struct mm_struct; struct msi_desc;
struct msi_msg; struct pci_dev; struct kobject; struct attribute_group; struct module; struct seq_file;
struct iommu_user_data_array; struct iommufd_ctx; struct iommufd_viommu; struct iommu_group;
struct iommu_sva; struct iopf_queue; struct iommu_ops;
static inline void iova_bitmap_set(struct iova_bitmap *b, unsigned long iova, size_t len)
{ (void)b; (void)iova; (void)len; }
static inline unsigned long copy_struct_from_user(void *dst, size_t ksize, const void *src, size_t usize)
{ (void)dst; (void)ksize; (void)src; (void)usize; return -EFAULT; }
static inline unsigned long copy_from_user(void *to, const void *from, unsigned long n) { (void)to; (void)from; return n; }
static inline unsigned long clear_user(void *to, unsigned long n) { (void)to; return n; }
#define u64_to_user_ptr(x) ((void *)(uintptr_t)(x))
static inline void *dev_get_drvdata(const struct device *d) { (void)d; return NULL; }
#endif
