/* core.c: the iommu core's map/unmap path of the tree (drivers/iommu/iommu.c: iommu_map, __iommu_map,
 * iommu_pgsize, iommu_unmap, iommu_unmap_fast, __iommu_unmap, iommu_map_sg, extracted by
 * kernel/ccore.py into the generated iommu_core_gen.c) over a struct iommu_domain whose ops call
 * the host's driver (Python, through struct kc_core_host), and one flat entry point for ctypes
 * (kc_core_op), run inside the crash guard (kc_run).  The gather the core hands the driver is the
 * tree's struct iommu_iotlb_gather; the host reads and writes it at the offsets kc_core_layout()
 * gives. */

#include <linux/iommu.h>
#include "core_env.h"
#include "iommu_core_gen.c"

#define KC_CORE_CRASHED (-100000)

long kc_run(void (*fn)(void *), void *arg);
int kc_host_enter(void);
void kc_host_leave(int was);

/* The driver's ops, on the host: dom is the host's id of the domain. */
struct kc_core_host {
	long (*map_pages)(u64 dom, u64 iova, u64 paddr, u64 pgsize, u64 pgcount, int prot, u64 *mapped);
	u64 (*unmap_pages)(u64 dom, u64 iova, u64 pgsize, u64 pgcount, struct iommu_iotlb_gather *g);
	void (*iotlb_sync)(u64 dom, struct iommu_iotlb_gather *g);
	long (*iotlb_sync_map)(u64 dom, u64 iova, u64 size);
	void (*flush_iotlb_all)(u64 dom);
};
struct kc_core_host kc_core_host;

struct kc_cdom {
	struct iommu_domain domain;
	struct iommu_domain_ops ops;
	u64 id;
};
#define KC_DOM(d) container_of(d, struct kc_cdom, domain)->id

static int kc_cd_map_pages(struct iommu_domain *d, unsigned long iova, phys_addr_t paddr, size_t pgsize,
			   size_t pgcount, int prot, gfp_t gfp, size_t *mapped)
{
	u64 m = 0;
	int was = kc_host_enter();
	long r = kc_core_host.map_pages(KC_DOM(d), iova, paddr, pgsize, pgcount, prot, &m);
	kc_host_leave(was);
	(void)gfp;
	*mapped = m;
	return r;
}

static size_t kc_cd_unmap_pages(struct iommu_domain *d, unsigned long iova, size_t pgsize, size_t pgcount,
				struct iommu_iotlb_gather *g)
{
	int was = kc_host_enter();
	u64 r = kc_core_host.unmap_pages(KC_DOM(d), iova, pgsize, pgcount, g);
	kc_host_leave(was);
	return r;
}

static void kc_cd_iotlb_sync(struct iommu_domain *d, struct iommu_iotlb_gather *g)
{
	int was = kc_host_enter();
	kc_core_host.iotlb_sync(KC_DOM(d), g);
	kc_host_leave(was);
}

static int kc_cd_iotlb_sync_map(struct iommu_domain *d, unsigned long iova, size_t size)
{
	int was = kc_host_enter();
	long r = kc_core_host.iotlb_sync_map(KC_DOM(d), iova, size);
	kc_host_leave(was);
	return r;
}

static void kc_cd_flush_iotlb_all(struct iommu_domain *d)
{
	int was = kc_host_enter();
	kc_core_host.flush_iotlb_all(KC_DOM(d));
	kc_host_leave(was);
}

enum { KC_OP_MAP = 1, KC_OP_UNMAP = 2, KC_OP_SYNC = 4, KC_OP_SYNC_MAP = 8, KC_OP_FLUSH_ALL = 16 };

/* A paging domain (IOMMU_DOMAIN_UNMANAGED) with the ops in `ops` (KC_OP_*; the others NULL). */
struct kc_cdom *kc_cdom_new(u64 id, u64 pgsize_bitmap, int ops)
{
	struct kc_cdom *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = id;
	c->domain.type = IOMMU_DOMAIN_UNMANAGED;
	c->domain.pgsize_bitmap = pgsize_bitmap;
	c->domain.ops = &c->ops;
	if (ops & KC_OP_MAP)
		c->ops.map_pages = kc_cd_map_pages;
	if (ops & KC_OP_UNMAP)
		c->ops.unmap_pages = kc_cd_unmap_pages;
	if (ops & KC_OP_SYNC)
		c->ops.iotlb_sync = kc_cd_iotlb_sync;
	if (ops & KC_OP_SYNC_MAP)
		c->ops.iotlb_sync_map = kc_cd_iotlb_sync_map;
	if (ops & KC_OP_FLUSH_ALL)
		c->ops.flush_iotlb_all = kc_cd_flush_iotlb_all;
	return c;
}

