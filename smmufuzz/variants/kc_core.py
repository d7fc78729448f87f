"""Variants whose iommu core is the kernel tree's (kc-core:*), or the tree plus --kernel-patch (kc-core-patched:*).

The core is drivers/iommu/iommu.c's map/unmap path and include/linux/iommu.h's gather helpers compiled
from the tree (kernel/cdomain.CCore); the drivers stay the project's models. Under the LPAE drivers
(arm-smmu-v3, arm-smmu, qcom_iommu, ipmmu-vmsa) io-pgtable-arm is the tree's C as well (kernel_c), in
the same build, so a patch to the core, to iommu.h or to io-pgtable-arm.c (seed 000's) runs as real
code; the seed-000 drivers with their own tables keep them in Python.
"""

from ..kernel import session
from ..kernel.cdomain import CCore
from . import kernel_c
from .lpae_drivers import ArmSmmuV2Os, IpmmuVmsaOs, QcomIommuOs
from .os_smmuv3 import SmmuV3Os
from .own_table_drivers import DartOs, MsmOs, MtkOs, SprdOs, Sun50iOs
from .virtio_iommu import VirtioOs

# name: (facade, C io-pgtable-arm with this driver model (None: the driver's own table, Python), ARM_32_LPAE)
DRIVERS = {
    "smmuv3": (SmmuV3Os, True, False),
    "arm-smmu": (ArmSmmuV2Os, True, False),
    "qcom": (QcomIommuOs, True, True),
    "ipmmu": (IpmmuVmsaOs, True, True),
    "mtk": (MtkOs, None, False),
    "msm": (MsmOs, None, False),
    "sun50i": (Sun50iOs, None, False),
    "sprd": (SprdOs, None, False),
    "dart": (DartOs, None, False),
    "virtio": (VirtioOs, None, False),
}
# the seed-000 drivers whose iotlb_sync ignores the gather and whose unmap never fills it (before any fix)
IGNORE_GATHER = ("arm-smmu", "qcom", "ipmmu", "sun50i", "sprd", "dart", "virtio")


def core_for(patched: bool) -> type:
    """CCore on the build of the tree (patched: with --kernel-patch)."""
    return type("CCore" + ("Patched" if patched else ""), (CCore,),
                {"lib_for": staticmethod(lambda: session.library(patched))})


def _os(name: str, patched: bool) -> type:
    base, c_table, fmt32 = DRIVERS[name]
    what = "the tree + --kernel-patch" if patched else "the kernel tree"
    doc = f"iommu.c/iommu.h core of {what} under the {name} driver model"
    if c_table:
        base = kernel_c._os(base, base.driver_cls, patched, fmt32, doc)
        doc += f", io-pgtable-arm.c of {what}"
    return type(base.__name__ + ("KcCorePatched" if patched else "KcCore"), (base,),
                {"core_cls": core_for(patched), "KERNEL_BUILD": "patched" if patched else "base",
                 "KERNEL_CORE": True, "__doc__": doc})


def variants():
    """(name, factory, summary) of every kc-core variant."""
    out = []
    for patched in (False, True):
        for name in DRIVERS:
            f = _os(name, patched)
            out.append((f"kc-core{'-patched' if patched else ''}:{name}", f, f.__doc__))
    return out
