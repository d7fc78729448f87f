"""Seed 003: non-coherent table walks, eager PTE cleaning vs deferred cleaning in .iotlb_sync_map
(Daniel Mentz, "[PATCH 1/2] iommu/io-pgtable-arm: Implement .iotlb_sync_map callback" and
"[PATCH 2/2] drivers/arm-smmu-v3: Implement .iotlb_sync_map callback", 2025-09-27).
"""

from .arm_smmu_v3 import ArmSmmuV3Driver
from .core import IommuCore
from .io_pgtable_arm import MAX_LEVELS, PTE_ADDR_MASK, PTE_TYPE_MASK, PTE_TYPE_TABLE, ArmLpaeIoPgtable
from .os_smmuv3 import SmmuV3Os

M64 = (1 << 64) - 1


class DeferredSyncPgtable(ArmLpaeIoPgtable):
    """io-pgtable-arm with cfg->defer_sync_pte: leaves are not cleaned in map_pages, and
    arm_lpae_iotlb_sync_map() cleans the range afterwards, with the walker exactly as posted."""

    def _sync_leaves(self, ptep: int, num: int) -> None:
        """`if (!cfg->coherent_walk && !cfg->defer_sync_pte)`: defer_sync_pte is set."""

    def iotlb_sync_map(self, iova: int, size: int) -> int:
        """arm_lpae_iotlb_sync_map() (posted): NULL op on coherent walks."""
        return self._sync_map(iova, size, self.start_level, self.pgd)

    def _sync_map(self, iova: int, size: int, lvl: int, ptep: int) -> int:
        """__arm_lpae_iotlb_sync_map() as posted, with C's unsigned long / int arithmetic."""
        self.hw.tick()
        block_size = self.block_size(lvl)
        ret = 0
        synced_entries = 0
        shift = self.lvl_shift(lvl - 1) + self.pgd_idx(lvl - 1)
        iova_offset = iova & ((1 << shift) - 1)
        sync_idx_start = self.lvl_idx(iova, lvl)
        sync_idx_end = ((iova_offset + size + block_size - self.granule) & M64) >> self.lvl_shift(lvl)
        max_entries = self.max_entries(sync_idx_start)
        num_entries = min((sync_idx_end - sync_idx_start) & M64, max_entries)
        ptep += 8 * sync_idx_start
        if lvl < MAX_LEVELS - 1:
            for i in range(num_entries):
                pte = self.rd(ptep + 8 * i)          # WARN_ON(!pte)
                if pte & PTE_TYPE_MASK == PTE_TYPE_TABLE:
                    n = i - synced_entries
                    if n:
                        self._sync_pte(ptep + 8 * synced_entries, n)
                        synced_entries += n
                    ret = self._sync_map(iova, size, lvl + 1, pte & PTE_ADDR_MASK)
                    synced_entries += 1
                synced = block_size - (iova & (block_size - 1))
                size = (size - synced) & M64
                iova = (iova + synced) & M64
        if synced_entries != num_entries:
            self._sync_pte(ptep + 8 * synced_entries, num_entries - synced_entries)
        return ret


class FixedSyncPgtable(DeferredSyncPgtable):
    """A sync_map walker right by construction: every table visited is clipped to the span it
    really covers (a concatenated or short PGD included), contiguous non-table PTEs are cleaned
    in one CMO, table PTEs (cleaned when installed) are skipped, and errors are returned."""

    def iotlb_sync_map(self, iova: int, size: int) -> int:
        if not size:
            return 0            # nothing to clean (and iommu_map() of 0 bytes succeeds elsewhere too)
        if iova >> self.cfg.ias:
            return -22
        end = min(iova + size, 1 << self.cfg.ias)
        return self._sync_range(iova, end, self.start_level, self.pgd)

    def _sync_range(self, lo: int, hi: int, lvl: int, table: int) -> int:
        self.hw.tick()
        shift = self.lvl_shift(lvl)
        first, last = self.lvl_idx(lo, lvl), self.lvl_idx(hi - 1, lvl)
        run = first
        if lvl < MAX_LEVELS - 1:
            for i in range(first, last + 1):
                pte = self.rd(table + 8 * i)
                if pte & PTE_TYPE_MASK != PTE_TYPE_TABLE:
                    continue
                if i > run:
                    self._sync_pte(table + 8 * run, i - run)
                va = (lo >> (shift + self.bpl + self.pgd_idx(lvl)) << (shift + self.bpl + self.pgd_idx(lvl))) \
                    | (i << shift)
                ret = self._sync_range(max(lo, va), min(hi, va + (1 << shift)), lvl + 1, pte & PTE_ADDR_MASK)
                if ret:
                    return ret
                run = i + 1
        if last + 1 > run:
            self._sync_pte(table + 8 * run, last + 1 - run)
        return 0


class _DeferredDriverV1(ArmSmmuV3Driver):
    pgtable_cls = DeferredSyncPgtable

    def iotlb_sync_map(self, domain, iova: int, size: int) -> int:
        """arm_smmu_iotlb_sync_map() as posted: the io-pgtable op's value is dropped."""
        ops = domain.priv.pgtbl
        if ops is None or ops.cfg.coherent_walk:      # io-pgtable leaves the op NULL on coherent walks
            return 0
        ops.iotlb_sync_map(iova, size)
        return 0


class _DeferredDriverFixed(_DeferredDriverV1):
    pgtable_cls = FixedSyncPgtable

    def iotlb_sync_map(self, domain, iova: int, size: int) -> int:
        """Mostafa's review: return what io-pgtable returns."""
        ops = domain.priv.pgtbl
        if ops is None or ops.cfg.coherent_walk:
            return 0
        return ops.iotlb_sync_map(iova, size)


class _NoSyncMapCore(IommuCore):
    def iommu_sync_map(self, domain, iova: int, size: int) -> int:
        """The caller used iommu_map_nosync() (or ops->map_pages directly): no iotlb_sync_map."""
        return 0


class _NoUnmapCleanPgtable(FixedSyncPgtable):
    def _clear_pte(self, ptep: int, num: int) -> None:
        """__arm_lpae_clear_pte() with its clean deferred too (and never done before the TLBI)."""
        for i in range(num):
            self.mem.cpu_write(ptep + 8 * i, 0)


class _NoUnmapCleanDriver(_DeferredDriverFixed):
    pgtable_cls = _NoUnmapCleanPgtable


class Coherent(SmmuV3Os):
    """Baseline: mainline io-pgtable-arm + arm-smmu-v3 on an SMMU whose walks snoop the CPU caches."""
    HW_OVERRIDES = {"coherent": True}


class Eager(SmmuV3Os):
    """Mainline on a non-coherent SMMU: every PTE written is cleaned at once (__arm_lpae_sync_pte)."""
    HW_OVERRIDES = {"coherent": False}


class DeferredV1(Eager):
    """The patch exactly as posted: leaf cleans skipped, posted walker, SMMUv3 wrapper returning 0."""
    driver_cls = _DeferredDriverV1


class DeferredFixed(Eager):
    """defer_sync_pte with a correct walker and the reviewers' points applied."""
    driver_cls = _DeferredDriverFixed


class DeferredNoSync(DeferredFixed):
    """defer_sync_pte, but the map path returns without iotlb_sync_map (iommu_map_nosync)."""
    core_cls = _NoSyncMapCore


class DeferredUnmapClean(DeferredFixed):
    """defer_sync_pte that also defers the clean of cleared PTEs on unmap (a planted bug)."""
    driver_cls = _NoUnmapCleanDriver
