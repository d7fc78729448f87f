/* glue.c: the runtime behind kernel_env.h and a flat C API (for ctypes) around the kernel's
 * io_pgtable_ops (drivers/iommu/io-pgtable.c: alloc_io_pgtable_ops / free_io_pgtable_ops).
 *
 * A context is one emulated machine: an arena standing for the physical range the emulator's page
 * allocator hands out, a struct page per 4K page, and a shadow copy of every live page so the host
 * learns exactly which 64-bit words the kernel code stored since it last looked (kc_collect).
 * Kernel code runs inside a guard: a fault (SIGSEGV, SIGBUS, ...) or BUG() in it returns to the
 * entry point with KC_CRASHED and the faulting pc and call chain, instead of killing the process. */

#include <dlfcn.h>
#include <execinfo.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <linux/io-pgtable.h>

#define KC_CRASHED (-100000)
#define KC_MAX_FRAMES 256          /* the guards of every library loaded before this one may be on the stack */

struct kc_host kc_host;
struct kc_ctx *kc_cur;
unsigned long kc_warn_count;

/* ---- the crash guard ---------------------------------------------------------------------- */
static sigjmp_buf kc_jmp;
static volatile int kc_in_kernel;
static struct sigaction kc_old[32];
static int kc_crash_sig;
static u64 kc_crash_addr;
static char kc_crash_what[160];
static void *kc_crash_frames[KC_MAX_FRAMES];
static int kc_crash_nframes;
static char kc_altstack[1 << 16];

static void kc_on_fault(int sig, siginfo_t *si, void *uc)
{
	if (!kc_in_kernel) {             /* not ours: hand it to whoever was there before */
		/* by a call, not by re-raising: each library loaded installs its guard over the previous one, and
		 * a chain of re-raised signals nests a signal frame per library on the one alternate stack (and
		 * left every guard above the one that handled it uninstalled) */
		struct sigaction *o = &kc_old[sig];
		if ((o->sa_flags & SA_SIGINFO) && o->sa_sigaction) {
			o->sa_sigaction(sig, si, uc);
			return;
		}
		if (!(o->sa_flags & SA_SIGINFO) && o->sa_handler != SIG_DFL) {
			if (o->sa_handler != SIG_IGN)
				o->sa_handler(sig);
			return;
		}
		sigaction(sig, o, NULL);     /* the default action */
		raise(sig);
		return;
	}
	kc_in_kernel = 0;
	kc_crash_sig = sig;
	kc_crash_addr = (u64)(uintptr_t)si->si_addr;
	snprintf(kc_crash_what, sizeof(kc_crash_what), "%s at address 0x%llx",
		 sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" :
		 sig == SIGILL ? "SIGILL" : "signal", (unsigned long long)kc_crash_addr);
	kc_crash_nframes = backtrace(kc_crash_frames, KC_MAX_FRAMES);
	siglongjmp(kc_jmp, 1);
}

static void kc_install_guard(void)
{
	static int done;
	stack_t ss = { .ss_sp = kc_altstack, .ss_size = sizeof(kc_altstack) };
	struct sigaction sa;
	int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };
	if (done)
		return;
	done = 1;
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kc_on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, &kc_old[sigs[i]]);
}

void kc_bug(const char *file, int line, const char *cond)
{
	if (!kc_in_kernel)
		abort();
	kc_in_kernel = 0;
	kc_crash_sig = 0;
	kc_crash_addr = 0;
	snprintf(kc_crash_what, sizeof(kc_crash_what), "BUG at %s:%d: %s", file, line, cond);
	kc_crash_nframes = backtrace(kc_crash_frames, KC_MAX_FRAMES);
	siglongjmp(kc_jmp, 1);
}

/* Run kernel code: set the context, arm the guard; evaluates to KC_CRASHED after a fault.  Nests
 * (a hook may call back into kernel code): the outer context, guard and jump buffer are restored. */
