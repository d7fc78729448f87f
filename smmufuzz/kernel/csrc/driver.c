/* driver.c: arm-smmu-v3's invalidation path of the tree (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c:
 * command building and batching, __arm_smmu_tlb_inv_range, arm_smmu_tlb_inv_range_domain,
 * arm_smmu_tlb_inv_range_asid and arm_smmu_tlb_inv_asid (SVA's, where the tree has them),
 * arm_smmu_atc_inv_domain/_master, arm_smmu_tlb_inv_context, arm_smmu_iotlb_sync,
 * arm_smmu_flush_iotlb_all and the io-pgtable flush ops; the STE writer arm_smmu_write_ste with
 * arm_smmu_write_entry and the arm_smmu_make_*_ste builders), extracted by kernel/cdriver.py into the
 * generated arm_smmu_v3_gen.c) over C structs the host fills from its state (struct arm_smmu_device
 * features, struct arm_smmu_domain with its masters), and one flat entry point for ctypes (kc_drv_op),
 * run inside the crash guard (kc_run).  The hardware queue is ours: arm_smmu_cmdq_issue_cmdlist()
 * hands the commands the C built, and the CMD_SYNC the tree's arm_smmu_cmdq_build_sync_cmd() builds
 * where the C asks for one, to the host, which publishes them into the emulator's queue in order. */

#include <linux/iommu.h>
#include <linux/io-pgtable.h>
#include "driver_env.h"
#include "arm-smmu-v3.h"

#define KC_DRV_CRASHED (-100000)
#define KC_DRV_MASTERS 16

long kc_run(void (*fn)(void *), void *arg);
int kc_host_enter(void);
void kc_host_leave(int was);
void kc_bug(const char *file, int line, const char *cond) __attribute__((noreturn));

/* bitfield.h's link-time checks: only reached with a non-constant mask */
void __field_overflow(void) { kc_bug(__FILE__, __LINE__, "__field_overflow"); }
void __bad_mask(void) { kc_bug(__FILE__, __LINE__, "__bad_mask"); }

/* The host's side: n commands (2 x u64 each), then the CMD_SYNC if sync is not NULL, for SMMU `smmu`;
 * ops->iotlb_sync_map() of the io-pgtable (the host's table) of domain `dom` of SMMU `smmu`. */
struct kc_drv_host {
	void (*cmdq)(u64 smmu, const u64 *cmds, int n, const u64 *sync);
	int (*pgtbl_sync_map)(u64 smmu, u64 dom, u64 iova, u64 size);
};
struct kc_drv_host kc_drv_host;

#define KC_STES 64                            /* stream IDs 0..63: the linear stream table the C writes */

struct kc_smmu {
	struct arm_smmu_device smmu;
	u64 id;                               /* the host's id of this SMMU */
	struct arm_smmu_ste strtab[KC_STES];  /* the CPU's view; the host copies each store to the emulator */
#ifdef KC_HAVE_CD_WRITER
	struct arm_smmu_cd cds[KC_STES];      /* each stream's SSID 0 CD, the CPU's view (copied the same way) */
#endif
};

/* A domain and the masters attached to it (one stream each). */
struct kc_sdom {
	struct arm_smmu_domain d;
	struct iommu_domain_ops ops;
	struct arm_smmu_master masters[KC_DRV_MASTERS];
	struct arm_smmu_stream streams[KC_DRV_MASTERS];
	struct arm_smmu_master_domain links[KC_DRV_MASTERS];
	u64 id;                               /* the host's id of this domain */
	u32 asid, vmid;                       /* the model's, handed out by the stage finalisers below */
	int allocs;                           /* alloc_io_pgtable_ops() calls by arm_smmu_domain_finalise() */
	struct io_pgtable iop;                /* smmu_domain->pgtbl_ops is iop.ops: its ops go to the host's table;
					       * iop.fmt and iop.cfg: what the finalise asked for, then the host
					       * table's cfg (VTCR, VTTBR for the STE; TCR, TTBR for the CD) */
	int has_pgtbl;                        /* iop.cfg is the host table's (kc_sdom_pgtbl) */
	int ret;
};

