"""arm-smmu-v3's SVA (arm-smmu-v3-sva.c, 6.12): PASIDs bound to process page tables, invalidated by the mm notifier."""

from dataclasses import dataclass, field

from ..reference.substream import Cd
from .arm_smmu_v3 import (CMDQ_OP_CFGI_CD, CMDQ_OP_CMD_SYNC, CMDQ_OP_TLBI_EL2_ASID, CMDQ_OP_TLBI_EL2_VA,
                          CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA, ArmSmmuV3Driver, CmdqBatch, CmdqEnt, Master,
                          build_cmd)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
CMDQ_MAX_TLBI_OPS = 1 << (PAGE_SHIFT - 3)
ULONG_MAX = (1 << 64) - 1
SSID_BITS = 2               # master->ssid_bits: a CD table of 4 CDs, PASIDs 1..3
SVA_ASID_FIRST = 0x10       # above the paging domains' ASIDs (dom_id + 1 in this model, not the xarray's)
EINVAL, ENODEV = 22, 19


@dataclass
class SvaDomain:
    """struct arm_smmu_domain of type IOMMU_DOMAIN_SVA: the ASID of its CDs, the mm, and the (master, PASID) it is
    attached through (smmu_domain->devices); pgsize_bitmap is PAGE_SIZE (arm_smmu_sva_domain_alloc())."""
    asid: int
    mm: object
    devices: list = field(default_factory=list)
    pgsize_bitmap: int = PAGE_SIZE
    stage: int = 1          # ARM_SMMU_DOMAIN_S1, its ASID in smmu_domain->cd.asid
    vmid: int = 0