#define KC_KERNEL(ctx, result, call) do {				\
	struct kc_ctx *__kc_prev = kc_cur;				\
	int __kc_was = kc_in_kernel;					\
	sigjmp_buf __kc_outer;						\
	memcpy(__kc_outer, kc_jmp, sizeof(sigjmp_buf));			\
	kc_cur = (ctx);							\
	if (sigsetjmp(kc_jmp, 1)) {					\
		(result) = KC_CRASHED;					\
	} else {							\
		kc_in_kernel = 1;					\
		call;							\
	}								\
	kc_in_kernel = __kc_was;					\
	memcpy(kc_jmp, __kc_outer, sizeof(sigjmp_buf));			\
	kc_cur = __kc_prev;						\
} while (0)

/* While the host runs (a hook), a fault is not the kernel's. */
#define KC_HOST(call) do { int __kc_k = kc_in_kernel; kc_in_kernel = 0; call; kc_in_kernel = __kc_k; } while (0)

/* Run fn(arg) as kernel code outside any machine (no arena: code that needs no pages, such as the
 * core's gather helpers): 0, or KC_CRASHED after a fault or BUG(). */
long kc_run(void (*fn)(void *), void *arg)
{
	long r = 0;
	kc_install_guard();
	KC_KERNEL(NULL, r, fn(arg));
	return r;
}

/* A hook of core.c calls the host: faults there are not the kernel's (KC_HOST, as a function). */
int kc_host_enter(void) { int was = kc_in_kernel; kc_in_kernel = 0; return was; }
void kc_host_leave(int was) { kc_in_kernel = was; }

unsigned long kc_warns(void) { return kc_warn_count; }

const char *kc_crash_text(void) { return kc_crash_what; }
int kc_crash_frame_count(void) { return kc_crash_nframes; }
/* Frame i as (object base, pc): the host turns these into function and line with addr2line. */
u64 kc_crash_frame(int i, u64 *base)
{
	Dl_info di;
	u64 pc = (u64)(uintptr_t)kc_crash_frames[i];
	*base = 0;
	if (dladdr(kc_crash_frames[i], &di) && di.dli_fbase)
		*base = (u64)(uintptr_t)di.dli_fbase;
	return pc;
}
const char *kc_crash_frame_object(int i)
{
	Dl_info di;
	if (dladdr(kc_crash_frames[i], &di) && di.dli_fname)
		return di.dli_fname;
	return "";
}

/* ---- kernel environment ------------------------------------------------------------------- */
void kc_warn(const char *file, int line, const char *cond)
{
	kc_warn_count++;
	if (kc_host.warn && kc_cur)        /* outside a machine (kc_run) a WARN is only counted */
		KC_HOST(kc_host.warn(kc_cur->host, file, line, cond));
}

void kc_dma(u64 phys, u64 size, int what)
{
	if (kc_host.dma_sync)
		KC_HOST(kc_host.dma_sync(kc_cur->host, phys, size, what));
}

void kc_barrier(int complete)
{
	__sync_synchronize();
	if (kc_host.store_barrier && kc_cur)
		KC_HOST(kc_host.store_barrier(kc_cur->host, complete));
}

struct page *alloc_pages_node(int nid, gfp_t gfp, unsigned int order)
{
	struct kc_ctx *c = kc_cur;
	u64 size = PAGE_SIZE << order, pa = 0, off;
	(void)nid;
	if (kc_host.alloc_pages)
		KC_HOST(pa = kc_host.alloc_pages(c->host, size));
	if (!pa || pa < c->phys_base || pa + size > c->phys_base + c->size || (pa & (size - 1)))
		return NULL;
	off = pa - c->phys_base;
	memset(c->virt + off, 0, size);      /* the host's page allocator zeroes (GFP_ZERO or not) */
	memset(c->shadow + off, 0, size);
	for (u64 p = off >> PAGE_SHIFT; p < (off + size) >> PAGE_SHIFT; p++)
		c->live[p] = 1;
	if (!c->hi || pa < c->lo)
		c->lo = pa;
	if (pa + size > c->hi)
		c->hi = pa + size;
	return &c->vmemmap[off >> PAGE_SHIFT];
}

