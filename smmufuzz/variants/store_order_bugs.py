"""Planted (issue 18 item 5): stores published without the barrier that orders them. Each is correct when the SMMU
observes stores in program order and wrong under Arm's weak ordering (reference/store_order.py)."""

from . import arm_smmu_v3_ste as S
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


def write_entry_no_unused_sync(entry: list[int], target, store, sync) -> None:
    """arm_smmu_write_entry() whose hitless update stores the ignored bits and then the critical qword with no
    CFGI_STE + CMD_SYNC between them: in program order every prefix is harmless, but the SMMU may observe the
    critical qword first and fetch the new configuration with the old value of another qword."""
    diff, unused_update = S.entry_qword_diff(entry, target)
    if bin(diff).count("1") != 1:
        S.write_entry(entry, target, store, sync)
        return
    crit = (diff & -diff).bit_length() - 1
    unused_update[crit] = entry[crit]
    changed = False
    for words, qs in ((unused_update, range(S.W.STE_DWORDS)), (target, (crit,)), (target, range(S.W.STE_DWORDS))):
        for i in qs:
            if entry[i] != words[i]:
                entry[i] = words[i]
                store(i, words[i])
                changed = True
        if changed and words is target:
            sync()
            changed = False


class SteNoUnusedSyncDriver(ArmSmmuV3SvaDriver):
    """arm-smmu-v3 whose STE writer does not sync between the ignored bits and the critical qword (planted)."""

    write_entry = staticmethod(write_entry_no_unused_sync)


class SteNoUnusedSyncOs(SmmuV3Os):
    driver_cls = SteNoUnusedSyncDriver
