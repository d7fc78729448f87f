"""Planted (issue 18 item 7): arm_smmu_device_reset() that forgets one of its invalidations. Harmless on an SMMU
out of a cold reset; wrong when another owner's entries are still cached (a kexec or a hibernation restore:
reference/handover.py)."""

from .arm_smmu_v3 import CMDQ_OP_CFGI_ALL, CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_NSNH_ALL, ArmSmmuV3Driver
from .os_smmuv3 import SmmuV3Os


class ResetNoCfgiDriver(ArmSmmuV3Driver):
    """arm_smmu_device_reset() without CMDQ_OP_CFGI_ALL: the other owner's STEs stay cached."""

    RESET_CMDS = (CMDQ_OP_TLBI_EL2_ALL, CMDQ_OP_TLBI_NSNH_ALL)


class ResetNoEl2Driver(ArmSmmuV3Driver):
    """arm_smmu_device_reset() without CMDQ_OP_TLBI_EL2_ALL: EL2(-E2H) entries stay (seen only with FEAT_HYP)."""

    RESET_CMDS = (CMDQ_OP_CFGI_ALL, CMDQ_OP_TLBI_NSNH_ALL)


class ResetNoCfgiOs(SmmuV3Os):
    """smmuv3 whose reset forgets CFGI_ALL (planted)."""

    driver_cls = ResetNoCfgiDriver


class ResetNoEl2Os(SmmuV3Os):
    """smmuv3 whose reset forgets TLBI_EL2_ALL (planted)."""

    driver_cls = ResetNoEl2Driver