void __free_pages(struct page *pg, unsigned int order)
{
	struct kc_ctx *c = kc_cur;
	u64 off = (u64)(pg - c->vmemmap) << PAGE_SHIFT, size = PAGE_SIZE << order;
	if (kc_host.free_pages)
		KC_HOST(kc_host.free_pages(c->host, c->phys_base + off, size));
	for (u64 p = off >> PAGE_SHIFT; p < (off + size) >> PAGE_SHIFT; p++)
		c->live[p] = 0;
}

/* ---- contexts ----------------------------------------------------------------------------- */
static u64 *kc_changes;
static u64 kc_changes_cap;

struct kc_ctx *kc_ctx_new(u64 host, u64 phys_base, u64 size)
{
	struct kc_ctx *c = calloc(1, sizeof(*c));
	int prot = PROT_READ | PROT_WRITE, fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	kc_install_guard();
	c->host = host;
	c->phys_base = phys_base;
	c->size = size;
	c->virt = mmap(NULL, size, prot, fl, -1, 0);
	c->shadow = mmap(NULL, size, prot, fl, -1, 0);
	c->live = calloc(size >> PAGE_SHIFT, 1);
	c->vmemmap = calloc(size >> PAGE_SHIFT, sizeof(struct page));
	if (c->virt == MAP_FAILED || c->shadow == MAP_FAILED || !c->live || !c->vmemmap)
		return NULL;
	return c;
}

/* Make a context new again for another machine (cheaper than a fresh one): forget the live pages,
 * give the whole arena and shadow memory back, so every page reads as zero again: also one that buggy
 * code stored to out of bounds, never allocated (else the next machine would read what it left there,
 * and a verdict would depend on which runs came before). Untouched pages cost madvise nothing. */
void kc_ctx_reset(struct kc_ctx *c, u64 host)
{
	madvise(c->virt, c->size, MADV_DONTNEED);
	madvise(c->shadow, c->size, MADV_DONTNEED);
	if (c->hi) {
		u64 lo = c->lo - c->phys_base, len = c->hi - c->lo;
		memset(c->live + (lo >> PAGE_SHIFT), 0, len >> PAGE_SHIFT);
		memset(c->vmemmap + (lo >> PAGE_SHIFT), 0, (len >> PAGE_SHIFT) * sizeof(struct page));
	}
	c->lo = c->hi = 0;
	c->host = host;
}

void kc_ctx_free(struct kc_ctx *c)
{
	if (!c)
		return;
	if (kc_cur == c)
		kc_cur = NULL;
	munmap(c->virt, c->size);
	munmap(c->shadow, c->size);
	free(c->live);
	free(c->vmemmap);
	free(c);
}

/* The 64-bit words of live pages stored since the last call, as (pa, value) pairs in
 * kc_changes_buf(); returns how many pairs.  Whole pages are compared with memcmp first. */
long kc_collect(struct kc_ctx *c)
{
	long n = 0;
	if (!c->hi)
		return 0;
	for (u64 pa = c->lo; pa < c->hi; pa += PAGE_SIZE) {
		u64 off = pa - c->phys_base;
		u64 *now, *was;
		if (!c->live[off >> PAGE_SHIFT] || !memcmp(c->virt + off, c->shadow + off, PAGE_SIZE))
			continue;
		now = (u64 *)(c->virt + off);
		was = (u64 *)(c->shadow + off);
		for (unsigned i = 0; i < PAGE_SIZE / 8; i++) {
			if (now[i] == was[i])
				continue;
			if ((u64)(2 * n + 2) > kc_changes_cap) {
				kc_changes_cap = kc_changes_cap ? 2 * kc_changes_cap : 1024;
				kc_changes = realloc(kc_changes, kc_changes_cap * sizeof(u64));
			}
			kc_changes[2 * n] = pa + 8 * i;
			kc_changes[2 * n + 1] = now[i];
			was[i] = now[i];
			n++;
		}
	}
	return n;
}
u64 *kc_changes_buf(void) { return kc_changes; }
u64 kc_read64(struct kc_ctx *c, u64 pa) { return *(u64 *)(c->virt + (pa - c->phys_base)); }

