"""The tree's gather helpers (include/linux/iommu.h, compiled in csrc/gather.c) driven from Python.

`NEEDS` is what gather.c uses of the header, checked by name and shape (extract.py) before the build
compiles it: a tree without them still builds the rest, and `missing(build)` says in one line why the
core's helpers are not there. A `CGather` is one C gather plus a C domain whose iotlb_sync (if it
has one) records what it is handed.
"""

import ctypes as C

from . import clib
from .extract import check_shapes

HEADER = "include/linux/iommu.h"
UNIT = "gather.c"
_G = "struct iommu_iotlb_gather *"
FUNCTIONS = {
    "iommu_iotlb_gather_init": (_G,),
    "iommu_iotlb_gather_is_disjoint": (_G, "unsigned long", "size_t"),
    "iommu_iotlb_gather_add_range": (_G, "unsigned long", "size_t"),
    "iommu_iotlb_gather_add_page": ("struct iommu_domain *", _G, "unsigned long", "size_t"),
    "iommu_iotlb_gather_queued": (_G,),
    "iommu_iotlb_sync": ("struct iommu_domain *", _G),
}
STRUCTS = {
    "iommu_iotlb_gather": ("start", "end", "pgsize", "freelist", "queued"),
    "iommu_domain": ("ops",),
    "iommu_domain_ops": ("iotlb_sync",),
}
# kc_gather_op's opcodes (enum kc_gather_opcode in gather.c)
INIT, ADD_RANGE, ADD_PAGE, IS_DISJOINT, QUEUED, QUEUED_NULL, SYNC, SET_QUEUED = range(8)
MAX_SYNCS = 64


def check_header(path: str, defined=("CONFIG_IOMMU_API",)) -> str | None:
    """None if the header defines every helper and struct gather.c uses, in the shape it uses them; else
    one line saying which one is missing or changed shape."""
    return check_shapes(path, HEADER, defined, STRUCTS, FUNCTIONS)


class CGather:
    """struct iommu_iotlb_gather of the tree, and a struct iommu_domain with (has_sync) or without iotlb_sync."""

    def __init__(self, lib: clib.KernelLib, has_sync: bool):
        L = self.L = lib.L
        self.lib = lib
        if not hasattr(L, "kc_gather_op"):
            raise clib.KernelCrash(f"{lib.path} has no gather helpers ({UNIT} was not built)")
        self.d = L.kc_gdom_new(int(has_sync))
        self.g = L.kc_gather_new()
        self._out = (C.c_uint64 * (4 * MAX_SYNCS))()
        self._ret = C.c_long(0)

    def __del__(self):
        L = getattr(self, "L", None)
        if L is not None:
            L.kc_gather_free(self.g)
            L.kc_gdom_free(self.d)

    def op(self, code: int, iova: int = 0, size: int = 0) -> int:
        """One helper call; its return value (0 for the void ones). A fault in it raises KernelCrash."""
        if self.L.kc_gather_op(self.d, self.g, code, iova, size, C.byref(self._ret)) == clib.CRASHED:
            raise self.lib.crash()
        return self._ret.value

    def fields(self) -> tuple:
        """(start, end, pgsize, queued, freelist empty) of the gather."""
        out = (C.c_uint64 * 5)()
        self.L.kc_gather_read(self.g, out)
        return out[0], out[1], out[2], bool(out[3]), bool(out[4])

    def syncs(self) -> list[tuple]:
        """(start, end, pgsize, queued) the driver's iotlb_sync saw, per call since the last look."""
        n = self.L.kc_gdom_take_syncs(self.d, self._out, MAX_SYNCS)
        o = self._out
        return [(o[4 * i], o[4 * i + 1], o[4 * i + 2], bool(o[4 * i + 3])) for i in range(min(n, MAX_SYNCS))]
