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


def write_entry_break_no_sync(entry: list[int], target, store, sync, get_used=S.get_ste_used) -> None:
    """arm_smmu_write_entry() whose breaking update stores V=0 and then the other qwords with no sync between
    them: in program order every fetch sees V=0 until qword 0 comes back, but the SMMU may observe a new
    qword before the V=0 store and fetch the old entry with a new table."""
    diff, unused_update = S.entry_qword_diff(entry, target, get_used)
    if bin(diff).count("1") < 2:
        S.write_entry(entry, target, store, sync, get_used)
        return
    entry[0] = 0
    store(0, 0)
    for i in range(1, len(entry)):
        if entry[i] != target[i]:
            entry[i] = target[i]
            store(i, target[i])
    sync()
    entry[0] = target[0]
    store(0, target[0])
    sync()


class CdBreakNoSyncDriver(ArmSmmuV3SvaDriver):
    """arm-smmu-v3 whose CD writer does not sync after clearing V in a breaking update (planted)."""

    cd_write_entry = staticmethod(write_entry_break_no_sync)


class CdBreakNoSyncOs(SmmuV3Os):
    driver_cls = CdBreakNoSyncDriver
