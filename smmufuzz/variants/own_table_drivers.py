"""Seed-000 drivers with their own table formats: mtk_iommu and msm_iommu (io-pgtable-arm-v7s),
sun50i-iommu, sprd-iommu, apple-dart (io-pgtable-dart). Register writes map onto the hardware's
tlbi()/tlb_sync(); a write with no completion poll is modelled as complete when written."""

from ..reference import cmdq as C
from ..reference import formats as F
from .gather import add_range, queued
from .io_pgtable_arm import EINVAL
from .io_pgtable_arm_v7s import ArmV7sIoPgtable
from .io_pgtable_dart import DartIoPgtable
from .lpae_drivers import ContextDriver
from .os_smmuv3 import SmmuV3Os

M64 = (1 << 64) - 1


class _OwnTableDriver(ContextDriver):
    """Stage-1-only drivers whose page table is not io-pgtable-arm."""

    PGTABLE_ALLOC_FAILS = False       # its own table format: fail_nth(pgtable) is not modelled
    STORE_BARRIERS = False            # ... nor its barriers: judged with stores in order (reference/store_order.py)

    def flush_context(self, d) -> None:
        """A whole-context TLB flush with its completion wait."""
        self.hw.tlbi(C.CMD_TLBI_NH_ASID, asid=d.asid)
        self.hw.tlb_sync()

    def flush_range(self, d, start: int, end: int, leaf: bool = True) -> None:
        """A range invalidation [start, end) with its completion wait (empty if start >= end)."""
        if start < end:
            self.hw.tlbi(C.CMD_TLBI_NH_VA, asid=d.asid, addr=start, end=end, leaf=leaf)
        self.hw.tlb_sync()


# ---------------------------------------------------------------------------------------- v7s users
class JasonV2V7s(ArmV7sIoPgtable):
    def _gather_unmapped(self, gather, iova, n, blk) -> None:
        """Jason v2's v7s hunk: no NULL check of the gather."""
        if not queued(gather):
            add_range(gather, iova, n * blk)


class MtkIommuDriver(_OwnTableDriver):
    """mtk_iommu (drivers/iommu/mtk_iommu.c): v7s with NS|NO_PERMS|MTK_EXT and no cfg->tlb; it fills the
    gather itself in mtk_iommu_unmap() and range-flushes it in mtk_iommu_iotlb_sync()."""

    def make_pgtable(self, d, stage):
        cls = JasonV2V7s if self.jason == 2 else ArmV7sIoPgtable
        return cls(self.hw, None, ias=32, oas=32, coherent=self.hw.cfg.coherent, no_perms=True, ns=True)

    def hw_format(self, d):
        return F.V7s(ias=32, no_perms=True)

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        """mtk_iommu_unmap(): add_range before the v7s unmap (removed by both of Jason's versions)."""
        if not self.jason:
            add_range(gather, iova, pgsize * pgcount)
        return domain.priv.pgtbl.unmap_pages(iova, pgsize, pgcount, gather)

    def tlb_flush_range_sync(self, d, iova: int, size: int) -> None:
        """mtk_iommu_tlb_flush_range_sync(): INVLD_START/END_A = MTK_IOMMU_TLB_ADDR(iova / iova+size-1),
        then poll CPE_DONE. A start above the end invalidates nothing."""
        def tlb_addr(a):
            a &= M64
            return ((a & 0xFFFFFFFF) & 0xFFFFF000) | (a >> 32)
        start, last = tlb_addr(iova), tlb_addr(iova + size - 1)
        # the M4U keeps no separate walk cache: a range invalidation drops every cached step of the range
        self.flush_range(d, start, last + 1, leaf=False)

    def iotlb_sync(self, domain, gather) -> None:
        """mtk_iommu_iotlb_sync(): length = end - start + 1."""
        self.tlb_flush_range_sync(domain.priv, gather.start, (gather.end - gather.start + 1) & M64)

    def iotlb_sync_map(self, domain, iova, size) -> int:
        """mtk_iommu_sync_map(): the hardware caches misses, so new mappings are range-flushed."""
        self.tlb_flush_range_sync(domain.priv, iova, size)
        return 0

    def flush_iotlb_all(self, domain) -> None:
        """mtk_iommu_flush_iotlb_all(): F_ALL_INVLD (no completion poll)."""
        if domain.priv.smmu_attached:
            self.flush_context(domain.priv)


