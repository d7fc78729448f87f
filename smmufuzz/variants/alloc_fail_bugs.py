"""Planted (issue 18 item 1): an iommu_map() error path that does not unwind. Correct while allocations succeed;
a page-table allocation failing half-way (fail_nth, reference/alloc_faults.py) leaves the part already mapped
live although iommu_map() returned an error (6.12 __iommu_map(): "unroll mapping in case something went wrong")."""

from .core import IommuCore
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
