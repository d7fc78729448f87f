"""Planted (issue 18 item 1): error paths of failing allocations (fail_nth, reference/alloc_faults.py), each correct
while allocations succeed. An iommu_map() that does not unwind: a page-table allocation failing half-way leaves
the part already mapped live although iommu_map() returned an error (6.12 __iommu_map(): "unroll mapping in case
something went wrong"). An IOVA allocator that, exhausted, reuses the flush queue's IOVAs before their flush."""

from .core import IommuCore
from .dma_iommu import DmaIommu
from .os_smmuv3 import SmmuV3Os


class NoUnwindCore(IommuCore):
    """__iommu_map() that returns the error without iommu_unmap() of what it had mapped."""

    def iommu_map_nosync(self, domain, iova, paddr, size, prot):
        bitmap = domain.pgsize_bitmap
        min_pagesz = bitmap & -bitmap
        if not bitmap or (iova | paddr | size) & (min_pagesz - 1):
            return super().iommu_map_nosync(domain, iova, paddr, size, prot)
        ret, _mapped = self._map_loop(domain, iova, paddr, size, prot)
        return ret


class NoUnwindOs(SmmuV3Os):
    """smmuv3 whose iommu_map() leaves a partial mapping behind on failure (planted)."""

    core_cls = NoUnwindCore


class UnflushedReclaimDma(DmaIommu):
    """iommu_dma_alloc_iova() that, with the IOVA space exhausted, takes back the IOVAs waiting in the flush queue
    without their IOTLB flush and allocates again (planted: the queue would have to be flushed first,
    fq_flush_iotlb() then fq_ring_free(); 6.12 just fails the map)."""

    def alloc_iova(self, size: int) -> int | None:
        iova = super().alloc_iova(size)
        if iova is None and self.fq is not None and self.fq.entries:
            for queued, _size, freelist, _cnt in self.fq.entries:
                self.free_table_pages(freelist)
                self.iovad.free(queued)
            self.fq.entries.clear()
            iova = self.iovad.alloc(size)
        return iova


class UnflushedReclaimOs(SmmuV3Os):
    """smmuv3 whose DMA layer reuses flush-queued IOVAs before their flush when the IOVA space runs out (planted)."""

    dma_cls = UnflushedReclaimDma