static int arm_smmu_cmdq_issue_cmdlist(struct arm_smmu_device *smmu, struct arm_smmu_cmdq *cmdq, u64 *cmds,
				       int n, bool sync);
static int arm_smmu_domain_finalise_s1(struct arm_smmu_device *smmu, struct arm_smmu_domain *smmu_domain);
static int arm_smmu_domain_finalise_s2(struct arm_smmu_device *smmu, struct arm_smmu_domain *smmu_domain);
static struct io_pgtable_ops *kc_drv_alloc_pgtable(enum io_pgtable_fmt fmt, struct io_pgtable_cfg *cfg, void *cookie);
static void kc_drv_free_pgtable(struct io_pgtable_ops *ops);
/* arm_smmu_domain_finalise() names them; io-pgtable calls them through the host's table, not this cfg */
static const struct iommu_flush_ops arm_smmu_flush_ops;
static struct iommu_dirty_ops arm_smmu_dirty_ops;

#define alloc_io_pgtable_ops kc_drv_alloc_pgtable
#define free_io_pgtable_ops kc_drv_free_pgtable
#include "arm_smmu_v3_gen.c"
#undef alloc_io_pgtable_ops
#undef free_io_pgtable_ops

/* arm_smmu_domain_finalise()'s io-pgtable is the host's (kernel/csmmu.py builds it in the emulator's memory
 * from the cfg captured here): the C's pgtbl_ops is a table of forwarders to it. */
#ifdef KC_HAVE_OPS_SYNC_MAP
static int kc_drv_pgtbl_sync_map(struct io_pgtable_ops *ops, unsigned long iova, size_t size)
{
	struct kc_sdom *c = container_of(ops, struct kc_sdom, iop.ops);
	int was = kc_host_enter();
	int r = kc_drv_host.pgtbl_sync_map(container_of(c->d.smmu, struct kc_smmu, smmu)->id, c->id, iova, size);
	kc_host_leave(was);
	return r;
}
#endif

static struct io_pgtable_ops *kc_drv_alloc_pgtable(enum io_pgtable_fmt fmt, struct io_pgtable_cfg *cfg, void *cookie)
{
	struct kc_sdom *c = container_of((struct arm_smmu_domain *)cookie, struct kc_sdom, d);
	c->allocs++;
	memset(&c->iop, 0, sizeof(c->iop));
	c->iop.fmt = fmt;
	c->iop.cfg = *cfg;
#ifdef KC_HAVE_OPS_SYNC_MAP
	c->iop.ops.iotlb_sync_map = kc_drv_pgtbl_sync_map;
#endif
	return &c->iop.ops;
}

static void kc_drv_free_pgtable(struct io_pgtable_ops *ops) { (void)ops; }

/* The model's ASID (stage 1) and VMID (stage 2), where the tree allocates them from its xarray and ida. */
static int arm_smmu_domain_finalise_s1(struct arm_smmu_device *smmu, struct arm_smmu_domain *smmu_domain)
{
	(void)smmu;
	smmu_domain->cd.asid = container_of(smmu_domain, struct kc_sdom, d)->asid;
	return 0;
}

static int arm_smmu_domain_finalise_s2(struct arm_smmu_device *smmu, struct arm_smmu_domain *smmu_domain)
{
	(void)smmu;
	smmu_domain->s2_cfg.vmid = container_of(smmu_domain, struct kc_sdom, d)->vmid;
	return 0;
}

/* Does the tree have SVA's entries, arm_smmu_tlb_inv_range_asid() and arm_smmu_tlb_inv_asid() (kernel/build.py
 * defines the macro when both were extracted)? */
#ifdef KC_HAVE_SVA_INV
int kc_drv_have_sva_inv = 1;
#else
int kc_drv_have_sva_inv = 0;
#endif

