"""Variants where all of Linux on the SMMUv3 is the kernel tree's C (kc-full:smmuv3), or the tree plus
--kernel-patch (kc-full-patched:smmuv3): iommu.c's map/unmap path and iommu.h's gather helpers
(kernel/cdomain.CCore), io-pgtable-arm.c (kc_pgtable), and arm-smmu-v3.c's invalidation path
(kernel/csmmu.CSmmuV3Driver); only attach/detach, ATS enabling and the STE writer stay the model's, and
the SMMU is the emulator.
"""

from ..kernel import session
from ..kernel.csmmu import CSmmuV3Driver
from . import kc_core


def _os(patched: bool) -> type:
    base = kc_core._os("smmuv3", patched)
    what = "the tree + --kernel-patch" if patched else "the kernel tree"
    drv = type("CSmmuV3Driver" + ("Patched" if patched else ""), (CSmmuV3Driver,),
               {"pgtable_cls": base.driver_cls.pgtable_cls, "lib_for": staticmethod(lambda: session.library(patched))})
    return type("SmmuV3KcFull" + ("Patched" if patched else ""), (base,), {
        "driver_cls": drv, "KERNEL_DRIVER": True,
        "__doc__": f"iommu.c core, io-pgtable-arm.c and arm-smmu-v3.c's invalidation path of {what}"})


def variants():
    """(name, factory, summary) of the kc-full variants."""
    return [(f"kc-full{'-patched' if p else ''}:smmuv3", _os(p), _os(p).__doc__) for p in (False, True)]
