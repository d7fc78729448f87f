"""arm-smmu-v3's classic (pre-invalidation-array) paths (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c)."""

from dataclasses import dataclass, field

from . import arm_smmu_v3_ste as S
from .gather import Gather
from .io_pgtable_arm import ArmLpaeIoPgtable, PgtableCfg

CMDQ_OP_PREFETCH_CFG = 0x01
CMDQ_OP_CFGI_STE = 0x03
CMDQ_OP_CFGI_ALL = 0x04
CMDQ_OP_CFGI_CD = 0x05
CMDQ_OP_TLBI_NH_ALL = 0x10
CMDQ_OP_TLBI_NH_ASID = 0x11
CMDQ_OP_TLBI_NH_VA = 0x12
CMDQ_OP_TLBI_EL2_ALL = 0x20
CMDQ_OP_TLBI_EL2_ASID = 0x21
CMDQ_OP_TLBI_EL2_VA = 0x22
CMDQ_OP_TLBI_S12_VMALL = 0x28
CMDQ_OP_TLBI_S2_IPA = 0x2A
CMDQ_OP_TLBI_NSNH_ALL = 0x30
CMDQ_OP_ATC_INV = 0x40
CMDQ_OP_CMD_SYNC = 0x46
CMDQ_SYNC_0_CS_SEV = 2          # completion signal: SEV (no MSI: ARM_SMMU_OPT_MSIPOLL unset)
ARM_SMMU_SH_ISH = 3
ARM_SMMU_MEMATTR_OIWB = 0xF
CMDQ_BATCH_ENTRIES = 64
CMDQ_TLBI_RANGE_NUM_MAX = 31
ATC_INV_SIZE_ALL = 52
IOMMU_NO_PASID = 0


@dataclass
class CmdqEnt:
    """struct arm_smmu_cmdq_ent (the union members flattened)."""
    opcode: int
    asid: int = 0
    vmid: int = 0
    leaf: bool = False
    ttl: int = 0
    tg: int = 0
    num: int = 0
    scale: int = 0
    addr: int = 0
    sid: int = 0
    ssid: int = 0
    size: int = 0
    substream_valid: bool = False
    glob: bool = False


def build_cmd(ent: CmdqEnt) -> tuple[int, int]:
    """arm_smmu_cmdq_build_cmd(): FIELD_PREP into the two command qwords."""
    op = ent.opcode
    dw0, dw1 = op, 0
    if op in (CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_EL2_VA):
        if op == CMDQ_OP_TLBI_NH_VA:
            dw0 |= (ent.vmid & 0xFFFF) << 32
        dw0 |= (ent.num & 0x1F) << 12 | (ent.scale & 0x1F) << 20 | (ent.asid & 0xFFFF) << 48
        dw1 |= int(ent.leaf) | (ent.ttl & 3) << 8 | (ent.tg & 3) << 10 | (ent.addr & ~0xFFF & ((1 << 64) - 1))
    elif op == CMDQ_OP_TLBI_S2_IPA:
        dw0 |= (ent.num & 0x1F) << 12 | (ent.scale & 0x1F) << 20 | (ent.vmid & 0xFFFF) << 32
        dw1 |= int(ent.leaf) | (ent.ttl & 3) << 8 | (ent.tg & 3) << 10 | (ent.addr & ((1 << 52) - 1) & ~0xFFF)
    elif op == CMDQ_OP_TLBI_NH_ASID:
        dw0 |= (ent.asid & 0xFFFF) << 48 | (ent.vmid & 0xFFFF) << 32
    elif op in (CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_NH_ALL):
        dw0 |= (ent.vmid & 0xFFFF) << 32
    elif op == CMDQ_OP_TLBI_EL2_ASID:
        dw0 |= (ent.asid & 0xFFFF) << 48
    elif op == CMDQ_OP_ATC_INV:
        dw0 |= int(ent.substream_valid) << 11 | int(ent.glob) << 9 | (ent.ssid & 0xFFFFF) << 12 | (ent.sid & 0xFFFFFFFF) << 32
        dw1 |= (ent.size & 0x3F) | (ent.addr & ~0xFFF & ((1 << 64) - 1))
    elif op in (CMDQ_OP_CFGI_STE, CMDQ_OP_CFGI_CD):
        if op == CMDQ_OP_CFGI_CD:
            dw0 |= (ent.ssid & 0xFFFFF) << 12
        dw0 |= (ent.sid & 0xFFFFFFFF) << 32
        dw1 |= int(ent.leaf)
    elif op == CMDQ_OP_PREFETCH_CFG:
        dw0 |= (ent.sid & 0xFFFFFFFF) << 32
    elif op == CMDQ_OP_CFGI_ALL:
        dw1 |= 31                                   # CMDQ_CFGI_1_RANGE: cover the entire SID range
    elif op == CMDQ_OP_CMD_SYNC:      # CS, and MSH/MSIATTR as the driver sets them (unused with CS=SEV)
        dw0 |= CMDQ_SYNC_0_CS_SEV << 12 | ARM_SMMU_SH_ISH << 22 | ARM_SMMU_MEMATTR_OIWB << 24
    return dw0, dw1


