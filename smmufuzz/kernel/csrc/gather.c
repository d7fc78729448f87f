/* gather.c: the iommu core's gather helpers, the static inlines of the tree's include/linux/iommu.h
 * (iommu_iotlb_gather_init / _is_disjoint / _add_range / _add_page / _queued and iommu_iotlb_sync),
 * as one flat entry point for ctypes (kc_gather_op), run inside the crash guard (kc_run).
 *
 * A kc_gdom is a struct iommu_domain whose ops (struct iommu_domain_ops) have an iotlb_sync that
 * records the gather it is handed (start, end, pgsize, queued), or have none: what the core's helpers
 * make the driver see.  build.py compiles this file only after extract.py found every helper below in
 * the tree's header with the shape used here. */

#include <linux/iommu.h>

#define KC_CRASHED (-100000)
#define KC_GATHER_SYNCS 64

long kc_run(void (*fn)(void *), void *arg);

enum kc_gather_opcode {
	KC_G_INIT, KC_G_ADD_RANGE, KC_G_ADD_PAGE, KC_G_IS_DISJOINT, KC_G_QUEUED, KC_G_QUEUED_NULL, KC_G_SYNC,
	KC_G_SET_QUEUED,
};

struct kc_gdom {
	struct iommu_domain domain;
	struct iommu_domain_ops ops;
	long nsyncs;                          /* iotlb_sync calls since the host last read them */
	u64 syncs[KC_GATHER_SYNCS][4];        /* what each call saw: start, end, pgsize, queued */
};

static void kc_gdom_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *g)
{
	struct kc_gdom *d = container_of(domain, struct kc_gdom, domain);
	if (d->nsyncs < KC_GATHER_SYNCS) {
		u64 *s = d->syncs[d->nsyncs];
		s[0] = g->start;
		s[1] = g->end;
		s[2] = g->pgsize;
		s[3] = g->queued;
	}
	d->nsyncs++;
}

/* A domain whose driver has an iotlb_sync op (has_sync) or leaves it NULL. */
struct kc_gdom *kc_gdom_new(int has_sync)
{
	struct kc_gdom *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	if (has_sync)
		d->ops.iotlb_sync = kc_gdom_iotlb_sync;
	d->domain.ops = &d->ops;
	return d;
}

void kc_gdom_free(struct kc_gdom *d) { free(d); }

/* The syncs recorded since the last call, copied to out (up to max rows of 4); returns how many
 * calls there were (more than max or KC_GATHER_SYNCS: only the first ones were kept). */
long kc_gdom_take_syncs(struct kc_gdom *d, u64 *out, long max)
{
	long n = d->nsyncs;
	for (long i = 0; i < n && i < max && i < KC_GATHER_SYNCS; i++)
		memcpy(out + 4 * i, d->syncs[i], sizeof(d->syncs[i]));
	d->nsyncs = 0;
	return n;
}

/* A gather as the core declares one on its stack: not initialised until KC_G_INIT. */
struct iommu_iotlb_gather *kc_gather_new(void) { return calloc(1, sizeof(struct iommu_iotlb_gather)); }
void kc_gather_free(struct iommu_iotlb_gather *g) { free(g); }

/* start, end, pgsize, queued, and whether freelist is an empty list (the helpers never touch it). */
void kc_gather_read(struct iommu_iotlb_gather *g, u64 *out)
{
	out[0] = g->start;
	out[1] = g->end;
	out[2] = g->pgsize;
	out[3] = g->queued;
	out[4] = g->freelist.next == &g->freelist && g->freelist.prev == &g->freelist;
}

struct kc_gather_call {
	int op;
	struct kc_gdom *d;
	struct iommu_iotlb_gather *g;
	unsigned long iova;
	size_t size;
	long ret;
};

static void kc_gather_call(void *arg)
{
	struct kc_gather_call *c = arg;
	switch (c->op) {
	case KC_G_INIT:
		iommu_iotlb_gather_init(c->g);
		break;
	case KC_G_ADD_RANGE:
		iommu_iotlb_gather_add_range(c->g, c->iova, c->size);
		break;
	case KC_G_ADD_PAGE:
		iommu_iotlb_gather_add_page(&c->d->domain, c->g, c->iova, c->size);
		break;
	case KC_G_IS_DISJOINT:
		c->ret = iommu_iotlb_gather_is_disjoint(c->g, c->iova, c->size);
		break;
	case KC_G_QUEUED:
		c->ret = iommu_iotlb_gather_queued(c->g);
		break;
	case KC_G_QUEUED_NULL:
		c->ret = iommu_iotlb_gather_queued(NULL);
		break;
	case KC_G_SYNC:
		iommu_iotlb_sync(&c->d->domain, c->g);
		break;
	case KC_G_SET_QUEUED:                  /* what a caller does (dma-iommu: gather.queued = fq) */
		c->g->queued = c->iova != 0;
		break;
	default:
		c->ret = -EINVAL;
	}
}

/* One helper call on gather g (and domain d for the ones that sync); *ret is what it returned (0
 * for the void ones).  Returns 0, or KC_CRASHED (the crash is in kc_crash_text). */
long kc_gather_op(struct kc_gdom *d, struct iommu_iotlb_gather *g, int op, u64 iova, u64 size, long *ret)
{
	struct kc_gather_call c = { .op = op, .d = d, .g = g, .iova = iova, .size = size };
	long r = kc_run(kc_gather_call, &c);
	*ret = c.ret;
	return r;
}
