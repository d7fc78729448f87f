"""Planted (issue 18 item 5): arm_lpae_install_table() without its dma_wmb(). Correct under the stores-in-order
model; with weakly ordered stores (reference/store_order.py) a coherent SMMU may observe the new table PTE
before the zeroing of the table it points to, and walk what the page held before (a freed table's PTEs)."""

from .arm_smmu_v3_sva import ArmSmmuV3SvaDriver
from .io_pgtable_arm import ArmLpaeIoPgtable
from .os_smmuv3 import SmmuV3Os


class InstallNoWmbPgtable(ArmLpaeIoPgtable):
    """io-pgtable-arm whose arm_lpae_install_table() publishes the table PTE with no dma_wmb() before it."""

    def _table_visible_before_pte(self) -> None:
        pass


class InstallNoWmbDriver(ArmSmmuV3SvaDriver):
    """arm-smmu-v3 on io-pgtable-arm without the dma_wmb() in arm_lpae_install_table() (planted)."""

    pgtable_cls = InstallNoWmbPgtable


class InstallNoWmbOs(SmmuV3Os):
    driver_cls = InstallNoWmbDriver