# The address field of a by-address TLBI's second qword, as build_cmd() masks it (VA[63:12], IPA[51:12]).
TLBI_ADDR_FIELD = {op: build_cmd(CmdqEnt(op, addr=(1 << 64) - 1))[1] ^ build_cmd(CmdqEnt(op))[1]
                   for op in (CMDQ_OP_TLBI_NH_VA, CMDQ_OP_TLBI_EL2_VA, CMDQ_OP_TLBI_S2_IPA)}


class CmdqBatch:
    """struct arm_smmu_cmdq_batch: flush without sync every CMDQ_BATCH_ENTRIES, sync on submit."""

    def __init__(self, hw):
        self.hw = hw
        self.cmds: list[tuple[int, int]] = []

    def add(self, ent: CmdqEnt) -> None:
        """arm_smmu_cmdq_batch_add()."""
        if len(self.cmds) == CMDQ_BATCH_ENTRIES:
            self.hw.cmdq_publish(self.cmds)
            self.cmds = []
        self.cmds.append(build_cmd(ent))

    def add_words(self, dw0: int, dw1: int) -> None:
        """add() of a command already built."""
        if len(self.cmds) == CMDQ_BATCH_ENTRIES:
            self.hw.cmdq_publish(self.cmds)
            self.cmds = []
        self.cmds.append((dw0, dw1))

    def submit(self) -> None:
        """arm_smmu_cmdq_batch_submit(): the remaining commands plus CMD_SYNC."""
        self.hw.cmdq_publish(self.cmds + [build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])
        self.cmds = []

    def atc_sids(self) -> set[int]:
        """The StreamIDs this batch's ATC invalidations go to."""
        return {dw0 >> 32 for dw0, _dw1 in self.cmds if dw0 & 0xFF == CMDQ_OP_ATC_INV}


@dataclass
class Master:
    """struct arm_smmu_master: one stream ID here."""
    sid: int
    domain: "SmmuDomain | None" = None
    ats_supported: bool = False
    ats_enabled: bool = False
    cdtab_dma: int | None = None     # master->cd_table.cdtab_dma, allocated on the first stage-1 attach


class MasterTable:
    """The driver's per-stream state, created on first use (dev_iommu_priv_get())."""

    masters: dict

    def master(self, sid: int) -> Master:
        m = self.masters.get(sid)
        if m is None:
            m = self.masters[sid] = Master(sid)
        return m


@dataclass
class SmmuDomain:
    """struct arm_smmu_domain (classic): stage, ASID or VMID, io-pgtable, attached masters."""
    stage: int
    asid: int
    vmid: int
    pgtbl: ArmLpaeIoPgtable | None = None
    pgsize_bitmap: int = 0
    smmu_attached: bool = True       # smmu_domain->smmu: finalised at allocation (iommu_paging_domain_alloc(dev))
    devices: list = field(default_factory=list)
    nr_ats_masters: int = 0