class MsmIommuDriver(_OwnTableDriver):
    """msm_iommu (drivers/iommu/msm_iommu.c): v7s with AP permissions and immediate TLBIVA writes;
    no iotlb_sync op at all (completion is implied by the client's later register write)."""

    def make_pgtable(self, d, stage):
        cls = JasonV2V7s if self.jason == 2 else ArmV7sIoPgtable
        return cls(self.hw, _MsmFlushOps(self, d), ias=32, oas=32, coherent=self.hw.cfg.coherent)

    def hw_format(self, d):
        return F.V7s(ias=32)

    def tlbiva_range(self, d, iova, size, gran) -> None:
        """__flush_iotlb_range(): one TLBIVA per granule (modelled complete when written)."""
        end = iova + size
        if iova < end and not gran & 0xFFF and end <= 1 << 32:   # the loop's writes, as one run (same state)
            self.hw.tlbi_run(C.CMD_TLBI_NH_VA, iova & 0xFFFFF000, gran, -(-(end - iova) // gran), asid=d.asid)
            iova = end
        while iova < end:
            self.hw.tlbi(C.CMD_TLBI_NH_VA, asid=d.asid, addr=iova & 0xFFFFF000)
            iova += gran
        self.hw.tlb_sync()

    def iotlb_sync_map(self, domain, iova, size) -> int:
        """msm_iommu_sync_map(): TLBIVA over the new range."""
        self.tlbiva_range(domain.priv, iova, size, 0x1000)
        return 0

    iotlb_sync = None
    flush_iotlb_all = None


class _MsmFlushOps:
    """msm_iommu_flush_ops with the domain as cookie: TLBIALL / TLBIVA ranges, no sync register."""

    def __init__(self, drv, d):
        self.drv, self.d, self.domain = drv, d, None

    def tlb_flush_all(self) -> None:
        self.drv.flush_context(self.d)

    def tlb_flush_walk(self, iova, size, granule) -> None:
        self.drv.tlbiva_range(self.d, iova, size, granule)

    def tlb_add_page(self, gather, iova, granule) -> None:
        self.drv.tlbiva_range(self.d, iova, granule, granule)


# ---------------------------------------------------------------------------------------- sun50i
class Sun50iTable:
    """sun50i-iommu's own table: 4096 DTEs (16K) -> 256-entry PTs (1K); 4K pages, ACI permissions."""

    def __init__(self, hw, coherent: bool):
        self.hw, self.mem, self.coherent = hw, hw.mem, coherent
        self.pgsize_bitmap = 0x1000
        self.pgd = self.mem.alloc_pages(16384)
        self._flush(self.pgd, 16384)

    def _flush(self, p: int, size: int) -> None:
        """sun50i_table_flush(): dma_sync_single_for_device()."""
        if not self.coherent:
            self.mem.clean(p, size)

    def pte_for(self, iova: int, alloc: bool) -> int | None:
        """sun50i_dte_get_page_table()."""
        dte_p = self.pgd + 4 * (iova >> 20 & 0xFFF)
        dte = self.mem.cpu_read(dte_p)
        if dte & 3 != 1:
            if not alloc:
                return None
            pt = self.mem.alloc_pages(1024)
            self._flush(pt, 1024)
            self.mem.cpu_write(dte_p, (pt & 0xFFFFFC00) | 1)
            self._flush(dte_p, 4)
            dte = self.mem.cpu_read(dte_p)
        return (dte & 0xFFFFFC00) + 4 * (iova >> 12 & 0xFF)

    def iova_to_phys(self, iova: int) -> int:
        """sun50i_iommu_iova_to_phys(): 0 without a valid DTE and page-valid PTE."""
        ptep = self.pte_for(iova, False)
        pte = self.mem.cpu_read(ptep) if ptep is not None else 0
        return (pte & 0xFFFFF000) + (iova & 0xFFF) if pte & 2 else 0

    @staticmethod
    def mk_pte(paddr: int, prot: int) -> int:
        aci = {3: 4, 1: 2, 2: 3}.get(prot & 3, 1)
        return (paddr & 0xFFFFF000) | aci << 4 | 2


class Sun50iDriver(_OwnTableDriver):
    """sun50i-iommu (drivers/iommu/sun50i-iommu.c): one 4K page per map/unmap call; iotlb_sync and
    flush_iotlb_all flush the whole TLB and the PTW cache; sync_map zaps the boundaries."""

    def make_pgtable(self, d, stage):
        return Sun50iTable(self.hw, self.hw.cfg.coherent)

    def hw_format(self, d):
        return F.Sun50i()

    def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot):
        """sun50i_iommu_map(): maps one page whatever the count."""
        t = domain.priv.pgtbl
        self.hw.tick()
        p = t.pte_for(iova, True)
        if self.hw.mem.cpu_read(p) & 2:
            return -16, 0       # -EBUSY
        self.hw.mem.cpu_write(p, t.mk_pte(paddr, prot))     # prot without R/W: ACI NONE, inaccessible
        t._flush(p, 4)
        return 0, pgsize

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        """sun50i_iommu_unmap(): one page per call."""
        t = domain.priv.pgtbl
        self.hw.tick()
        p = t.pte_for(iova, False)
        if p is None or not self.hw.mem.cpu_read(p) & 2:
            return 0
        self.hw.mem.cpu_write(p, 0)
        t._flush(p, 4)
        if self.jason:
            add_range(gather, iova, 0x1000)
        return 0x1000

    def flush_iotlb_all(self, domain) -> None:
        """sun50i_iommu_flush_iotlb_all(): MACRO/MICRO TLB + PTW cache flush, polled."""
        if domain.priv.smmu_attached:
            self.flush_context(domain.priv)

    def iotlb_sync(self, domain, gather) -> None:
        self.flush_iotlb_all(domain)

    def iotlb_sync_map(self, domain, iova, size) -> int:
        """sun50i_iommu_iotlb_sync_map(): zap the TLB at the range's boundary pages and the PTW cache at
        its boundary megabytes (the hardware may have cached those misses)."""
        d = domain.priv
        for a in ([iova, iova + 0x1000] + ([iova + size, iova + size + 0x1000] if size > 0x1000 else [])):
            self.flush_range(d, a, a + 0x1000)
        for a in ([iova, iova + (1 << 20)] + ([iova + size, iova + size + (1 << 20)] if size > (1 << 20) else [])):
            self.flush_range(d, a & ~0xFFFFF, (a & ~0xFFFFF) + (1 << 20), leaf=False)
        return 0


# ---------------------------------------------------------------------------------------- sprd
class SprdTable:
    """sprd-iommu's flat table: one u32 page number per 4K page of the 256M aperture."""

    def __init__(self, hw):
        self.hw, self.mem = hw, hw.mem
        self.pgsize_bitmap = 0x1000
        self.end = (1 << 28) - 1
        self.pgd = self.mem.alloc_pages(4 << 16)

    def iova_to_phys(self, iova: int) -> int:
        """sprd_iommu_iova_to_phys(): the entry's page number, whatever it holds (0 outside the aperture)."""
        if iova > self.end:
            return 0
        return (self.mem.cpu_read(self.pgd + 4 * (iova >> 12)) << 12) + (iova & 0xFFF)


class SprdDriver(_OwnTableDriver):
    """sprd-iommu (drivers/iommu/sprd-iommu.c): overwrites entries on map, clears them on unmap and
    returns the size whatever was there; every sync is a full TLB clear (a register write, no poll)."""

    def make_pgtable(self, d, stage):
        return SprdTable(self.hw)

    def hw_format(self, d):
        return F.SprdFlat()

    def map_pages(self, domain, iova, paddr, pgsize, pgcount, prot):
        """sprd_iommu_map(): -EINVAL before a device is attached."""
        d, t = domain.priv, domain.priv.pgtbl
        size = pgcount * 0x1000
        if not d.devices or iova + size > t.end + 1:
            return -EINVAL, 0
        self.hw.tick()
        for i in range(pgcount):
            self.hw.mem.cpu_write(t.pgd + 4 * ((iova >> 12) + i), ((paddr >> 12) + i) & 0xFFFFFFFF)
        return 0, size

    def unmap_pages(self, domain, iova, pgsize, pgcount, gather):
        """sprd_iommu_unmap()."""
        t = domain.priv.pgtbl
        size = pgcount * 0x1000
        if iova + size > t.end + 1:
            return 0
        self.hw.tick()
        for i in range(pgcount):
            self.hw.mem.cpu_write(t.pgd + 4 * ((iova >> 12) + i), 0)
        if self.jason:
            add_range(gather, iova, size)
        return size

    def iotlb_sync_map(self, domain, iova, size) -> int:
        """sprd_iommu_sync_map(): write 0xffffffff to the UPDATE register (clears the whole TLB)."""
        self.flush_context(domain.priv)
        return 0

    def iotlb_sync(self, domain, gather) -> None:
        """sprd_iommu_sync(): sprd_iommu_sync_map(domain, 0, 0)."""
        self.iotlb_sync_map(domain, 0, 0)

    flush_iotlb_all = None


# ---------------------------------------------------------------------------------------- apple-dart
class DartDriver(_OwnTableDriver):
    """apple-dart (drivers/iommu/apple-dart.c): no io-pgtable TLB callbacks; iotlb_sync, iotlb_sync_map
    and flush_iotlb_all are all apple_dart_domain_flush_tlb(): a per-stream full flush, polled."""

    def make_pgtable(self, d, stage):
        t = DartIoPgtable(self.hw)
        t.jason = self.jason
        return t

    def hw_format(self, d):
        return F.Dart2()

    def domain_flush_tlb(self, d) -> None:
        if d.devices:                   # a domain with no stream attached gets no flush
            self.flush_context(d)

    def attach_dev(self, sid, d) -> int:
        """apple_dart_setup_translation() ends with hw->invalidate_tlb() for the stream: the DART TLB is
        per stream, so nothing cached before the attach survives it (modelled as a flush of the context)."""
        ret = super().attach_dev(sid, d)
        self.flush_context(d)
        return ret

    def iotlb_sync(self, domain, gather) -> None:
        self.domain_flush_tlb(domain.priv)

    def iotlb_sync_map(self, domain, iova, size) -> int:
        self.domain_flush_tlb(domain.priv)
        return 0

    def flush_iotlb_all(self, domain) -> None:
        self.domain_flush_tlb(domain.priv)


class MtkOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = MtkIommuDriver
    OAS = 32
    # Whether the M4U caches level-1 walks is not documented; v7s frees an L2 table with no walk
    # invalidation when cfg->tlb is NULL, so a walk cache would make every unmap_fast a use-after-free
    # window until the caller's iotlb_sync. Modelled without one (say so in findings).
    HW_OVERRIDES = {"walk_cache": False}
    CONFIG = {"pg_shift": 12, "ias": 32, "stage": 1}
    PGSIZE_BITMAP = (1 << 12) | (1 << 16) | (1 << 20) | (1 << 24)
    NO_PERMS = True


class MsmOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = MsmIommuDriver
    OAS = 32
    CONFIG = {"pg_shift": 12, "ias": 32, "stage": 1}
    PGSIZE_BITMAP = (1 << 12) | (1 << 16) | (1 << 20) | (1 << 24)


class Sun50iOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = Sun50iDriver
    OAS = 32                 # PTE[31:12]
    CONFIG = {"pg_shift": 12, "ias": 32, "stage": 1}
    PGSIZE_BITMAP = 1 << 12
    HW_OVERRIDES = {"coherent": False}


class SprdOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = SprdDriver
    OAS = 32                 # (u32)paddr >> 12
    PA_MIN = 0x1000          # an entry of 0 means unmapped: physical page 0 cannot be mapped
    CONFIG = {"pg_shift": 12, "ias": 28, "stage": 1}
    PGSIZE_BITMAP = 1 << 12
    HW_OVERRIDES = {"coherent": True}
    NO_PERMS = True


class DartOs(SmmuV3Os):
    DEFERRED_FLUSH = False       # no IOMMU_CAP_DEFERRED_FLUSH: dma-iommu stays strict
    driver_cls = DartDriver
    OAS = 42
    CONFIG = {"pg_shift": 14, "ias": 36, "stage": 1}
    PGSIZE_BITMAP = 1 << 14
    HW_OVERRIDES = {"coherent": True}
