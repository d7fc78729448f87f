"""Planted (issue 18 item 4): arm_smmu_mm_arch_invalidate_secondary_tlbs() sizing its range a page short."""

from .arm_smmu_v3_sva import PAGE_SIZE, ArmSmmuV3SvaDriver
from .os_smmuv3 import SmmuV3Os


class NotifierShortDriver(ArmSmmuV3SvaDriver):
    """arm_smmu_mm_arch_invalidate_secondary_tlbs() with size = end - start - PAGE_SIZE (end read as the last page,
    the IOMMU API's inclusive convention the function's comment warns about): the range's last page may stay cached."""

    def notifier_size(self, start: int, end: int) -> int:
        return super().notifier_size(start, end - PAGE_SIZE)


class NotifierShortOs(SmmuV3Os):
    """smmuv3 whose SVA notifier invalidates a page short (planted)."""

    driver_cls = NotifierShortDriver