class ArmSmmuV3Driver(MasterTable):
    """The driver's domain ops and master management for one SMMU instance."""

    pgtable_cls = ArmLpaeIoPgtable
    CD_TABLE_BITS = 0             # master->cd_table.s1cdmax: one CD (the SVA driver's masters have more)

    def __init__(self, hw, core, pgcfg: PgtableCfg):
        self.hw = hw
        self.core = core
        self.pgcfg = pgcfg
        self.features_range_inv = hw.cfg.range_inv
        self.features_ats = hw.cfg.ats
        self.features_e2h = hw.cfg.e2h
        self.masters: dict[int, Master] = {}

    # ---- domain ----------------------------------------------------------------------------
    def domain_alloc_paging(self, dom_id: int, stage: int) -> SmmuDomain:
        """arm_smmu_domain_alloc_paging() + arm_smmu_domain_finalise(): ASID/VMID and io-pgtable."""
        d = self.new_domain(dom_id, stage)
        cfg = self.pgtable_cfg(stage)
        d.pgtbl = self.pgtable_cls(cfg, self.hw, self.flush_ops(d))
        d.pgsize_bitmap = cfg.pgsize_bitmap
        return d

    def new_domain(self, dom_id: int, stage: int) -> SmmuDomain:
        """The domain with its ASID (stage 1) or VMID (stage 2), before its io-pgtable."""
        return SmmuDomain(stage=stage, asid=dom_id + 1 if stage == 1 else 0, vmid=dom_id + 1 if stage == 2 else 0)

    def pgtable_cfg(self, stage: int) -> PgtableCfg:
        """arm_smmu_domain_finalise()'s io_pgtable_cfg: coherent_walk from ARM_SMMU_FEAT_COHERENCY."""
        return PgtableCfg(**{**self.pgcfg.__dict__, "stage": stage, "coherent_walk": self.hw.cfg.coherent})

    def flush_ops(self, d: SmmuDomain) -> "_FlushOps":
        """arm_smmu_flush_ops bound to d (the io-pgtable cookie)."""
        return _FlushOps(self, d)

    def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot):
        """arm_smmu_map_pages()."""
        return domain.priv.pgtbl.map_pages(iova, paddr, pgsize, pgcount, prot)

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        """arm_smmu_unmap_pages()."""
        ops = domain.priv.pgtbl
        return ops.unmap_pages(iova, pgsize, pgcount, gather) if ops else 0

    def iotlb_sync(self, domain, gather: Gather) -> None:
        """arm_smmu_iotlb_sync(): nothing to do without a pgsize (an empty or core-filled gather)."""
        if not gather.pgsize:
            return
        self.tlb_inv_range_domain(gather.start, gather.end - gather.start + 1, gather.pgsize, True, domain.priv)

    def flush_iotlb_all(self, domain) -> None:
        """arm_smmu_flush_iotlb_all(): smmu_domain->smmu is set from allocation on (6.12's
        arm_smmu_domain_alloc_paging(dev) finalises the domain), so a domain never attached is flushed too."""
        if domain.priv.smmu_attached:
            self.tlb_inv_context(domain.priv)

    # ---- reset ------------------------------------------------------------------------------
    RESET_CMDS = (CMDQ_OP_CFGI_ALL, CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_NSNH_ALL)

    def device_reset(self) -> None:
        """arm_smmu_device_reset() once the command queue is enabled: "Invalidate any cached configuration"
        (CFGI_ALL), then "any stale TLB entries" (TLBI_EL2_ALL with ARM_SMMU_FEAT_HYP, TLBI_NSNH_ALL), each
        issued with its own CMD_SYNC (arm_smmu_cmdq_issue_cmd_with_sync()) while SMMUEN is 0; then CR0.SMMUEN."""
        for op in self.RESET_CMDS:
            if op == CMDQ_OP_TLBI_EL2_ALL and not self.features_e2h:
                continue
            self.hw.cmdq_publish([build_cmd(CmdqEnt(op)), build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])
        self.hw.set_enabled(True)

    # ---- TLB maintenance -------------------------------------------------------------------
    def tlb_inv_context(self, d: SmmuDomain) -> None:
        """arm_smmu_tlb_inv_context(): ASID (or VMID) wide TLBI + sync, then the whole ATC."""
        if d.stage == 1:
            op = CMDQ_OP_TLBI_EL2_ASID if self.features_e2h else CMDQ_OP_TLBI_NH_ASID
            self.hw.cmdq_publish([build_cmd(CmdqEnt(op, asid=d.asid)), build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])
        else:
            self.hw.cmdq_publish([build_cmd(CmdqEnt(CMDQ_OP_TLBI_S12_VMALL, vmid=d.vmid)),
                                  build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])
        self.atc_inv_domain(d, 0, 0)

    def _tlb_inv_range(self, cmd: CmdqEnt, iova: int, size: int, granule: int, d: SmmuDomain) -> None:
        """__arm_smmu_tlb_inv_range(): per-granule TLBIs, or range TLBIs (TG/SCALE/NUM/TTL) with RIL."""
        if not size:
            return
        tg = (d.pgsize_bitmap & -d.pgsize_bitmap).bit_length() - 1 if self.features_range_inv else 0
        batch = CmdqBatch(self.hw)
        self.batch_add_range(batch, cmd, iova, size, granule, tg)
        batch.submit()

    def batch_add_range(self, batch: "CmdqBatch", cmd: CmdqEnt, iova: int, size: int, granule: int, tg: int) -> None:
        """The command loop of __arm_smmu_tlb_inv_range() (arm_smmu_cmdq_batch_add_range() in seed 002):
        tg is log2 of the smallest leaf size when RANGE_INV is used, else 0."""
        end = iova + size
        inv_range = granule
        num_pages = 0
        if self.features_range_inv:
            num_pages = size >> tg
            cmd.tg = (tg - 10) // 2
            if cmd.leaf:
                cmd.ttl = 4 - ((granule.bit_length() - 1 - 3) // (tg - 3))
            elif num_pages & CMDQ_TLBI_RANGE_NUM_MAX == 1:
                num_pages += 1
        if not self.features_range_inv and cmd.opcode in TLBI_ADDR_FIELD:
            self._add_per_granule(batch, cmd, iova, end, inv_range)
            return
        while iova < end:
            self.hw.tick()
            if self.features_range_inv:
                if not num_pages:        # size not a multiple of the leaf size: __ffs(0) is undefined, and on
                    from ..reference.smmu import HangError     # arm64 (rbit/clz: 64) num is 0 and iova never advances
                    raise HangError(f"__arm_smmu_tlb_inv_range(): no pages left below end {end:#x} at iova "
                                    f"{iova:#x} (size not a multiple of the leaf size): the loop does not advance")
                scale = (num_pages & -num_pages).bit_length() - 1
                cmd.scale = scale
                num = (num_pages >> scale) & CMDQ_TLBI_RANGE_NUM_MAX
                cmd.num = num - 1
                inv_range = num << (scale + tg)
                num_pages -= num << scale
            cmd.addr = iova
            batch.add(cmd)
            iova += inv_range

    def _add_per_granule(self, batch: "CmdqBatch", cmd: CmdqEnt, iova: int, end: int, step: int) -> None:
        """The loop above without RANGE_INV: one TLBI per granule, the commands differing only in their
        address field, so built once and the address or'ed in; the same cpu_relax() ticks, commands and
        batch flushes in the same order as the loop makes them one by one."""
        cmd.addr = 0
        dw0, dw1 = build_cmd(cmd)
        mask = TLBI_ADDR_FIELD[cmd.opcode]
        tick = self.hw.tick
        cmds = batch.cmds
        while iova < end:
            room = CMDQ_BATCH_ENTRIES - len(cmds)
            if not room:                        # the next add flushes the full batch first
                tick()
                cmd.addr = iova
                batch.add_words(dw0, dw1 | iova & mask)
                cmds = batch.cmds
                iova += step
                continue
            k = min(room, (end - iova + step - 1) // step)
            for _ in range(k):
                tick()
            last = iova + (k - 1) * step
            cmds.extend([(dw0, dw1 | a & mask) for a in range(iova, last + 1, step)])
            cmd.addr = last
            iova = last + step

    def tlb_inv_range_domain(self, iova: int, size: int, granule: int, leaf: bool, d: SmmuDomain) -> None:
        """arm_smmu_tlb_inv_range_domain(): TLBI by VA/IPA, then the ATC (never leaf-only)."""
        if d.stage == 1:
            cmd = CmdqEnt(CMDQ_OP_TLBI_EL2_VA if self.features_e2h else CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=leaf)
        else:
            cmd = CmdqEnt(CMDQ_OP_TLBI_S2_IPA, vmid=d.vmid, leaf=leaf)
        self._tlb_inv_range(cmd, iova, size, granule, d)
        self.atc_inv_domain(d, iova, size)

    # ---- ATS -------------------------------------------------------------------------------
    @staticmethod
    def atc_inv_to_cmd(ssid: int, iova: int, size: int) -> CmdqEnt:
        """arm_smmu_atc_inv_to_cmd(): one naturally aligned power-of-two span in 4K units."""
        cmd = CmdqEnt(CMDQ_OP_ATC_INV, substream_valid=(ssid != IOMMU_NO_PASID), ssid=ssid)
        if not size:
            cmd.size = ATC_INV_SIZE_ALL
            return cmd
        page_start = iova >> 12
        page_end = (iova + size - 1) >> 12
        log2_span = (page_start ^ page_end).bit_length()
        page_start &= ~((1 << log2_span) - 1)
        cmd.addr = page_start << 12
        cmd.size = log2_span
        return cmd

    def atc_inv_domain(self, d: SmmuDomain, iova: int, size: int) -> None:
        """arm_smmu_atc_inv_domain(): one ATC_INV per SID of every ATS-enabled master, then sync."""
        if not self.features_ats:
            return
        if not d.nr_ats_masters:
            return
        cmd = self.atc_inv_to_cmd(IOMMU_NO_PASID, iova, size)
        batch = CmdqBatch(self.hw)
        for m in d.devices:
            if not m.ats_enabled:
                continue
            cmd.sid = m.sid
            batch.add(cmd)
        batch.submit()

    def atc_inv_master(self, m: Master, ssid: int = IOMMU_NO_PASID, listed_on=None) -> None:
        """arm_smmu_atc_inv_master(): invalidate everything the endpoint may have cached (for one PASID).
        `listed_on`: a domain whose devices list holds m, if m.domain is not one (mid-detach)."""
        cmd = self.atc_inv_to_cmd(ssid, 0, 0)
        cmd.sid = m.sid
        self.hw.cmdq_publish([build_cmd(cmd), build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))])

    # ---- STE -------------------------------------------------------------------------------
    def target_ste(self, m: Master) -> tuple[int, ...]:
        """The STE arm_smmu_attach_dev() (or the blocked domain's attach) asks for: abort when detached; for
        a stage-1 domain the CD table's SSID 0 CD (arm_smmu_make_s1_cd()) is written first
        (arm_smmu_write_cd_entry()), over the live one if the stream was on another stage-1 domain."""
        d = m.domain
        if d is None:
            return S.make_abort_ste()
        p = d.pgtbl
        if d.stage == 1:
            if m.cdtab_dma is None:     # arm_smmu_alloc_cd_tables(): a linear table of 2^s1cdmax CDs
                m.cdtab_dma = self.hw.mem.alloc_coherent(64 << self.CD_TABLE_BITS)
            self.write_cd_entry(m, S.make_s1_cd(d.asid, p.pgd, p.cfg.pg_shift, p.cfg.ias, p.cfg.oas,
                                                p.cfg.coherent_walk))
            return S.make_cdtable_ste(m.cdtab_dma, m.ats_enabled, self.features_e2h, s1cdmax=self.CD_TABLE_BITS)
        return S.make_s2_domain_ste(d.vmid, p.pgd, p.cfg.pg_shift, p.cfg.ias, p.cfg.oas, p.start_level,
                                    p.cfg.coherent_walk, m.ats_enabled)

    write_entry = staticmethod(S.write_entry)
    cd_write_entry = staticmethod(S.write_entry)     # the CD writer's arm_smmu_write_entry()

    def write_cd_entry(self, m: Master, target) -> None:
        """arm_smmu_write_cd_entry() for SSID 0: arm_smmu_write_entry() over the CD, a CFGI_CD (leaf) + CMD_SYNC
        (arm_smmu_cd_writer_sync_entry()) after each step that changed it; the stream's configuration (its
        STE with this CD folded in) is judged like an STE update meanwhile."""
        hw, addr = self.hw, m.cdtab_dma
        cur = list(hw.cd_words(addr))
        if cur == list(target):
            return
        sync = [build_cmd(CmdqEnt(CMDQ_OP_CFGI_CD, sid=m.sid, ssid=IOMMU_NO_PASID, leaf=True)),
                build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))]
        hw.begin_ste_update(m.sid)
        self.cd_write_entry(cur, target, lambda q, v: hw.store_cd(addr, q, v), lambda: hw.cmdq_publish(sync),
                            S.get_cd_used)
        hw.end_ste_update(m.sid)

    def install_ste_for_dev(self, m: Master) -> None:
        """arm_smmu_install_ste_for_dev(): arm_smmu_write_ste() of the target STE to the master's stream."""
        self.write_ste(m.sid, self.target_ste(m))

    def write_ste(self, sid: int, target) -> None:
        """arm_smmu_write_ste(): arm_smmu_write_entry() over the stream table entry, a CFGI_STE + CMD_SYNC
        (arm_smmu_ste_writer_sync_entry()) after each step that changed it, then PREFETCH_CFG (no sync)."""
        self.hw.tick()
        hw = self.hw
        sync = [build_cmd(CmdqEnt(CMDQ_OP_CFGI_STE, sid=sid, leaf=True)), build_cmd(CmdqEnt(CMDQ_OP_CMD_SYNC))]
        hw.begin_ste_update(sid)
        self.write_entry(list(hw.ste_words(sid)), target, lambda q, v: hw.store_ste(sid, q, v),
                         lambda: hw.cmdq_publish(sync))
        hw.end_ste_update(sid)
        hw.cmdq_publish([build_cmd(CmdqEnt(CMDQ_OP_PREFETCH_CFG, sid=sid))])

    def clear_cd(self, m: Master) -> None:
        """arm_smmu_clear_cd(master, IOMMU_NO_PASID): an all-zero CD (V=0) through arm_smmu_write_cd_entry()."""
        if m.cdtab_dma is not None:
            self.write_cd_entry(m, (0,) * 8)

    def switch_domain(self, m: Master, d: SmmuDomain | None, ats: bool) -> None:
        """arm_smmu_attach_prepare() + the STE (and CD) + arm_smmu_attach_commit() (6.12), the stream live
        throughout (no abort STE between two domains). Prepare: the new domain lists the master (counted in
        nr_ats_masters if ATS will be on) before any hardware changes, so both domains send it ATC
        invalidations until commit; ATS going off is disabled at the endpoint (pci_disable_ats(); wmb()).
        The STE's EATS is the new state. Commit: ATS enabled (arm_smmu_enable_ats(): ATC flush, then
        pci_enable_ats()), or the ATC flushed (the translation changed, or ATS went off); the master leaves
        the old domain's list (arm_smmu_remove_master_domain(), uncounted if it had ATS)."""
        old, was = m.domain, m.ats_enabled
        if d is not None:
            if ats:
                d.nr_ats_masters += 1
            d.devices.append(m)
        if was and not ats:
            self.hw.set_ats(m.sid, False)
        m.domain, m.ats_enabled = d, ats
        self.install_ste_for_dev(m)
        if d is not None and d.stage != 1:
            self.clear_cd(m)
        if ats or was:
            self.atc_inv_master(m, IOMMU_NO_PASID, d if d is not None else old)
        if ats and not was:
            self.hw.set_ats(m.sid, True)
        if old is not None:
            old.devices.remove(m)
            if was:
                old.nr_ats_masters -= 1

    def detach_dev(self, m: Master) -> None:
        """iommu_detach_device() -> the blocking domain: arm_smmu_attach_dev_ste() with an abort STE (prepare,
        STE, commit), then arm_smmu_clear_cd(). Not modelled: a CD table kept for PASIDs in use (S1DSS)."""
        if m.domain is None:
            return
        self.switch_domain(m, None, False)
        self.clear_cd(m)

    def attach_dev(self, sid: int, d: SmmuDomain) -> int:
        """arm_smmu_attach_dev() (6.12): finalise, then switch_domain() with ATS on if the master supports it."""
        m = self.master(sid)
        d.smmu_attached = True
        self.switch_domain(m, d, m.ats_supported and self.features_ats)
        return 0

    def set_ats_supported(self, sid: int, on: bool) -> None:
        """The endpoint's ATS capability toggled: takes effect like a re-attach to the same domain."""
        m = self.master(sid)
        m.ats_supported = on
        if m.domain is not None and m.ats_enabled != (on and self.features_ats):
            self.attach_dev(sid, m.domain)


class _FlushOps:
    """arm_smmu_flush_ops: the io-pgtable TLB callbacks bound to one domain (the cookie)."""

    def __init__(self, drv: ArmSmmuV3Driver, d: SmmuDomain):
        self.drv = drv
        self.d = d
        self.domain = None   # the iommu_domain, set once the core wraps it

    def tlb_flush_all(self) -> None:
        """arm_smmu_tlb_inv_context()."""
        self.drv.tlb_inv_context(self.d)

    def tlb_flush_walk(self, iova: int, size: int, granule: int) -> None:
        """arm_smmu_tlb_inv_walk(): non-leaf range invalidation (a table was freed)."""
        self.drv.tlb_inv_range_domain(iova, size, granule, False, self.d)

    def tlb_add_page(self, gather: Gather, iova: int, granule: int) -> None:
        """arm_smmu_tlb_inv_page_nosync(): iommu_iotlb_gather_add_page() (the core's: the tree's under kc-core)."""
        self.drv.core.gather_add_page(self.domain, gather, iova, granule)