/* ---- io_pgtable_ops ------------------------------------------------------------------------ */
struct kc_pgtbl {
	struct kc_ctx *ctx;
	u64 cookie;
	struct io_pgtable_ops *ops;
	struct io_pgtable_cfg cfg;
	struct device dev;
	struct iommu_iotlb_gather gather;   /* the gather of an unmap whose caller's gather is on the host */
	struct iommu_iotlb_gather *cur;     /* the gather of the unmap in progress (&gather, or the core's) */
	u64 gather_token;
};

static void kc_t_flush_all(void *cookie)
{
	struct kc_pgtbl *t = cookie;
	if (kc_host.flush_all)
		KC_HOST(kc_host.flush_all(t->ctx->host, t->cookie));
}
static void kc_t_flush_walk(unsigned long iova, size_t size, size_t granule, void *cookie)
{
	struct kc_pgtbl *t = cookie;
	if (kc_host.flush_walk)
		KC_HOST(kc_host.flush_walk(t->ctx->host, t->cookie, iova, size, granule));
}
static void kc_t_add_page(struct iommu_iotlb_gather *g, unsigned long iova, size_t granule, void *cookie)
{
	struct kc_pgtbl *t = cookie;
	u64 token = g && g == t->cur ? t->gather_token : g ? (u64)-2 : 0;
	if (kc_host.add_page)
		KC_HOST(kc_host.add_page(t->ctx->host, t->cookie, token, iova, granule));
}
static const struct iommu_flush_ops kc_flush_ops = {
	.tlb_flush_all = kc_t_flush_all,
	.tlb_flush_walk = kc_t_flush_walk,
	.tlb_add_page = kc_t_add_page,
};

/* What this tree's headers offer (the build defines these from the tree it compiles). */
int kc_features(void)
{
	int f = 0;
#ifdef KC_HAVE_DEFER_SYNC_PTE
	f |= 1;
#endif
#ifdef KC_HAVE_OPS_SYNC_MAP
	f |= 2;
#endif
	return f;
}

/* alloc_io_pgtable_ops(); *err is 0, or KC_CRASHED, or -ENOMEM when the format refused. */
struct kc_pgtbl *kc_alloc(struct kc_ctx *ctx, int fmt, u64 pgsize_bitmap, unsigned ias, unsigned oas,
			  int coherent, u64 quirks, int defer_sync_pte, u64 cookie, long *err)
{
	struct kc_pgtbl *t = calloc(1, sizeof(*t));
	struct io_pgtable_ops *ops = NULL;
	long r = 0;
	t->ctx = ctx;
	t->cookie = cookie;
	t->dev.numa_node = NUMA_NO_NODE;
	t->cfg.pgsize_bitmap = pgsize_bitmap;
	t->cfg.ias = ias;
	t->cfg.oas = oas;
	t->cfg.quirks = quirks;
	t->cfg.coherent_walk = coherent;
	t->cfg.tlb = &kc_flush_ops;
	t->cfg.iommu_dev = &t->dev;
#ifdef KC_HAVE_DEFER_SYNC_PTE
	t->cfg.defer_sync_pte = defer_sync_pte;
#else
	(void)defer_sync_pte;
#endif
	KC_KERNEL(ctx, r, ops = alloc_io_pgtable_ops(fmt, &t->cfg, t));
	*err = r ? r : (ops ? 0 : -ENOMEM);
	if (!ops) {
		free(t);
		return NULL;
	}
	t->ops = ops;
	return t;
}