class ArmSmmuV3SvaDriver(ArmSmmuV3Driver):
    """The classic driver with SVA: CD tables on stage-1 STEs, SVA domains per mm, the mmu_notifier's invalidation."""

    SVA = True
    CD_TABLE_BITS = SSID_BITS     # arm_smmu_alloc_cd_tables(): a stage-1 STE's CD table of 2^ssid_bits CDs

    def __init__(self, hw, core, pgcfg):
        super().__init__(hw, core, pgcfg)
        self.sva_domains: dict[int, SvaDomain] = {}       # mm -> its SVA domain (iommu_mm->sva_domains)
        self.bonds: dict[tuple[int, int], int] = {}       # (sid, PASID) -> handle->users

    # ---- bind / unbind --------------------------------------------------------------------
    def sva_bind(self, sid: int, mm_id: int, mm) -> int:
        """iommu_sva_bind_device() -> arm_smmu_sva_domain_alloc() (first bond of the mm) and
        arm_smmu_sva_set_dev_pasid(): the PASID (mm k's is k + 1 here), or -errno. Only a stage-1 RID domain
        (cd_table.in_ste) is modelled; 6.12 also accepts an identity or blocked one."""
        if not self.hw.cfg.coherent:
            return -ENODEV                  # arm_smmu_sva_supported(): ARM_SMMU_FEAT_COHERENCY
        m = self.master(sid)
        if m.domain is None or m.domain.stage != 1:
            return -EINVAL                  # arm_smmu_set_pasid(): !cd_table.in_ste
        pasid = mm_id + 1
        if (sid, pasid) in self.bonds:
            self.bonds[(sid, pasid)] += 1   # the same handle, handle->users++
            return pasid
        d = self.sva_domains.get(mm_id)
        if d is None:
            used = {x.asid for x in self.sva_domains.values()}
            asid = next(a for a in range(SVA_ASID_FIRST, 1 << 16) if a not in used)   # xa_alloc()
            d = self.sva_domains[mm_id] = SvaDomain(asid, mm)
        self.set_dev_pasid(d, m, pasid)
        self.bonds[(sid, pasid)] = 1
        return pasid

    def set_dev_pasid(self, d: SvaDomain, m: Master, pasid: int) -> None:
        """arm_smmu_sva_set_dev_pasid() -> arm_smmu_set_pasid(): join the domain's devices, write the CD
        (arm_smmu_make_sva_cd(), arm_smmu_write_cd_entry(): CFGI_CD + CMD_SYNC), then flush the PASID's ATC
        (arm_smmu_attach_commit())."""
        d.devices.append((m, pasid))
        self.hw.write_substream_cd(m.sid, pasid, Cd(d.asid, d.mm.pgd, d.mm.geo))
        self.sync_cd(m, pasid)
        if m.ats_enabled:
            self.atc_inv_master(m, pasid)

    def sync_cd(self, m: Master, ssid: int) -> None:
        """arm_smmu_sync_cd(): CFGI_CD (leaf) for the master's stream, then CMD_SYNC."""
        self.hw.cmdq_publish([build_cmd(CmdqEnt(CMDQ_OP_CFGI_CD, sid=m.sid, ssid=ssid, leaf=True)),
                              build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])

    def sva_unbind(self, sid: int, mm_id: int) -> None:
        """iommu_sva_unbind_device(): the last user of the handle detaches the PASID
        (arm_smmu_remove_dev_pasid()); the domain's last attachment frees it (arm_smmu_sva_domain_free())."""
        pasid = mm_id + 1
        n = self.bonds.get((sid, pasid), 0) - 1
        if n > 0:
            self.bonds[(sid, pasid)] = n
            return
        self.bonds.pop((sid, pasid), None)
        d = self.sva_domains[mm_id]
        m = self.master(sid)
        self.remove_dev_pasid(d, m, pasid)
        if not d.devices:
            self.sva_domain_free(mm_id)

    def remove_dev_pasid(self, d: SvaDomain, m: Master, pasid: int) -> None:
        """arm_smmu_remove_dev_pasid(): clear the CD (arm_smmu_clear_cd()), flush the PASID's ATC, leave the list."""
        self.hw.write_substream_cd(m.sid, pasid, None)
        self.sync_cd(m, pasid)
        if m.ats_enabled:
            self.atc_inv_master(m, pasid)
        d.devices.remove((m, pasid))

    def sva_domain_free(self, mm_id: int) -> None:
        """arm_smmu_sva_domain_free(): the ASID is emptied from the TLB before it may be reused."""
        d = self.sva_domains.pop(mm_id)
        self.tlb_inv_asid(d)

    # ---- invalidation -----------------------------------------------------------------------
    def tlb_inv_asid(self, d: SvaDomain) -> None:
        """arm_smmu_tlb_inv_asid(smmu, d->cd.asid): TLBI_NH_ASID (TLBI_EL2_ASID with E2H) + CMD_SYNC."""
        op = CMDQ_OP_TLBI_EL2_ASID if self.features_e2h else CMDQ_OP_TLBI_NH_ASID
        self.hw.cmdq_publish([build_cmd(CmdqEnt(op, asid=d.asid)), build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])

    def tlb_inv_range_asid(self, iova: int, size: int, asid: int, granule: int, leaf: bool, d: SvaDomain) -> None:
        """arm_smmu_tlb_inv_range_asid(): __arm_smmu_tlb_inv_range() with the domain's leaf size (PAGE_SIZE)."""
        cmd = CmdqEnt(CMDQ_OP_TLBI_EL2_VA if self.features_e2h else CMDQ_OP_TLBI_NH_VA, asid=asid, leaf=leaf)
        self._tlb_inv_range(cmd, iova, size, granule, d)

    def notifier_size(self, start: int, end: int) -> int:
        """The size arm_smmu_mm_arch_invalidate_secondary_tlbs() invalidates: end is exclusive (mm_types); 0 (the
        whole ASID) from CMDQ_MAX_TLBI_OPS pages on without RANGE_INV, or for the whole address space."""
        size = (end - start) & ULONG_MAX
        if not self.features_range_inv:
            if size >= CMDQ_MAX_TLBI_OPS * PAGE_SIZE:
                size = 0
        elif size == ULONG_MAX:
            size = 0
        return size

    def mm_invalidate(self, mm_id: int, start: int, end: int) -> None:
        """arm_smmu_mm_arch_invalidate_secondary_tlbs(mm, start, end): the mm's SVA domain, if it has one."""
        d = self.sva_domains.get(mm_id)
        if d is None:
            return                           # no notifier registered on this mm
        size = self.notifier_size(start, end)
        if not size:
            self.tlb_inv_asid(d)
        else:
            self.tlb_inv_range_asid(start, size, d.asid, PAGE_SIZE, False, d)
        self.sva_atc_inv_domain(d, start, size)

    def sva_atc_inv_domain(self, d: SvaDomain, iova: int, size: int) -> None:
        """arm_smmu_atc_inv_domain() on an SVA domain: one ATC_INV with SSV=1 and the PASID per ATS-enabled
        master's stream, then CMD_SYNC (nr_ats_masters: the attached masters with ATS now)."""
        if not self.features_ats or not any(m.ats_enabled for m, _ssid in d.devices):
            return
        batch = CmdqBatch(self.hw)
        for m, ssid in d.devices:
            if not m.ats_enabled:
                continue
            cmd = self.atc_inv_to_cmd(ssid, iova, size)
            cmd.sid = m.sid
            batch.add(cmd)
        batch.submit()
