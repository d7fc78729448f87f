"""The iommu core's map/unmap paths (drivers/iommu/iommu.c), with the gather rules as overridable hooks."""

from .gather import Gather, add_page, add_range, gather_init

EINVAL, ENODEV = 22, 19
M64 = (1 << 64) - 1


def iommu_pgsize(bitmap: int, iova: int, paddr: int, size: int) -> tuple[int, int]:
    """iommu_pgsize(): the largest page size that fits, and how many of them before a bigger one fits."""
    merge = paddr | iova
    pgsizes = bitmap & ((2 << (size.bit_length() - 1)) - 1)          # GENMASK(__fls(size), 0)
    if merge:
        pgsizes &= (2 << ((merge & -merge).bit_length() - 1)) - 1      # GENMASK(__ffs(merge), 0)
    assert pgsizes, "BUG_ON(!pgsizes)"
    pgsize_idx = pgsizes.bit_length() - 1
    pgsize = 1 << pgsize_idx
    pgsizes = bitmap & ~((2 << pgsize_idx) - 1)
    if pgsizes:
        pgsize_idx_next = (pgsizes & -pgsizes).bit_length() - 1
        if not ((iova ^ paddr) & ((1 << pgsize_idx_next) - 1)):
            offset = (1 << pgsize_idx_next) - (merge & ((1 << pgsize_idx_next) - 1))
            if offset + (1 << pgsize_idx_next) <= M64 and offset + (1 << pgsize_idx_next) <= size:
                size = offset
    return pgsize, size >> pgsize_idx


class Domain:
    """struct iommu_domain: a paging domain backed by a driver (domain->ops) and its page table."""

    def __init__(self, dom_id: int, ops, pgsize_bitmap: int):
        self.id = dom_id
        self.ops = ops
        self.pgsize_bitmap = pgsize_bitmap