/* Does the tree have the CD writer, arm_smmu_make_s1_cd() and arm_smmu_write_cd_entry() (6.10 on)? */
#ifdef KC_HAVE_CD_WRITER
int kc_drv_have_cd_writer = 1;
#else
int kc_drv_have_cd_writer = 0;
#endif

/* Stands in for the tree's arm_smmu_cmdq_issue_cmdlist(): the queue writes and the CMD_SYNC poll are the
 * emulator's; the SYNC entry is the tree's own (at queue index 0: the MSI address is not used). */
static int arm_smmu_cmdq_issue_cmdlist(struct arm_smmu_device *smmu, struct arm_smmu_cmdq *cmdq, u64 *cmds,
				       int n, bool sync)
{
	u64 s[CMDQ_ENT_DWORDS];
	int was;
	if (sync)
		arm_smmu_cmdq_build_sync_cmd(s, smmu, cmdq, 0);
	was = kc_host_enter();
	kc_drv_host.cmdq(container_of(smmu, struct kc_smmu, smmu)->id, cmds, n, sync ? s : NULL);
	kc_host_leave(was);
	return 0;
}

/* An SMMU with these IDR features (ARM_SMMU_FEAT_*) and options (ARM_SMMU_OPT_*). */
struct kc_smmu *kc_smmu_new(u64 id, u32 features, u32 options)
{
	struct kc_smmu *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->smmu.features = features;
	s->smmu.options = options;
	return s;
}

void kc_smmu_free(struct kc_smmu *s) { free(s); }

static void kc_sdom_finalise(void *p)
{
	struct kc_sdom *c = p;
	c->ret = arm_smmu_domain_finalise(&c->d, c->d.smmu, 0);
}

/* arm_smmu_domain_alloc() + the tree's arm_smmu_domain_finalise() on an SMMU with these page sizes: stage 1
 * with `asid` or stage 2 with `vmid` (the SMMU may restrict the stage, as the tree does), domain->ops with
 * iotlb_sync (the gather helpers' disjoint sync goes there).  Without `finalise`, an SVA domain as
 * arm_smmu_sva_domain_alloc() makes it: stage 1 with the mm's `asid`, no io-pgtable.  *err: 0, finalise's
 * error, or KC_DRV_CRASHED. */
struct kc_sdom *kc_sdom_new(struct kc_smmu *s, int stage, u32 asid, u32 vmid, u64 pgsize_bitmap, u64 id,
			    int finalise, long *err)
{
	struct kc_sdom *c = calloc(1, sizeof(*c));
	long r;
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	c->id = id;
	c->asid = asid;
	c->vmid = vmid;
	s->smmu.pgsize_bitmap = pgsize_bitmap;
	c->d.smmu = &s->smmu;
	c->d.stage = stage == 1 ? ARM_SMMU_DOMAIN_S1 : ARM_SMMU_DOMAIN_S2;
	c->d.domain.type = IOMMU_DOMAIN_UNMANAGED;
	INIT_LIST_HEAD(&c->d.devices);
	if (finalise) {
		r = kc_run(kc_sdom_finalise, c);
	} else {
		r = 0;
		c->d.stage = ARM_SMMU_DOMAIN_S1;
		c->d.cd.asid = asid;
		c->d.domain.pgsize_bitmap = pgsize_bitmap;
	}
	*err = r ? r : c->ret;
	if (*err) {
		free(c);
		return NULL;
	}
	c->ops.iotlb_sync = arm_smmu_iotlb_sync;
	c->ops.flush_iotlb_all = arm_smmu_flush_iotlb_all;
#ifdef KC_DRV_IOTLB_SYNC_MAP
	c->ops.iotlb_sync_map = KC_DRV_IOTLB_SYNC_MAP;
#endif
	c->d.domain.ops = &c->ops;
	return c;
}

/* What the tree's arm_smmu_domain_finalise() asked of the io-pgtable: out[] = {allocations, fmt, stage
 * (1 or 2), coherent_walk, defer_sync_pte (-1 where io_pgtable_cfg has none), quirks}. */
