"""The tree's iommu core (csrc/core.c: iommu.c's iommu_map / iommu_unmap / iommu_unmap_fast /
iommu_map_sg, iommu.h's iommu_iotlb_sync / iommu_flush_iotlb_all) over Python drivers.

`CCore` has variants/core.py IommuCore's interface, so an OS facade takes it as its `core_cls`. Each
Python `Domain` gets a C `struct iommu_domain` whose ops (those its driver has) are ctypes trampolines
back to the driver. The gather the C core hands the driver is the tree's `struct iommu_iotlb_gather`,
seen from Python as a `GatherView` that reads and writes the C fields in place (at the offsets the build
reports), so the driver's gather helpers (variants/gather.py) and the C io-pgtable (kc_pgtable) act on
the real struct. A caller's Python `Gather` (iommu_unmap_fast, iommu_iotlb_sync) is loaded into a C
gather for the call and copied back after it.
"""

import ctypes as C
import weakref

from . import clib

M64 = (1 << 64) - 1
ENOMEM = 12
_u64 = C.c_uint64
MAP_FN = C.CFUNCTYPE(C.c_long, _u64, _u64, _u64, _u64, _u64, C.c_int, C.POINTER(_u64))
UNMAP_FN = C.CFUNCTYPE(_u64, _u64, _u64, _u64, _u64, C.c_void_p)
SYNC_FN = C.CFUNCTYPE(None, _u64, C.c_void_p)
SYNC_MAP_FN = C.CFUNCTYPE(C.c_long, _u64, _u64, _u64)
FLUSH_FN = C.CFUNCTYPE(None, _u64)
# kc_core_op's opcodes (enum kc_core_opcode) and kc_cdom_new's op bits (KC_OP_*) in csrc/core.c
MAP, UNMAP, UNMAP_FAST, MAP_SG, SYNC, FLUSH_ALL = range(6)
OPS = {"map_pages": 1, "unmap_pages": 2, "iotlb_sync": 4, "iotlb_sync_map": 8, "flush_iotlb_all": 16}


class _Host(C.Structure):
    _fields_ = [("map_pages", MAP_FN), ("unmap_pages", UNMAP_FN), ("iotlb_sync", SYNC_FN),
                ("iotlb_sync_map", SYNC_MAP_FN), ("flush_iotlb_all", FLUSH_FN)]


class _Sg(C.Structure):
    """csrc/core_env.h's flat struct scatterlist."""
    _fields_ = [("phys", _u64), ("length", C.c_uint), ("dma_address", _u64)]


class GatherView:
    """A C struct iommu_iotlb_gather with variants/gather.Gather's fields, read and written in place;
    freelist stays on the Python side (no driver here frees page-table pages through it)."""
    __slots__ = ("ptr", "lib", "freelist", "_off")

    def __init__(self, ptr: int, core_lib: "CoreLib"):
        self.ptr, self.lib, self._off, self.freelist = ptr, core_lib.lib, core_lib.offsets, []

    def _u(self, name):
        return _u64.from_address(self.ptr + self._off[name])

    start = property(lambda s: s._u("start").value, lambda s, v: setattr(s._u("start"), "value", v & M64))
    end = property(lambda s: s._u("end").value, lambda s, v: setattr(s._u("end"), "value", v & M64))
    pgsize = property(lambda s: s._u("pgsize").value, lambda s, v: setattr(s._u("pgsize"), "value", v & M64))
    queued = property(lambda s: C.c_bool.from_address(s.ptr + s._off["queued"]).value,
                      lambda s, v: setattr(C.c_bool.from_address(s.ptr + s._off["queued"]), "value", bool(v)))

    def empty(self) -> bool:
        return self.start >= self.end

    def __repr__(self) -> str:
        return f"GatherView(start={self.start:#x}, end={self.end:#x}, pgsize={self.pgsize:#x})"


class _CDom:
    """The C struct iommu_domain of one Python Domain (freed with it)."""

    def __init__(self, core_lib: "CoreLib", core: "CCore", domain):
        self.core_lib, self.core, self.domain = core_lib, core, domain
        self.id = core_lib.lib.next_id()
        mask = sum(bit for name, bit in OPS.items() if getattr(domain.ops, name, None) is not None)
        self.ptr = core_lib.L.kc_cdom_new(self.id, domain.pgsize_bitmap & M64, mask)
        core_lib.doms[self.id] = self

    def __del__(self):
        if getattr(self, "ptr", None):
            self.core_lib.L.kc_cdom_free(self.ptr)
            self.ptr = None


