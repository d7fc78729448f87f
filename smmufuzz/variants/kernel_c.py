"""Variants whose io-pgtable is a kernel tree's C (kc:*), the tree plus the user's patches (kc-patched:*).

The core and the drivers stay the project's models (os_smmuv3, lpae_drivers); only the page-table
code is the kernel's. `kc-patched:pte-sync` is seed 003 on real code: a non-coherent walker whose
arm-smmu-v3 sets cfg->defer_sync_pte and has PATCH 2/2's iotlb_sync_map (where the patched tree's
io-pgtable offers them).
"""

from ..kernel import session
from .arm_smmu_v3 import ArmSmmuV3Driver
from .kc_pgtable import CArmLpaeIoPgtable
from .lpae_drivers import ArmSmmuV2Driver, ArmSmmuV2Os, IpmmuVmsaDriver, IpmmuVmsaOs, QcomIommuDriver, QcomIommuOs
from .os_smmuv3 import SmmuV3Os
from .pte_sync import Eager


def _table(patched: bool, fmt32: bool = False, defer: bool = False) -> type:
    def lib_for(_cfg):
        return session.library(patched)

    def defer_sync_pte(self):
        return defer and self.lib.features["defer_sync_pte"]
    return type("CArmLpaeIoPgtable" + ("Patched" if patched else ""), (CArmLpaeIoPgtable,),
                {"lib_for": staticmethod(lib_for), "fmt32": fmt32,
                 "defer_sync_pte": property(defer_sync_pte)})


class _SyncMapSmmuV3(ArmSmmuV3Driver):
    def iotlb_sync_map(self, domain, iova: int, size: int) -> int:
        """arm_smmu_iotlb_sync_map() of seed 003 PATCH 2/2: ops->iotlb_sync_map() if the op is set; as
        posted, its value is dropped."""
        ops = domain.priv.pgtbl
        if ops is None or not ops.has_iotlb_sync_map():
            return 0
        ops.iotlb_sync_map(iova, size)
        return 0


def _os(base: type, driver: type, patched: bool, fmt32: bool = False, doc: str = "", **extra) -> type:
    drv = type(driver.__name__ + "C", (driver,), {"pgtable_cls": _table(patched, fmt32, extra.pop("defer", False))})
    return type(base.__name__ + ("KcPatched" if patched else "Kc"), (base,),
                {"driver_cls": drv, "KERNEL_BUILD": "patched" if patched else "base", "__doc__": doc, **extra})


# name: (facade, driver, ARM_32_LPAE format, what it is)
DRIVERS = {
    "smmuv3": (SmmuV3Os, ArmSmmuV3Driver, False, "mainline core + arm-smmu-v3 model"),
    "arm-smmu": (ArmSmmuV2Os, ArmSmmuV2Driver, False, "arm-smmu (v2) model"),
    "qcom": (QcomIommuOs, QcomIommuDriver, True, "qcom_iommu model (ARM_32_LPAE_S1)"),
    "ipmmu": (IpmmuVmsaOs, IpmmuVmsaDriver, True, "ipmmu-vmsa model (ARM_32_LPAE_S1)"),
}


def _model(base: type, name: str) -> type:
    """Our Python model of `name`, with io-pgtable-arm behaving as the tree's kernel version does."""
    def __init__(self, hw, pg_shift, ias, oas, stage):
        self.KERNEL_VERSION = session.tree_version()
        base.__init__(self, hw, pg_shift, ias, oas, stage)
    return type(base.__name__ + "AtTreeVersion", (base,), {
        "__init__": __init__, "KERNEL_TREE": True,
        "__doc__": f"the Python model of {name} (io-pgtable-arm at the kernel tree's version)"})


def variants():
    """(name, factory, summary) of every kernel-C variant, and the models they are compared with."""
    out = []
    for name, (base, _drv, _f32, why) in DRIVERS.items():
        out.append((f"kc-model:{name}", _model(base, name), f"Python model of the {why}, io-pgtable-arm as the "
                    "tree's kernel version behaves"))
    out.append(("kc-model:pte-sync", _model(Eager, "pte-sync:eager"),
                "Python model, non-coherent walks, eager PTE cleaning, io-pgtable-arm at the tree's version"))
    for patched in (False, True):
        prefix = "kc-patched" if patched else "kc"
        what = "the tree + --kernel-patch" if patched else "the kernel tree"
        for name, (base, drv, fmt32, why) in DRIVERS.items():
            out.append((f"{prefix}:{name}", _os(base, drv, patched, fmt32, f"io-pgtable-arm.c of {what} under the {why}"),
                        f"io-pgtable-arm.c of {what} + {why}"))
        out.append((f"{prefix}:pte-sync", _os(SmmuV3Os, _SyncMapSmmuV3, patched, False,
                                              f"io-pgtable-arm.c of {what} on a non-coherent walker, arm-smmu-v3 with "
                                              "defer_sync_pte and iotlb_sync_map (seed 003 PATCH 2/2)",
                                              defer=True, HW_OVERRIDES={"coherent": False}),
                    f"io-pgtable-arm.c of {what}, non-coherent walks, seed-003 PATCH 2/2 driver side"))
    return out