void kc_sdom_cfg(struct kc_sdom *c, u64 *out)
{
	out[0] = c->allocs;
	out[1] = c->iop.fmt;
	out[2] = c->d.stage == ARM_SMMU_DOMAIN_S1 ? 1 : 2;
	out[3] = c->iop.cfg.coherent_walk;
#ifdef KC_HAVE_DEFER_SYNC_PTE
	out[4] = c->iop.cfg.defer_sync_pte;
#else
	out[4] = (u64)-1;
#endif
	out[5] = c->iop.cfg.quirks;
}

/* Which iommu_domain_ops the tree's arm-smmu-v3 sets beyond the invalidation ones: bit 0 iotlb_sync_map. */
int kc_drv_features(void)
{
#ifdef KC_DRV_IOTLB_SYNC_MAP
	return 1;
#else
	return 0;
#endif
}

void kc_sdom_free(struct kc_sdom *c) { free(c); }

/* The domain's devices list, in attach order: n masters with stream sids[i], ats[i] = master->ats_enabled,
 * attached through PASID ssids[i] (an SVA domain; NULL: IOMMU_NO_PASID); nr_ats_masters as the driver
 * counted it.  Returns -1 for too many masters. */
long kc_sdom_masters(struct kc_sdom *c, int n, const u32 *sids, const u8 *ats, const u32 *ssids, int nr_ats_masters)
{
	if (n < 0 || n > KC_DRV_MASTERS)
		return -1;
	INIT_LIST_HEAD(&c->d.devices);
	for (int i = 0; i < n; i++) {
		struct arm_smmu_master *m = &c->masters[i];
		memset(m, 0, sizeof(*m));
		m->smmu = c->d.smmu;
		c->streams[i].id = sids[i];
		m->streams = &c->streams[i];
		m->num_streams = 1;
		m->ats_enabled = ats[i];
		c->links[i].master = m;
		c->links[i].ssid = ssids ? ssids[i] : IOMMU_NO_PASID;
		list_add_tail(&c->links[i].devices_elm, &c->d.devices);
	}
	atomic_set(&c->d.nr_ats_masters, nr_ats_masters);
	return 0;
}

enum kc_drv_opcode {
	KC_D_IOTLB_SYNC, KC_D_FLUSH_ALL, KC_D_INV_CONTEXT, KC_D_INV_WALK, KC_D_ADD_PAGE, KC_D_RANGE_DOMAIN,
	KC_D_ATC_DOMAIN, KC_D_ATC_MASTER, KC_D_RANGE_ASID, KC_D_INV_ASID, KC_D_IOTLB_SYNC_MAP,
};

struct kc_drv_call {
	int op;
	struct kc_sdom *c;
	u64 iova, size, granule, arg;
	struct iommu_iotlb_gather *g;
	long ret;
};

static void kc_drv_call(void *p)
{
	struct kc_drv_call *k = p;
	struct arm_smmu_domain *d = &k->c->d;
	switch (k->op) {
	case KC_D_IOTLB_SYNC:
		arm_smmu_iotlb_sync(&d->domain, k->g);
		break;
	case KC_D_FLUSH_ALL:
		arm_smmu_flush_iotlb_all(&d->domain);
		break;
	case KC_D_INV_CONTEXT:
		arm_smmu_tlb_inv_context(d);
		break;
	case KC_D_INV_WALK:
		arm_smmu_tlb_inv_walk(k->iova, k->size, k->granule, d);
		break;
	case KC_D_ADD_PAGE:
		arm_smmu_tlb_inv_page_nosync(k->g, k->iova, k->granule, d);
		break;
	case KC_D_RANGE_DOMAIN:
		arm_smmu_tlb_inv_range_domain(k->iova, k->size, k->granule, k->arg, d);
		break;
	case KC_D_ATC_DOMAIN:
		arm_smmu_atc_inv_domain(d, k->iova, k->size);
		break;
	case KC_D_ATC_MASTER:
		if (k->arg < KC_DRV_MASTERS)
			arm_smmu_atc_inv_master(&k->c->masters[k->arg], (ioasid_t)k->iova);
		break;
#ifdef KC_HAVE_SVA_INV
	case KC_D_RANGE_ASID:
		arm_smmu_tlb_inv_range_asid(k->iova, k->size, (int)(u32)k->arg, k->granule, k->arg >> 32, d);
		break;
	case KC_D_INV_ASID:
		arm_smmu_tlb_inv_asid(d->smmu, (u16)k->arg);
		break;
#endif
	case KC_D_IOTLB_SYNC_MAP:
#ifdef KC_DRV_IOTLB_SYNC_MAP
		k->ret = k->c->ops.iotlb_sync_map(&d->domain, k->iova, k->size);
#endif
		break;
	}
}