class CoreLib:
    """The core entry points of one loaded library: host hooks, gather layout, the domains alive on it."""

    def __init__(self, lib: clib.KernelLib):
        L = self.L = lib.L
        self.lib = lib
        if not hasattr(L, "kc_core_op"):
            raise clib.KernelCrash(f"{lib.path} has no iommu core (csrc/core.c was not built)")
        vp = C.c_void_p
        clib.declare(L, (("kc_cdom_new", [_u64, _u64, C.c_int], vp), ("kc_cdom_free", [vp], None),
                         ("kc_core_layout", [C.POINTER(_u64)], None),
                         ("kc_core_gather_load", [vp, _u64, _u64, _u64, C.c_int], None),
                         ("kc_core_op", [vp, C.c_int, _u64, _u64, _u64, C.c_int, vp, vp, C.c_uint,
                                         C.POINTER(C.c_long)], C.c_long),
                         ("kc_core_add_page", [vp, vp, _u64, _u64], C.c_long)))
        lay = (_u64 * 6)()
        L.kc_core_layout(lay)
        self.gather_size = lay[0]
        self.offsets = {"start": lay[1], "end": lay[2], "pgsize": lay[3], "queued": lay[4]}
        if lay[5] != C.sizeof(_Sg):
            raise clib.KernelCrash(f"{lib.path}: struct scatterlist is {lay[5]} bytes, smmufuzz expects "
                                   f"{C.sizeof(_Sg)} (csrc/core_env.h)")
        self.doms: "weakref.WeakValueDictionary[int, _CDom]" = weakref.WeakValueDictionary()
        self.error: BaseException | None = None
        self._hooks = _Host(MAP_FN(self._guard(self._map, -ENOMEM)), UNMAP_FN(self._guard(self._unmap, 0)),
                            SYNC_FN(self._guard(self._sync)), SYNC_MAP_FN(self._guard(self._sync_map, 0)),
                            FLUSH_FN(self._guard(self._flush)))
        _Host.in_dll(L, "kc_core_host").__init__(*[getattr(self._hooks, f) for f, _t in _Host._fields_])

    def _guard(self, fn, default=None):
        """A hook that keeps the driver's exception for the caller (the C core goes on with `default`,
        which ends its loops: a failed map, nothing unmapped)."""
        return clib.guard(self, fn, default)

    def _dom(self, dom_id):
        return self.doms[dom_id]

    def _map(self, dom_id, iova, paddr, pgsize, count, prot, mapped):
        d = self._dom(dom_id)
        d.core.tick()
        ret, m = d.domain.ops.map_pages(d.domain, iova, paddr, pgsize, count, prot)
        mapped[0] = m & M64
        return ret

    def _unmap(self, dom_id, iova, pgsize, count, g):
        d = self._dom(dom_id)
        d.core.tick()
        return d.domain.ops.unmap_pages(d.domain, iova, pgsize, count, d.core.view(g)) & M64

    def _sync(self, dom_id, g):
        d = self._dom(dom_id)
        d.domain.ops.iotlb_sync(d.domain, d.core.view(g))

    def _sync_map(self, dom_id, iova, size):
        d = self._dom(dom_id)
        return d.domain.ops.iotlb_sync_map(d.domain, iova, size)

    def _flush(self, dom_id):
        d = self._dom(dom_id)
        d.domain.ops.flush_iotlb_all(d.domain)


def core_lib(lib: clib.KernelLib) -> CoreLib:
    """The CoreLib of a loaded library (one per library: the hooks are its globals)."""
    c = getattr(lib, "core", None)
    if c is None:
        c = lib.core = CoreLib(lib)
    return c