class IommuCore:
    """drivers/iommu/iommu.c as in mainline: skip the driver on an empty gather (90c5def10bea) and
    fill an empty gather after a successful unmap chunk (Robin Murphy, "iommu: Ensure .iotlb_sync
    is called correctly", v2)."""

    def __init__(self, hw):
        self.hw = hw

    # ---- gather rules (the seed-000 family overrides these) --------------------------------
    def sync_skips_gather(self, g: Gather) -> bool:
        """iommu_iotlb_sync(): 90c5def10bea skips the driver unless start < end."""
        return not (g.start < g.end)

    def fill_after_unmap_chunk(self, g: Gather, iova: int, size: int, unmapped_page: int) -> None:
        """__iommu_unmap(): Robin's v2 fill of a gather the driver left empty, with the total size."""
        if g.start >= g.end:
            add_range(g, iova, size)

    # ---- gather entry points ---------------------------------------------------------------
    def iotlb_sync(self, domain: Domain, g: Gather) -> None:
        """iommu_iotlb_sync()."""
        sync = getattr(domain.ops, "iotlb_sync", None)
        if sync is not None and not self.sync_skips_gather(g):
            sync(domain, g)
        gather_init(g)

    def gather_add_page(self, domain: Domain, g: Gather, iova: int, size: int) -> None:
        """iommu_iotlb_gather_add_page(), the header's helper a driver calls (its sync is this core's)."""
        add_page(self, domain, g, iova, size)

    def flush_iotlb_all(self, domain: Domain) -> None:
        """iommu_flush_iotlb_all()."""
        flush = getattr(domain.ops, "flush_iotlb_all", None)
        if flush is not None:
            flush(domain)

    # ---- map -------------------------------------------------------------------------------
    def _map_loop(self, domain: Domain, iova: int, paddr: int, size: int, prot: int) -> tuple[int, int]:
        """The loop of __iommu_map_domain_pgtbl() / __iommu_map(): returns (ret, bytes mapped); iova and
        paddr wrap at 2^64 as unsigned long / phys_addr_t do."""
        ops = domain.ops
        bitmap = domain.pgsize_bitmap
        mapped = 0
        while size:
            self.hw.tick()
            pgsize, count = iommu_pgsize(bitmap, iova, paddr, size)
            ret, op_mapped = ops.map_pages(domain, iova, paddr, pgsize, count, prot)
            mapped += op_mapped
            if ret:
                return ret, mapped
            size -= op_mapped
            iova = (iova + op_mapped) & M64
            paddr = (paddr + op_mapped) & M64
        return 0, mapped

    def iommu_map_nosync(self, domain: Domain, iova: int, paddr: int, size: int, prot: int) -> int:
        """iommu_map_nosync(): WARN and -ENODEV without page sizes, -EINVAL unaligned (nothing to undo); on
        an error in the loop, unmap what was mapped (a full iommu_unmap, with its sync)."""
        bitmap = domain.pgsize_bitmap
        if not bitmap:
            return -ENODEV
        min_pagesz = bitmap & -bitmap
        if (iova | paddr | size) & (min_pagesz - 1):
            return -EINVAL
        ret, mapped = self._map_loop(domain, iova, paddr, size, prot)
        if ret:
            self.iommu_unmap(domain, iova, mapped)
        return ret

    def iommu_sync_map(self, domain: Domain, iova: int, size: int) -> int:
        """iommu_sync_map()."""
        fn = getattr(domain.ops, "iotlb_sync_map", None)
        return fn(domain, iova, size) if fn is not None else 0

    def iommu_map(self, domain: Domain, iova: int, paddr: int, size: int, prot: int) -> int:
        """iommu_map()."""
        ret = self.iommu_map_nosync(domain, iova, paddr, size, prot)
        if ret:
            return ret
        ret = self.iommu_sync_map(domain, iova, size)
        if ret:
            self.iommu_unmap(domain, iova, size)
        return ret

    def iommu_map_sg(self, domain: Domain, iova: int, sgl: list[tuple[int, int]], prot: int) -> int:
        """iommu_map_sg(): merge physically contiguous entries, one iotlb_sync_map at the end. The closing pass
        (i == nents) re-reads the last entry, as the C does: after an empty last entry contiguous with the run
        before it, that run is never mapped (the caller contract keeps empty entries out)."""
        length = 0
        mapped = 0
        start = 0
        nents = len(sgl)
        i = 0
        while i <= nents:
            s_phys = sgl[min(i, nents - 1)][0] if nents else None
            if length and s_phys != start + length:
                ret = self.iommu_map_nosync(domain, (iova + mapped) & M64, start, length, prot)
                if ret:
                    self.iommu_unmap(domain, iova, mapped)
                    return ret
                mapped += length
                length = 0
            if i < nents:
                if length:
                    length += sgl[i][1]
                else:
                    length = sgl[i][1]
                    start = s_phys
            i += 1
        ret = self.iommu_sync_map(domain, iova, mapped)
        if ret:
            self.iommu_unmap(domain, iova, mapped)
            return ret
        return mapped

    # ---- unmap -----------------------------------------------------------------------------
    def _iommu_unmap(self, domain: Domain, iova: int, size: int, g: Gather) -> int:
        """__iommu_unmap(): stop at the first chunk the driver cannot unmap."""
        ops = domain.ops
        bitmap = domain.pgsize_bitmap
        if not bitmap:
            return 0
        min_pagesz = bitmap & -bitmap
        if (iova | size) & (min_pagesz - 1):
            return 0
        unmapped = 0
        while unmapped < size:
            self.hw.tick()
            pgsize, count = iommu_pgsize(bitmap, iova, iova, size - unmapped)
            unmapped_page = ops.unmap_pages(domain, iova, pgsize, count, g)
            if not unmapped_page:
                break
            self.fill_after_unmap_chunk(g, iova, size, unmapped_page)
            iova = (iova + unmapped_page) & M64
            unmapped += unmapped_page
        return unmapped

    def iommu_unmap(self, domain: Domain, iova: int, size: int) -> int:
        """iommu_unmap(): unmap and sync a private gather."""
        g = Gather()
        ret = self._iommu_unmap(domain, iova, size, g)
        self.iotlb_sync(domain, g)
        return ret

    def iommu_unmap_fast(self, domain: Domain, iova: int, size: int, g: Gather) -> int:
        """iommu_unmap_fast(): the caller's gather collects the invalidation; it syncs later."""
        return self._iommu_unmap(domain, iova, size, g)