void kc_cdom_free(struct kc_cdom *c) { free(c); }

/* sizeof(struct iommu_iotlb_gather) and the offsets of start, end, pgsize, queued (a bool). */
void kc_core_layout(u64 *out)
{
	out[0] = sizeof(struct iommu_iotlb_gather);
	out[1] = offsetof(struct iommu_iotlb_gather, start);
	out[2] = offsetof(struct iommu_iotlb_gather, end);
	out[3] = offsetof(struct iommu_iotlb_gather, pgsize);
	out[4] = offsetof(struct iommu_iotlb_gather, queued);
	out[5] = sizeof(struct scatterlist);
}

/* A gather as a caller holds one: iommu_iotlb_gather_init(), then the caller's fields. */
void kc_core_gather_load(struct iommu_iotlb_gather *g, u64 start, u64 end, u64 pgsize, int queued)
{
	iommu_iotlb_gather_init(g);
	g->start = start;
	g->end = end;
	g->pgsize = pgsize;
	g->queued = queued;
}

void kc_core_sg_set(struct scatterlist *sg, unsigned int i, u64 phys, unsigned int length)
{
	sg[i].phys = phys;
	sg[i].length = length;
	sg[i].dma_address = 0;
}

enum kc_core_opcode { KC_C_MAP, KC_C_UNMAP, KC_C_UNMAP_FAST, KC_C_MAP_SG, KC_C_SYNC, KC_C_FLUSH_ALL };

struct kc_core_call {
	int op;
	struct iommu_domain *d;
	u64 iova, paddr, size;
	int prot;
	struct iommu_iotlb_gather *g;
	struct scatterlist *sg;
	unsigned int nents;
	long ret;
};

static void kc_core_call(void *arg)
{
	struct kc_core_call *c = arg;
	switch (c->op) {
	case KC_C_MAP:
		c->ret = iommu_map(c->d, c->iova, c->paddr, c->size, c->prot, GFP_KERNEL);
		break;
	case KC_C_UNMAP:
		c->ret = iommu_unmap(c->d, c->iova, c->size);
		break;
	case KC_C_UNMAP_FAST:
		c->ret = iommu_unmap_fast(c->d, c->iova, c->size, c->g);
		break;
	case KC_C_MAP_SG:
		c->ret = iommu_map_sg(c->d, c->iova, c->sg, c->nents, c->prot, GFP_KERNEL);
		break;
	case KC_C_SYNC:
		iommu_iotlb_sync(c->d, c->g);
		break;
	case KC_C_FLUSH_ALL:
		iommu_flush_iotlb_all(c->d);
		break;
	default:
		c->ret = -EINVAL;
	}
}

/* The driver's gather helper, the tree's iommu_iotlb_gather_add_page() (include/linux/iommu.h), on the
 * gather g the core handed domain d's driver; its iommu_iotlb_sync() calls the driver back.  Returns 0,
 * or KC_CORE_CRASHED. */
struct kc_core_add_page_call {
	struct iommu_domain *d;
	struct iommu_iotlb_gather *g;
	u64 iova, size;
};

static void kc_core_add_page_call(void *arg)
{
	struct kc_core_add_page_call *c = arg;
	iommu_iotlb_gather_add_page(c->d, c->g, c->iova, c->size);
}

long kc_core_add_page(struct kc_cdom *d, struct iommu_iotlb_gather *g, u64 iova, u64 size)
{
	struct kc_core_add_page_call c = { .d = &d->domain, .g = g, .iova = iova, .size = size };
	return kc_run(kc_core_add_page_call, &c);
}

/* One core call on domain d (gather g for unmap_fast and sync, the list sg[0..nents) for map_sg);
 * *ret is what it returned.  Returns 0, or KC_CORE_CRASHED (the crash is in kc_crash_text). */
long kc_core_op(struct kc_cdom *d, int op, u64 iova, u64 paddr, u64 size, int prot,
		struct iommu_iotlb_gather *g, struct scatterlist *sg, unsigned int nents, long *ret)
{
	struct kc_core_call c = { .op = op, .d = &d->domain, .iova = iova, .paddr = paddr, .size = size,
				  .prot = prot, .g = g, .sg = sg, .nents = nents };
	long r = kc_run(kc_core_call, &c);
	*ret = c.ret;
	return r;
}