class CCore:
    """drivers/iommu/iommu.c's map/unmap path of the tree, compiled (IommuCore's interface)."""

    lib_for = staticmethod(lambda: None)       # set by the variant: the build's library (patched or not)

    def __init__(self, hw):
        self.hw = hw
        self.c = core_lib(self.lib_for())
        self._doms: dict = {}
        self._views: dict = {}
        self._depth = 0                           # core calls in progress (a driver may call back in)

    def tick(self) -> None:
        if self.hw is not None:
            self.hw.tick()

    def view(self, ptr: int) -> GatherView:
        """The view of a C gather (one per gather, so a driver sees the same object across calls)."""
        v = self._views.get(ptr)
        if v is None:
            v = self._views[ptr] = GatherView(ptr, self.c)
        return v

    def _cdom(self, domain) -> _CDom:
        d = self._doms.get(id(domain))
        if d is None or d.domain is not domain:
            d = self._doms[id(domain)] = _CDom(self.c, self, domain)
        return d

    def _op(self, domain, op, iova=0, paddr=0, size=0, prot=0, g=None, sg=None, nents=0) -> int:
        ret = C.c_long(0)
        self._call(lambda: self.c.L.kc_core_op(self._cdom(domain).ptr, op, iova & M64, paddr & M64, size & M64,
                                               prot, g, sg, nents, C.byref(ret)), g)
        return ret.value

    def _call(self, fn, g) -> None:
        """fn() into the library; the driver's exception, or the C's crash, raised here."""
        self._depth += 1
        try:
            r = fn()
        finally:
            self._depth -= 1
            if not self._depth:               # the core's own gathers were on its stack: forget their views
                self._views = {p: v for p, v in self._views.items() if p == g}
        err, self.c.error = self.c.error, None
        if r == clib.CRASHED:
            raise self.c.lib.crash()
        if err is not None:
            raise err

    def _with_gather(self, g, fn):
        """Run fn(C gather pointer) on g: a view is the C struct; a caller's Gather is loaded and copied back."""
        if isinstance(g, GatherView):
            return fn(g.ptr)
        buf = C.create_string_buffer(self.c.gather_size)
        ptr = C.addressof(buf)
        self.c.L.kc_core_gather_load(ptr, g.start & M64, g.end & M64, g.pgsize & M64, int(bool(g.queued)))
        v = self._views[ptr] = GatherView(ptr, self.c)
        v.freelist = g.freelist
        try:
            return fn(ptr)
        finally:
            self._views.pop(ptr, None)
            g.start, g.end, g.pgsize, g.queued, g.freelist = v.start, v.end, v.pgsize, v.queued, v.freelist

    # ---- IommuCore's interface --------------------------------------------------------------------
    def iommu_map(self, domain, iova: int, paddr: int, size: int, prot: int) -> int:
        """iommu_map()."""
        return self._op(domain, MAP, iova, paddr, size, prot)

    def iommu_unmap(self, domain, iova: int, size: int) -> int:
        """iommu_unmap()."""
        return self._op(domain, UNMAP, iova, 0, size) & M64

    def iommu_unmap_fast(self, domain, iova: int, size: int, g) -> int:
        """iommu_unmap_fast()."""
        return self._with_gather(g, lambda p: self._op(domain, UNMAP_FAST, iova, 0, size, 0, p)) & M64

    def iommu_map_sg(self, domain, iova: int, sgl: list, prot: int) -> int:
        """iommu_map_sg() on a flat list of (phys, length)."""
        sg = (_Sg * max(len(sgl), 1))()
        for i, (phys, length) in enumerate(sgl):
            sg[i].phys, sg[i].length = phys & M64, length & 0xFFFFFFFF
        return self._op(domain, MAP_SG, iova, 0, 0, prot, None, C.addressof(sg), len(sgl))

    def iotlb_sync(self, domain, g) -> None:
        """iommu_iotlb_sync() (include/linux/iommu.h)."""
        self._with_gather(g, lambda p: self._op(domain, SYNC, g=p))
        g.freelist = []                           # iommu_iotlb_gather_init() of the C list

    def flush_iotlb_all(self, domain) -> None:
        """iommu_flush_iotlb_all() (include/linux/iommu.h)."""
        self._op(domain, FLUSH_ALL)

    def gather_add_page(self, domain, g, iova: int, size: int) -> None:
        """iommu_iotlb_gather_add_page() (include/linux/iommu.h), on the gather the core handed the driver."""
        self._with_gather(g, lambda p: self._call(
            lambda: self.c.L.kc_core_add_page(self._cdom(domain).ptr, p, iova & M64, size & M64), p))
