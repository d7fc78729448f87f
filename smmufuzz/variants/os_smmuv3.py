"""The OS side under test for an SMMUv3 system: iommu core + io-pgtable-arm + arm-smmu-v3 (mainline).

This is the one interface the harness drives (see exec/runner.py): domains, map/unmap,
gathers, attach/detach and ATS, each returning what the kernel API returns.
"""

from .arm_smmu_v3_sva import ArmSmmuV3SvaDriver
from .core import Domain, IommuCore
from .dma_iommu import DmaIommu
from .gather import Gather
from .io_pgtable_arm import ArmLpaeIoPgtable, LpaeKernelBehaviour, PgtableCfg
from .kthread import Lock


class SmmuV3Os:
    """Linux on one SMMUv3: the variant classes below override one piece each."""

    core_cls = IommuCore
    driver_cls = ArmSmmuV3SvaDriver
    dma_cls = DmaIommu
    DEFERRED_FLUSH = True        # capable(IOMMU_CAP_DEFERRED_FLUSH): DMA-FQ allowed
    KERNEL_VERSION: tuple[int, ...] | None = None   # io-pgtable-arm behaviour of this kernel (None: model default)

    def __init__(self, hw, pg_shift: int, ias: int, oas: int, stage: int):
        self.hw = hw
        self.core = self.core_cls(hw)
        pgcfg = PgtableCfg(pg_shift=pg_shift, ias=ias, oas=oas, stage=stage,
                           kernel=LpaeKernelBehaviour.for_version(self.KERNEL_VERSION))
        self.driver = self.driver_cls(hw, self.core, pgcfg)
        self.stage = stage
        self.domains: dict[int, Domain] = {}
        self.gathers: dict[tuple[int, int], Gather] = {}
        self.dma: dict[int, DmaIommu] = {}
        self.ias = ias
        self.pg_shift = pg_shift
        self.groups: dict[int, Lock] = {}

    def domain(self, dom: int) -> Domain:
        """iommu_paging_domain_alloc() on first use."""
        d = self.domains.get(dom)
        if d is None:
            priv = self.driver.domain_alloc_paging(dom, self.stage)
            d = Domain(dom, self.driver, priv.pgsize_bitmap)
            d.priv = priv
            if getattr(priv.pgtbl, "tlb", None) is not None:
                priv.pgtbl.tlb.domain = d
            self.domains[dom] = d
        return d

    def gather(self, dom: int, gid: int) -> Gather:
        g = self.gathers.get((dom, gid))
        if g is None:
            g = self.gathers[(dom, gid)] = Gather()
        return g

    # ---- the API the harness calls -------------------------------------------------------------
    def map(self, dom, iova, pa, size, prot) -> int:
        return self.core.iommu_map(self.domain(dom), iova, pa, size, prot)

    def map_sg(self, dom, iova, sgl, prot) -> int:
        return self.core.iommu_map_sg(self.domain(dom), iova, sgl, prot)

    def unmap(self, dom, iova, size) -> int:
        return self.core.iommu_unmap(self.domain(dom), iova, size)

    def unmap_fast(self, dom, iova, size, gid) -> int:
        return self.core.iommu_unmap_fast(self.domain(dom), iova, size, self.gather(dom, gid))

    def iotlb_sync(self, dom, gid) -> None:
        self.core.iotlb_sync(self.domain(dom), self.gather(dom, gid))

    def flush_iotlb_all(self, dom) -> None:
        self.core.flush_iotlb_all(self.domain(dom))

    def has_flush_iotlb_all(self, dom) -> bool:
        """Does domain->ops provide flush_iotlb_all (iommu_flush_iotlb_all() is a no-op otherwise)?"""
        return getattr(self.domain(dom).ops, "flush_iotlb_all", None) is not None

    def group_mutex(self, sid: int) -> Lock:
        """struct iommu_group's mutex (iommu.c), which iommu_attach_device(), iommu_detach_device() and an ATS
        change of the device hold: each StreamID is a device alone in its group."""
        lk = self.groups.get(sid)
        if lk is None:
            lk = self.groups[sid] = Lock(f"group[sid {sid}]->mutex")
        return lk

    def attach(self, sid, dom) -> int:
        return self.driver.attach_dev(sid, self.domain(dom).priv)

    def detach(self, sid) -> None:
        self.driver.detach_dev(self.driver.master(sid))

    def set_ats(self, sid, on) -> None:
        self.driver.set_ats_supported(sid, on)

    # ---- the DMA API (dma-iommu.c) ----------------------------------------------------------------
    def cookie(self, dom) -> DmaIommu:
        c = self.dma.get(dom)
        if c is None:
            d = self.domain(dom)
            g = 1 << self.pg_shift
            c = self.dma[dom] = self.dma_cls(self.core, d, 1 << self.ias, g,
                                             lambda pages: [self.hw.mem.free_pages(p, g) for p in pages],
                                             self.hw.mem.faults)
            if getattr(type(self), "FQ_DEFAULT", False):
                c.enable_fq(fallible=False)        # an IOMMU_DOMAIN_DMA_FQ domain
        return c

    def dma_map(self, dom, paddr, size, prot) -> int:
        return self.cookie(dom).map(paddr, size, prot)

    def dma_tried(self, dom) -> tuple[int, int] | None:
        """The IOVA range (iova, size) the last dma_map on dom asked iommu_map() for, even if it failed (and the
        IOVA was freed): a failed map may have replaced a table there and unmapped it again."""
        return self.cookie(dom).tried

    def dma_unmap(self, dom, dma_addr, size) -> int:
        return self.cookie(dom).unmap(dma_addr, size)

    def fq_timeout(self, dom) -> None:
        self.cookie(dom).fq_timeout()

    def enable_fq(self, dom) -> bool | int:
        """iommu_dma_init_fq() through iommu_dma_init_domain(): a flush queue only with
        capable(IOMMU_CAP_DEFERRED_FLUSH) (False without); True once the domain is DMA-FQ, -ENOMEM if the queue's
        allocation failed and it stays strict."""
        if not self.DEFERRED_FLUSH:
            return False
        return True if self.cookie(dom).enable_fq() else -12

    def alloc_can_fail(self, kind: str) -> bool:
        """Does this variant model the failure of allocation `kind` (fail_nth; reference/alloc_faults.py)? Not
        the kernel-C variants (kc*:*: their C allocates through the glue) nor the models compared with them."""
        if getattr(type(self), "KERNEL_TREE", False) or getattr(type(self), "KERNEL_BUILD", None):
            return False
        if kind == "pgtable":
            return getattr(self.driver, "PGTABLE_ALLOC_FAILS", True) and \
                issubclass(getattr(self.driver, "pgtable_cls", object), ArmLpaeIoPgtable)
        return kind in ("fq", "iova")          # dma-iommu.c's; "invs" is the invalidation array's (InvsOs)

    def has_device_reset(self) -> bool:
        """Does the driver re-initialise the SMMU (arm_smmu_device_reset(), SMMUv3 drivers only)?"""
        return all(hasattr(d, "device_reset") for d in getattr(self, "drivers", [self.driver]))

    def device_reset(self) -> None:
        """arm_smmu_device_reset() on every SMMU instance, at probe or resume (the other owner's leftovers in
        its caches: reference/handover.py)."""
        for d in getattr(self, "drivers", [self.driver]):
            d.device_reset()

    def iova_to_phys(self, dom, iova) -> int:
        return self.domain(dom).priv.pgtbl.iova_to_phys(iova)

    # ---- SVA (iommu-sva.c, arm-smmu-v3-sva.c) ----------------------------------------------------
    def has_sva(self) -> bool:
        """Does the driver model SVA (iommu_dev_enable_feature(IOMMU_DEV_FEAT_SVA))? One SMMU instance only; not the
        kc-model:* twins of the io-pgtable-only kc:* variants (whose driver is the SVA-less ArmSmmuV3Driver)."""
        if getattr(type(self), "KERNEL_TREE", False):
            return False
        return getattr(self.driver, "SVA", False) and not hasattr(self, "drivers")

    def sva_bind(self, sid, mm_id, mm) -> int:
        """iommu_sva_bind_device(): the PASID (iommu_sva_get_pasid()), or -errno."""
        return self.driver.sva_bind(sid, mm_id, mm)

    def sva_unbind(self, sid, mm_id) -> None:
        """iommu_sva_unbind_device()."""
        self.driver.sva_unbind(sid, mm_id)

    def mm_invalidate(self, mm_id, start, end) -> None:
        """mmu_notifier_arch_invalidate_secondary_tlbs(mm, start, end) after a CPU TLB flush of the mm."""
        self.driver.mm_invalidate(mm_id, start, end)