/* One driver call on domain c (gather g for iotlb_sync and add_page; arg: leaf for RANGE_DOMAIN, the
 * master's index in the devices list for ATC_MASTER (iova: its PASID), the ASID | leaf << 32 for RANGE_ASID,
 * the ASID for INV_ASID).  Returns KC_DRV_CRASHED, or what the call returned (iotlb_sync_map's int; 0 for the
 * void ones). */
long kc_drv_op(struct kc_sdom *c, int op, u64 iova, u64 size, u64 granule, u64 arg, struct iommu_iotlb_gather *g)
{
	struct kc_drv_call k = { .op = op, .c = c, .iova = iova, .size = size, .granule = granule, .arg = arg,
				 .g = g };
	long r = kc_run(kc_drv_call, &k);
	return r ? r : k.ret;
}

/* The domain's io-pgtable (the tree's io-pgtable-arm.c, glue.c's kc_pgtbl): arm_smmu_make_s2_domain_ste()
 * reads its VTCR and VTTBR through io_pgtable_ops_to_pgtable(smmu_domain->pgtbl_ops)->cfg, so the cfg the
 * table was made with is copied into the forwarders' struct io_pgtable (pgtbl_ops stays the forwarders). */
void kc_sdom_pgtbl(struct kc_sdom *c, struct io_pgtable_ops *ops)
{
	c->iop.cfg = io_pgtable_ops_to_pgtable(ops)->cfg;
	c->has_pgtbl = 1;
}

enum kc_ste_kind { KC_STE_ABORT, KC_STE_BYPASS, KC_STE_CDTABLE, KC_STE_S2 };

/* A master with one stream `sid` on SMMU s and a linear CD table (s1fmt 0) of 2^s1cdmax CDs at cdtab_dma: what
 * the tree's STE and CD builders and writers read of it. */
static void kc_master_init(struct arm_smmu_master *master, struct arm_smmu_stream *stream, struct kc_smmu *s,
			   u32 sid, u64 cdtab_dma, u8 s1cdmax)
{
	memset(master, 0, sizeof(*master));
	stream->id = sid;
	master->smmu = &s->smmu;
	master->streams = stream;
	master->num_streams = 1;
	master->cd_table.cdtab_dma = cdtab_dma;
	master->cd_table.s1cdmax = s1cdmax;
}

struct kc_ste_call {
	struct kc_smmu *s;
	struct kc_sdom *c;
	u32 sid;
	int kind, ats;
	u64 cdtab_dma;
	u8 s1cdmax;
};

static void kc_ste_call(void *p)
{
	struct kc_ste_call *k = p;
	struct arm_smmu_stream stream;
	struct arm_smmu_master master;
	struct arm_smmu_ste target;

	kc_master_init(&master, &stream, k->s, k->sid, k->cdtab_dma, k->s1cdmax);
	switch (k->kind) {
	case KC_STE_ABORT:
		arm_smmu_make_abort_ste(&target);
		break;
	case KC_STE_BYPASS:
		arm_smmu_make_bypass_ste(&k->s->smmu, &target);
		break;
	case KC_STE_CDTABLE:
		arm_smmu_make_cdtable_ste(&target, &master, k->ats, STRTAB_STE_1_S1DSS_SSID0);
		break;
	case KC_STE_S2:
		arm_smmu_make_s2_domain_ste(&target, &master, &k->c->d, k->ats);
		break;
	default:
		return;
	}
	arm_smmu_write_ste(&master, k->sid, &k->s->strtab[k->sid], &target);
}

