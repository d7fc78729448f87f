"""Variants where all of Linux on the SMMUv3 is the kernel tree's C (kc-full:smmuv3), or the tree plus
--kernel-patch (kc-full-patched:smmuv3): iommu.c's map/unmap path and iommu.h's gather helpers
(kernel/cdomain.CCore), io-pgtable-arm.c (kc_pgtable), and arm-smmu-v3.c's domain finalise and invalidation
path (kernel/csmmu.CSmmuV3Driver); only attach/detach, ATS enabling and the STE writer stay the model's, and
the SMMU is the emulator. kc-full(-patched):pte-sync is the same on an SMMU whose table walks are not
coherent: seed 003 (both patches of the series) runs there as real code.
"""

from ..kernel import session
from ..kernel.csmmu import CSmmuV3Driver
from . import kc_core

# name: (the SMMU's coherency as the program's config gives it (None) or forced, what it is)
SMMUS = {
    "smmuv3": (None, ""),
    "pte-sync": (False, " on an SMMU whose table walks are not coherent (seed 003)"),
}


def _os(name: str, patched: bool) -> type:
    coherent, what_smmu = SMMUS[name]
    base = kc_core._os("smmuv3", patched)
    what = "the tree + --kernel-patch" if patched else "the kernel tree"
    drv = type("CSmmuV3Driver" + ("Patched" if patched else ""), (CSmmuV3Driver,),
               {"pgtable_cls": base.driver_cls.pgtable_cls, "lib_for": staticmethod(lambda: session.library(patched))})
    extra = {} if coherent is None else {"HW_OVERRIDES": {"coherent": coherent}}
    return type("SmmuV3KcFull" + ("Patched" if patched else "") + ("NonCoherent" if coherent is False else ""),
                (base,), {"driver_cls": drv, "KERNEL_DRIVER": True, **extra,
                          "__doc__": f"iommu.c core, io-pgtable-arm.c and arm-smmu-v3.c of {what}{what_smmu}"})


def variants():
    """(name, factory, summary) of the kc-full variants."""
    return [(f"kc-full{'-patched' if p else ''}:{name}", _os(name, p), _os(name, p).__doc__)
            for name in SMMUS for p in (False, True)]
