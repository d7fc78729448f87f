/* driver.c: arm-smmu-v3's invalidation path of the tree (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c:
 * command building and batching, __arm_smmu_tlb_inv_range, arm_smmu_tlb_inv_range_domain,
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

/* The host's side: n commands (2 x u64 each), then the CMD_SYNC if sync is not NULL, for SMMU `smmu`. */
struct kc_drv_host {
	void (*cmdq)(u64 smmu, const u64 *cmds, int n, const u64 *sync);
};
struct kc_drv_host kc_drv_host;

#define KC_STES 64                            /* stream IDs 0..63: the linear stream table the C writes */

struct kc_smmu {
	struct arm_smmu_device smmu;
	u64 id;                               /* the host's id of this SMMU */
	struct arm_smmu_ste strtab[KC_STES];  /* the CPU's view; the host copies each store to the emulator */
};

static int arm_smmu_cmdq_issue_cmdlist(struct arm_smmu_device *smmu, struct arm_smmu_cmdq *cmdq, u64 *cmds,
				       int n, bool sync);

#include "arm_smmu_v3_gen.c"

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

/* A domain and the masters attached to it (one stream each). */
struct kc_sdom {
	struct arm_smmu_domain d;
	struct iommu_domain_ops ops;
	struct arm_smmu_master masters[KC_DRV_MASTERS];
	struct arm_smmu_stream streams[KC_DRV_MASTERS];
	struct arm_smmu_master_domain links[KC_DRV_MASTERS];
};

/* arm_smmu_domain_alloc() + arm_smmu_domain_finalise() as far as invalidation sees them: stage 1 with
 * `asid` or stage 2 with `vmid`, the io-pgtable's page sizes, domain->ops->iotlb_sync (the gather
 * helpers' disjoint sync goes there). */
struct kc_sdom *kc_sdom_new(struct kc_smmu *s, int stage, u32 asid, u32 vmid, u64 pgsize_bitmap)
{
	struct kc_sdom *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->d.smmu = &s->smmu;
	c->d.stage = stage == 1 ? ARM_SMMU_DOMAIN_S1 : ARM_SMMU_DOMAIN_S2;
	if (stage == 1)
		c->d.cd.asid = asid;
	else
		c->d.s2_cfg.vmid = vmid;
	c->d.domain.type = IOMMU_DOMAIN_UNMANAGED;
	c->d.domain.pgsize_bitmap = pgsize_bitmap;
	c->ops.iotlb_sync = arm_smmu_iotlb_sync;
	c->ops.flush_iotlb_all = arm_smmu_flush_iotlb_all;
	c->d.domain.ops = &c->ops;
	INIT_LIST_HEAD(&c->d.devices);
	return c;
}

void kc_sdom_free(struct kc_sdom *c) { free(c); }

/* The domain's devices list, in attach order: n masters with stream sids[i], ats[i] = master->ats_enabled;
 * nr_ats_masters as the driver counted it.  Returns -1 for too many masters. */
long kc_sdom_masters(struct kc_sdom *c, int n, const u32 *sids, const u8 *ats, int nr_ats_masters)
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
		c->links[i].ssid = IOMMU_NO_PASID;
		list_add_tail(&c->links[i].devices_elm, &c->d.devices);
	}
	atomic_set(&c->d.nr_ats_masters, nr_ats_masters);
	return 0;
}

enum kc_drv_opcode {
	KC_D_IOTLB_SYNC, KC_D_FLUSH_ALL, KC_D_INV_CONTEXT, KC_D_INV_WALK, KC_D_ADD_PAGE, KC_D_RANGE_DOMAIN,
	KC_D_ATC_DOMAIN, KC_D_ATC_MASTER,
};

struct kc_drv_call {
	int op;
	struct kc_sdom *c;
	u64 iova, size, granule, arg;
	struct iommu_iotlb_gather *g;
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
			arm_smmu_atc_inv_master(&k->c->masters[k->arg], IOMMU_NO_PASID);
		break;
	}
}

/* One driver call on domain c (gather g for iotlb_sync and add_page; arg: leaf for RANGE_DOMAIN, the
 * master's index in the devices list for ATC_MASTER).  Returns 0, or KC_DRV_CRASHED. */
long kc_drv_op(struct kc_sdom *c, int op, u64 iova, u64 size, u64 granule, u64 arg, struct iommu_iotlb_gather *g)
{
	struct kc_drv_call k = { .op = op, .c = c, .iova = iova, .size = size, .granule = granule, .arg = arg,
				 .g = g };
	return kc_run(kc_drv_call, &k);
}

/* The domain's io-pgtable (the tree's io-pgtable-arm.c, glue.c's kc_pgtbl): arm_smmu_make_s2_domain_ste()
 * reads its VTCR and VTTBR through io_pgtable_ops_to_pgtable(smmu_domain->pgtbl_ops)->cfg. */
void kc_sdom_pgtbl(struct kc_sdom *c, struct io_pgtable_ops *ops) { c->d.pgtbl_ops = ops; }

enum kc_ste_kind { KC_STE_ABORT, KC_STE_BYPASS, KC_STE_CDTABLE, KC_STE_S2 };

struct kc_ste_call {
	struct kc_smmu *s;
	struct kc_sdom *c;
	u32 sid;
	int kind, ats;
	u64 cdtab_dma;
};

static void kc_ste_call(void *p)
{
	struct kc_ste_call *k = p;
	struct arm_smmu_stream stream = { .id = k->sid };
	struct arm_smmu_master master;
	struct arm_smmu_ste target;

	memset(&master, 0, sizeof(master));
	master.smmu = &k->s->smmu;
	master.streams = &stream;
	master.num_streams = 1;
	master.cd_table.cdtab_dma = k->cdtab_dma;           /* one linear CD (s1fmt 0, s1cdmax 0) */
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
 * domain; cdtab_dma: the master's CD table) and write it with the tree's writer.  -1 for a sid out of the
 * table, else 0 or KC_DRV_CRASHED. */
long kc_ste_write(struct kc_smmu *s, struct kc_sdom *c, u32 sid, int kind, int ats, u64 cdtab_dma)
{
	struct kc_ste_call k = { .s = s, .c = c, .sid = sid, .kind = kind, .ats = ats, .cdtab_dma = cdtab_dma };
	if (sid >= KC_STES || (kind == KC_STE_S2 && (!c || !c->d.pgtbl_ops)))
		return -1;
	return kc_run(kc_ste_call, &k);
}

/* The 8 words of sid's STE as the C last stored them. */
const u64 *kc_ste_words(struct kc_smmu *s, u32 sid) { return sid < KC_STES ? (const u64 *)s->strtab[sid].data : NULL; }