/* arm_smmu_install_ste_for_dev() for a master with one stream `sid`: build the STE of `kind` (c: the stage-2
 * domain; cdtab_dma: the master's CD table of 2^s1cdmax CDs) and write it with the tree's writer.  -1 for a sid out of the
 * table, else 0 or KC_DRV_CRASHED. */
long kc_ste_write(struct kc_smmu *s, struct kc_sdom *c, u32 sid, int kind, int ats, u64 cdtab_dma, int s1cdmax)
{
	struct kc_ste_call k = { .s = s, .c = c, .sid = sid, .kind = kind, .ats = ats, .cdtab_dma = cdtab_dma,
				 .s1cdmax = s1cdmax };
	if (sid >= KC_STES || (kind == KC_STE_S2 && (!c || !c->d.pgtbl_ops)))
		return -1;
	return kc_run(kc_ste_call, &k);
}

/* The 8 words of sid's STE as the C last stored them. */
const u64 *kc_ste_words(struct kc_smmu *s, u32 sid) { return sid < KC_STES ? (const u64 *)s->strtab[sid].data : NULL; }

#ifdef KC_HAVE_CD_WRITER
struct kc_cd_call {
	struct kc_smmu *s;
	struct kc_sdom *c;
	u32 sid;
	u64 cdtab_dma;
	u8 s1cdmax;
};

static void kc_cd_call(void *p)
{
	struct kc_cd_call *k = p;
	struct arm_smmu_stream stream;
	struct arm_smmu_master master;
	struct arm_smmu_cd target;

	kc_master_init(&master, &stream, k->s, k->sid, k->cdtab_dma, k->s1cdmax);
	if (k->c)
		arm_smmu_make_s1_cd(&target, &master, &k->c->d);
	else
		memset(&target, 0, sizeof(target));       /* arm_smmu_clear_cd() */
	arm_smmu_write_cd_entry(&master, IOMMU_NO_PASID, &k->s->cds[k->sid], &target);
}
#endif

/* The SSID 0 CD of the stream `sid` (its master's CD table at cdtab_dma, 2^s1cdmax CDs): the stage-1 domain c's
 * (arm_smmu_make_s1_cd()), or none (c NULL: arm_smmu_clear_cd()'s zeroes), written with the tree's
 * arm_smmu_write_cd_entry().  -1 for a sid out of the table, a domain without the C io-pgtable (its TCR and
 * TTBR), or a tree without the CD writer; else 0 or KC_DRV_CRASHED. */
long kc_cd_write(struct kc_smmu *s, struct kc_sdom *c, u32 sid, u64 cdtab_dma, int s1cdmax)
{
#ifdef KC_HAVE_CD_WRITER
	struct kc_cd_call k = { .s = s, .c = c, .sid = sid, .cdtab_dma = cdtab_dma, .s1cdmax = s1cdmax };
	if (sid >= KC_STES || (c && !c->has_pgtbl))
		return -1;
	return kc_run(kc_cd_call, &k);
#else
	(void)s; (void)c; (void)sid; (void)cdtab_dma; (void)s1cdmax;
	return -1;
#endif
}

/* The 8 words of sid's SSID 0 CD as the C last stored them (NULL without the CD writer). */
const u64 *kc_cd_words(struct kc_smmu *s, u32 sid)
{
#ifdef KC_HAVE_CD_WRITER
	return sid < KC_STES ? (const u64 *)s->cds[sid].data : NULL;
#else
	(void)s; (void)sid;
	return NULL;
#endif
}
