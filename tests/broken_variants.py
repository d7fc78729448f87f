"""Deliberately broken, test-only variants: one per finding kind, each a one-line departure from mainline.

Importing this module registers them (`smmufuzz replay --load tests.broken_variants --variant ...`).
"""

from smmufuzz.variants.arm_smmu_v3 import ArmSmmuV3Driver
from smmufuzz.variants.core import IommuCore
from smmufuzz.variants.io_pgtable_arm import PTE_ADDR_MASK, PTE_TYPE_BLOCK, PTE_TYPE_PAGE, ArmLpaeIoPgtable
from smmufuzz.variants.os_smmuv3 import SmmuV3Os
from smmufuzz.variants.registry import register


class _NoSyncDriver(ArmSmmuV3Driver):
    def iotlb_sync(self, domain, gather):
        """arm_smmu_iotlb_sync() that forgets to invalidate."""


class NoIotlbSync(SmmuV3Os):
    driver_cls = _NoSyncDriver


class _OffByOnePgtable(ArmLpaeIoPgtable):
    def _init_pte_leaves(self, paddr, prot, lvl, num, ptep):
        """Writes every leaf one granule too high."""
        super()._init_pte_leaves(paddr + self.granule, prot, lvl, num, ptep)


class _PgtableDriver(ArmSmmuV3Driver):
    pgtable_cls = ArmLpaeIoPgtable


class _OffByOneDriver(_PgtableDriver):
    pgtable_cls = _OffByOnePgtable


class WrongPa(SmmuV3Os):
    driver_cls = _OffByOneDriver


class _NoLeafCleanPgtable(ArmLpaeIoPgtable):
    def _init_pte_leaves(self, paddr, prot, lvl, num, ptep):
        """__arm_lpae_init_pte() without __arm_lpae_sync_pte(): leaves stay in the CPU cache."""
        pte = prot | (PTE_TYPE_PAGE if lvl == 3 else PTE_TYPE_BLOCK)
        for i in range(num):
            self.mem.cpu_write(ptep + 8 * i, pte | ((paddr + i * self.block_size(lvl)) & PTE_ADDR_MASK))


class _NoLeafCleanDriver(_PgtableDriver):
    pgtable_cls = _NoLeafCleanPgtable


class NoLeafClean(SmmuV3Os):
    driver_cls = _NoLeafCleanDriver


class _NoFlushWalkPgtable(ArmLpaeIoPgtable):
    def _tlb_flush_walk(self, iova, size, granule):
        """Invalidates a freed table's range as leaves (leaf=1), not as a walk: the walk cache keeps the table."""
        self.tlb.drv.tlb_inv_range_domain(iova, size, granule, True, self.tlb.d)


class _NoFlushWalkDriver(_PgtableDriver):
    pgtable_cls = _NoFlushWalkPgtable


class NoFlushWalk(SmmuV3Os):
    driver_cls = _NoFlushWalkDriver


class _NoTtlDriver(ArmSmmuV3Driver):
    def tlb_inv_range_domain(self, iova, size, granule, leaf, d):
        """Range invalidation without the TTL hint: NUM=SCALE=TTL=0 with TG!=0 for one page."""
        return super().tlb_inv_range_domain(iova, size, granule, False, d)

    def _tlb_inv_range(self, cmd, iova, size, granule, d):
        if not size:
            return
        tg = (d.pgsize_bitmap & -d.pgsize_bitmap).bit_length() - 1
        from smmufuzz.variants.arm_smmu_v3 import CmdqBatch
        cmd.tg = (tg - 10) // 2
        num_pages = size >> tg
        batch = CmdqBatch(self.hw)
        while num_pages > 0:
            scale = (num_pages & -num_pages).bit_length() - 1
            num = (num_pages >> scale) & 31
            cmd.scale, cmd.num, cmd.addr = scale, num - 1, iova
            batch.add(cmd)
            iova += num << (scale + tg)
            num_pages -= num << scale
        batch.submit()


class NoTtlRange(SmmuV3Os):
    driver_cls = _NoTtlDriver


class _SpinningCore(IommuCore):
    def _iommu_unmap(self, domain, iova, size, g):
        """__iommu_unmap() with an off-by-one loop bound: it runs past the end into a hole and retries it forever."""
        unmapped = 0
        while unmapped <= size:
            self.hw.tick()
            got = domain.ops.unmap_pages(domain, iova, domain.pgsize_bitmap & -domain.pgsize_bitmap, 1, g)
            iova += got
            unmapped += got
        return unmapped


class SpinOnHole(SmmuV3Os):
    core_cls = _SpinningCore


class _CrashingDriver(ArmSmmuV3Driver):
    def attach_dev(self, sid, d):
        """Assumes the stream is attached already: leaves the old domain's list first."""
        m = self.master(sid)
        m.domain.devices.remove(m)
        return super().attach_dev(sid, d)


class CrashOnDetach(SmmuV3Os):
    core_cls = IommuCore
    driver_cls = _CrashingDriver


class ReadOnlyMaps(SmmuV3Os):
    def map(self, dom, iova, pa, size, prot):
        """Maps everything read-only: safe, but not what mainline makes visible."""
        return super().map(dom, iova, pa, size, prot & ~2 if prot & 1 else prot)


from smmufuzz.variants.dma_iommu import EagerFreeDmaIommu  # noqa: E402
from smmufuzz.variants.iommupt import pt_variant  # noqa: E402


class FqEagerFree(pt_variant("C", True)):
    """DMA-FQ that frees IOVAs and table pages without waiting for any flush."""
    dma_cls = EagerFreeDmaIommu


BROKEN = {
    "test-no-iotlb-sync": (NoIotlbSync, "arm_smmu_iotlb_sync does nothing"),
    "test-wrong-pa": (WrongPa, "leaves point one granule too high"),
    "test-no-leaf-clean": (NoLeafClean, "non-coherent walk, leaf PTEs never cleaned"),
    "test-no-flush-walk": (NoFlushWalk, "tables freed with a leaf-only tlb_flush_walk"),
    "test-no-ttl-range": (NoTtlRange, "range TLBI without TTL: NUM=SCALE=TTL=0"),
    "test-spin-on-hole": (SpinOnHole, "unmap loop retries a hole forever"),
    "test-crash-on-detach": (CrashOnDetach, "an attach that assumes the stream was attached dereferences NULL"),
    "test-read-only": (ReadOnlyMaps, "maps everything read-only (safe, but diverges)"),
    "test-fq-eager-free": (FqEagerFree, "DMA-FQ freeing IOVAs and table pages before any flush"),
}
for _name, (_cls, _why) in BROKEN.items():
    register(_name, _cls, True, "test-only", _why)