long kc_free(struct kc_pgtbl *t)
{
	long r = 0;
	KC_KERNEL(t->ctx, r, free_io_pgtable_ops(t->ops));
	free(t);
	return r;
}

u64 kc_pgsize_bitmap(struct kc_pgtbl *t) { return t->cfg.pgsize_bitmap; }
struct io_pgtable_ops *kc_pgtbl_ops(struct kc_pgtbl *t) { return t->ops; }
u64 kc_ttbr(struct kc_pgtbl *t, int s2) { return s2 ? t->cfg.arm_lpae_s2_cfg.vttbr : t->cfg.arm_lpae_s1_cfg.ttbr; }
unsigned kc_tsz(struct kc_pgtbl *t, int s2) { return s2 ? t->cfg.arm_lpae_s2_cfg.vtcr.tsz : t->cfg.arm_lpae_s1_cfg.tcr.tsz; }
unsigned kc_s2_sl(struct kc_pgtbl *t) { return t->cfg.arm_lpae_s2_cfg.vtcr.sl; }

long kc_map_pages(struct kc_pgtbl *t, u64 iova, u64 paddr, u64 pgsize, u64 pgcount, int prot, u64 *mapped)
{
	size_t m = 0;
	long r = 0;
	KC_KERNEL(t->ctx, r, r = t->ops->map_pages(t->ops, iova, paddr, pgsize, pgcount, prot, GFP_KERNEL, &m));
	*mapped = m;
	return r;
}

/* unmap_pages(); token 0 means a NULL gather, else the host's gather (queued as given). */
long kc_unmap_pages(struct kc_pgtbl *t, u64 iova, u64 pgsize, u64 pgcount, u64 token, int queued, u64 *unmapped)
{
	long r = 0;
	size_t u = 0;
	iommu_iotlb_gather_init(&t->gather);
	t->gather.queued = queued;
	t->gather_token = token;
	t->cur = &t->gather;
	KC_KERNEL(t->ctx, r, u = t->ops->unmap_pages(t->ops, iova, pgsize, pgcount, token ? &t->gather : NULL));
	*unmapped = u;
	return r;
}

/* unmap_pages() with a gather that is already C (the tree's core, csrc/core.c, handed it to the driver):
 * what io-pgtable writes into it stays there; its tlb_add_page reaches the host as `token`. */
long kc_unmap_pages_at(struct kc_pgtbl *t, u64 iova, u64 pgsize, u64 pgcount, struct iommu_iotlb_gather *g,
		       u64 token, u64 *unmapped)
{
	long r = 0;
	size_t u = 0;
	struct iommu_iotlb_gather *prev = t->cur;
	u64 prev_token = t->gather_token;
	t->cur = g;
	t->gather_token = token;
	KC_KERNEL(t->ctx, r, u = t->ops->unmap_pages(t->ops, iova, pgsize, pgcount, g));
	t->cur = prev;
	t->gather_token = prev_token;
	*unmapped = u;
	return r;
}

long kc_iova_to_phys(struct kc_pgtbl *t, u64 iova, u64 *pa)
{
	long r = 0;
	phys_addr_t p = 0;
	KC_KERNEL(t->ctx, r, p = t->ops->iova_to_phys(t->ops, iova));
	*pa = p;
	return r;
}

/* ops->iotlb_sync_map() where the tree has it (Daniel Mentz's seed-003 series); -EOPNOTSUPP if the
 * tree lacks the op, 1 if the format left it NULL. */
long kc_iotlb_sync_map(struct kc_pgtbl *t, u64 iova, u64 size, long *ret)
{
	long r = 0;
	*ret = 0;
#ifdef KC_HAVE_OPS_SYNC_MAP
	if (!t->ops->iotlb_sync_map)
		return 1;
	KC_KERNEL(t->ctx, r, *ret = t->ops->iotlb_sync_map(t->ops, iova, size));
	return r;
#else
	(void)t; (void)iova; (void)size;
	return -EOPNOTSUPP;
#endif
}
