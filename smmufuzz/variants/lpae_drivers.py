"""IOMMUs with one translation context per domain and register-style TLB maintenance, on
io-pgtable-arm: arm-smmu (v2), qcom_iommu, ipmmu-vmsa. A TLBI register write takes effect by the
next TLB sync; "sync" polls for completion (hw.tlbi / hw.tlb_sync)."""

from ..reference import cmdq as C
from .arm_smmu_v3 import Master, MasterTable
from .io_pgtable_arm import ArmLpaeIoPgtable, PgtableCfg
from .os_smmuv3 import SmmuV3Os


class ContextDomain:
    """The per-domain state these drivers share: context (ASID/VMID), io-pgtable, attached masters."""

    def __init__(self, stage: int, asid: int, vmid: int):
        self.stage, self.asid, self.vmid = stage, asid, vmid
        self.pgtbl = None
        self.pgsize_bitmap = 0
        self.smmu_attached = False
        self.devices: list = []


class ContextDriver(MasterTable):
    """What arm-smmu, qcom_iommu and ipmmu-vmsa have in common: context programming on attach and the
    io-pgtable flush callbacks below (each driver sets its own; None means the callback is absent)."""

    pgtable_cls = ArmLpaeIoPgtable
    has_add_page = True
    pgsize_limit = 0

    def __init__(self, hw, core, pgcfg: PgtableCfg):
        self.hw, self.core, self.pgcfg = hw, core, pgcfg
        self.masters: dict[int, Master] = {}

    jason = 0          # which of Jason Gunthorpe's seed-000 fixes this build carries (0: none, 1, 2)

    def domain_alloc_paging(self, dom_id: int, stage: int) -> ContextDomain:
        d = ContextDomain(stage, dom_id + 1 if stage == 1 else 0, dom_id + 1 if stage == 2 else 0)
        d.pgtbl = self.make_pgtable(d, stage)
        d.pgsize_bitmap = d.pgtbl.cfg.pgsize_bitmap if hasattr(d.pgtbl, "cfg") else d.pgtbl.pgsize_bitmap
        return d

    def make_pgtable(self, d: ContextDomain, stage: int):
        cfg = PgtableCfg(**{**self.pgcfg.__dict__, "stage": stage, "coherent_walk": self.hw.cfg.coherent,
                            "pgsize_limit": self.pgsize_limit})
        return self.pgtable_cls(cfg, self.hw, _ContextFlushOps(self, d))

    def hw_format(self, d: ContextDomain):
        """What the hardware is told about the table format (TCR / context-bank format fields)."""
        from ..reference.lpae import Geometry
        p = d.pgtbl
        return Geometry(p.cfg.pg_shift, p.cfg.ias, p.start_level)

    def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot):
        return domain.priv.pgtbl.map_pages(iova, paddr, pgsize, pgcount, prot)

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        return domain.priv.pgtbl.unmap_pages(iova, pgsize, pgcount, gather)

    # ---- register helpers --------------------------------------------------------------------
    def tlbi_va(self, d: ContextDomain, iova: int, size: int, granule: int, leaf: bool) -> None:
        """One TLBIVA(L) / TLBIIPAS2(L) register write per granule (arm_smmu_tlb_inv_range_s1/_s2)."""
        op = C.CMD_TLBI_NH_VA if d.stage == 1 else C.CMD_TLBI_S2_IPA
        end = iova + size
        if not granule & 0xFFF:                  # the loop's writes, as one run (same state)
            n = max(1, -(-(end - iova) // granule))
            self.hw.tlbi_run(op, iova & ~0xFFF, granule, n, asid=d.asid, vmid=d.vmid, leaf=leaf)
            return
        while True:
            self.hw.tlbi(op, asid=d.asid, vmid=d.vmid, addr=iova & ~0xFFF, leaf=leaf)
            iova += granule
            if iova >= end:
                break

    def tlbi_context(self, d: ContextDomain) -> None:
        """TLBIASID (stage 1) or TLBIVMID (stage 2)."""
        if d.stage == 1:
            self.hw.tlbi(C.CMD_TLBI_NH_ASID, asid=d.asid)
        else:
            self.hw.tlbi(C.CMD_TLBI_S12_VMALL, vmid=d.vmid)

    # ---- attach -------------------------------------------------------------------------------
    def _write_context(self, m: Master) -> None:
        """Program the stream mapping / context bank for the master (or fault it when detached)."""
        from ..reference.ste import Ste
        d = m.domain
        if d is None:
            ste = Ste("abort")
        else:
            ste = Ste("s1" if d.stage == 1 else "s2", asid=d.asid, vmid=d.vmid, ttb=d.pgtbl.pgd,
                      geo=self.hw_format(d))
        self.hw.write_ste(m.sid, ste)
        self.hw.cmdq_publish([(C.CMD_CFGI_STE | (m.sid << 32), 1), (C.CMD_SYNC, 0)])

    def detach_dev(self, m: Master) -> None:
        if m.domain is None:
            return
        m.domain.devices.remove(m)
        m.domain = None
        self._write_context(m)

    def attach_dev(self, sid: int, d: ContextDomain) -> int:
        m = self.master(sid)
        self.detach_dev(m)
        d.smmu_attached = True
        m.domain = d
        d.devices.append(m)
        self._write_context(m)
        return 0

    def set_ats_supported(self, sid: int, on: bool) -> None:
        """No ATS on these IOMMUs."""


class _ContextFlushOps:
    """The driver's iommu_flush_ops bound to one domain."""

    def __init__(self, drv: ContextDriver, d: ContextDomain):
        self.drv, self.d = drv, d
        self.domain = None
        if not drv.has_add_page:
            self.tlb_add_page = None

    def tlb_flush_all(self) -> None:
        self.drv.tlb_flush_all(self.d)

    def tlb_flush_walk(self, iova: int, size: int, granule: int) -> None:
        self.drv.tlb_flush_walk(self.d, iova, size, granule)

    def tlb_add_page(self, gather, iova: int, granule: int) -> None:
        self.drv.tlb_add_page(self.d, gather, iova, granule)


class ArmSmmuV2Driver(ContextDriver):
    """arm-smmu (v2) (drivers/iommu/arm/arm-smmu/arm-smmu.c)."""

    def tlb_add_page(self, d, gather, iova, granule) -> None:
        """arm_smmu_tlb_add_page_s1/_s2(): TLBIVAL / TLBIIPAS2L at once; nothing goes into the gather."""
        self.tlbi_va(d, iova, granule, granule, leaf=True)

    def tlb_flush_walk(self, d, iova, size, granule) -> None:
        """arm_smmu_tlb_inv_walk_s1/_s2(): TLBIVA / TLBIIPAS2 over the range, then a context sync."""
        self.tlbi_va(d, iova, size, granule, leaf=False)
        self.hw.tlb_sync()

    def tlb_flush_all(self, d) -> None:
        """arm_smmu_tlb_inv_context_s1/_s2(): TLBIASID / TLBIVMID, then sync."""
        self.tlbi_context(d)
        self.hw.tlb_sync()

    def iotlb_sync(self, domain, gather) -> None:
        """arm_smmu_iotlb_sync(): only waits for the TLBIs add_page already wrote (nothing without an SMMU)."""
        if domain.priv.smmu_attached:
            self.hw.tlb_sync()

    def flush_iotlb_all(self, domain) -> None:
        """arm_smmu_flush_iotlb_all(): flush_ops->tlb_flush_all()."""
        if domain.priv.smmu_attached:
            self.tlb_flush_all(domain.priv)


class QcomIommuDriver(ArmSmmuV2Driver):
    """qcom_iommu (drivers/iommu/arm/arm-smmu/qcom_iommu.c): the same TLB registers, but
    flush_iotlb_all (and so iotlb_sync) is only a TLB sync."""

    pgsize_limit = 0x1000

    def flush_iotlb_all(self, domain) -> None:
        """qcom_iommu_flush_iotlb_all(): qcom_iommu_tlb_sync() only."""
        if domain.priv.pgtbl is not None:
            self.hw.tlb_sync()

    def iotlb_sync(self, domain, gather) -> None:
        """qcom_iommu_iotlb_sync(): qcom_iommu_flush_iotlb_all()."""
        self.flush_iotlb_all(domain)


class IpmmuVmsaDriver(ContextDriver):
    """ipmmu-vmsa (drivers/iommu/ipmmu-vmsa.c): no tlb_add_page; every flush is a whole-context flush."""

    has_add_page = False

    def tlb_flush_all(self, d) -> None:
        """ipmmu_tlb_flush_all() -> ipmmu_tlb_invalidate(): IMCTR.FLUSH, then wait."""
        self.tlbi_context(d)
        self.hw.tlb_sync()

    def tlb_flush_walk(self, d, iova, size, granule) -> None:
        """ipmmu_tlb_flush(): the whole context."""
        self.tlb_flush_all(d)

    def flush_iotlb_all(self, domain) -> None:
        """ipmmu_flush_iotlb_all(): only once the domain has an IPMMU."""
        if domain.priv.smmu_attached:
            self.tlb_flush_all(domain.priv)

    def iotlb_sync(self, domain, gather) -> None:
        """ipmmu_iotlb_sync(): ipmmu_flush_iotlb_all()."""
        self.flush_iotlb_all(domain)


class ArmSmmuV2Os(SmmuV3Os):
    driver_cls = ArmSmmuV2Driver


class QcomIommuOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = QcomIommuDriver
    CONFIG = {"pg_shift": 12, "ias": 32, "stage": 1}     # ARM_32_LPAE_S1, .ias = 32, 4K pages only
    PGSIZE_BITMAP = 0x1000
    HW_OVERRIDES = {"coherent": False}
    OAS = 40


class IpmmuVmsaOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = IpmmuVmsaDriver
    CONFIG = {"pg_shift": 12, "ias": 32, "stage": 1}     # ARM_32_LPAE_S1, .ias = 32, 4K|2M|1G
    HW_OVERRIDES = {"coherent": False}
    OAS = 40
