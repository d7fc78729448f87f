"""ctypes bridge to a built kernel library (csrc/glue.c): machines, page tables, hooks, crashes.

A `Machine` is one emulated machine's view for the C code: its arena stands for the physical range
the emulator's page allocator (reference/memory.py `Memory`) hands out, so a C table lives at the
emulator's physical addresses. After every stretch of kernel code (a return, a hook) the words the C
code stored are copied into the emulator's CPU view (`Memory.cpu_write`); cache maintenance
(`dma_map_single`, `dma_sync_single_for_device`) becomes `Memory.clean` on non-coherent walks.
"""

import ctypes as C
import os
import subprocess
import weakref

ARENA_BASE = 0x4000_0000_0000        # Memory's allocation base
ARENA_SIZE = 1 << 30
CRASHED = -100000
ARM_32_LPAE_S1, ARM_32_LPAE_S2, ARM_64_LPAE_S1, ARM_64_LPAE_S2 = 0, 1, 2, 3

_u64, _vp = C.c_uint64, C.c_void_p
ALLOC_FN = C.CFUNCTYPE(_u64, _u64, _u64)
FREE_FN = C.CFUNCTYPE(None, _u64, _u64, _u64)
DMA_FN = C.CFUNCTYPE(None, _u64, _u64, _u64, C.c_int)
WARN_FN = C.CFUNCTYPE(None, _u64, C.c_char_p, C.c_int, C.c_char_p)
FLUSH_ALL_FN = C.CFUNCTYPE(None, _u64, _u64)
FLUSH_WALK_FN = C.CFUNCTYPE(None, _u64, _u64, _u64, _u64, _u64)
ADD_PAGE_FN = C.CFUNCTYPE(None, _u64, _u64, _u64, _u64, _u64)
BARRIER_FN = C.CFUNCTYPE(None, _u64, C.c_int)


def declare(L, sigs) -> None:
    """Set argtypes and restype of each (name, argument types, result type) of the library L."""
    for name, args, res in sigs:
        fn = getattr(L, name)
        fn.argtypes, fn.restype = args, res


def guard(owner, fn, default=None):
    """A hook for C to call: fn's exception is kept in owner.error (the C call's wrapper raises it when the C
    returns) and the C goes on with `default`; once one is kept, later hooks of the call do nothing."""
    def hook(*a):
        if owner.error is not None:
            return default
        try:
            return fn(*a)
        except BaseException as e:
            owner.error = e
            return default
    return hook


class KernelCrash(Exception):
    """A fault or BUG() inside the kernel code, with its C call chain."""


class _Host(C.Structure):
    _fields_ = [("alloc_pages", ALLOC_FN), ("free_pages", FREE_FN), ("dma_sync", DMA_FN), ("warn", WARN_FN),
                ("flush_all", FLUSH_ALL_FN), ("flush_walk", FLUSH_WALK_FN), ("add_page", ADD_PAGE_FN),
                ("store_barrier", BARRIER_FN)]


_LIBS: dict[str, "KernelLib"] = {}


def load(path: str) -> "KernelLib":
    """The library at path, loaded once per process (its own globals: several builds coexist)."""
    lib = _LIBS.get(path)
    if lib is None:
        lib = _LIBS[path] = KernelLib(path)
    return lib


class KernelLib:
    def __init__(self, path: str):
        self.path = path
        try:
            L = self.L = C.CDLL(path)
        except OSError as e:
            hint = (" (an instrumented build needs libFuzzer in the process: run it under `smmufuzz fuzz`, which "
                    "preloads atheris's ubsan_with_fuzzer.so)" if "__sancov" in str(e) else "")
            raise KernelCrash(f"cannot load {path}: {e}{hint}") from None
        sig = {
            "kc_ctx_new": ([_u64, _u64, _u64], _vp), "kc_ctx_free": ([_vp], None), "kc_ctx_reset": ([_vp, _u64], None), "kc_collect": ([_vp], C.c_long),
            "kc_changes_buf": ([], C.POINTER(_u64)), "kc_read64": ([_vp, _u64], _u64),
            "kc_alloc": ([_vp, C.c_int, _u64, C.c_uint, C.c_uint, C.c_int, _u64, C.c_int, _u64,
                          C.POINTER(C.c_long)], _vp),
            "kc_free": ([_vp], C.c_long), "kc_pgsize_bitmap": ([_vp], _u64), "kc_ttbr": ([_vp, C.c_int], _u64),
            "kc_tsz": ([_vp, C.c_int], C.c_uint), "kc_s2_sl": ([_vp], C.c_uint),
            "kc_map_pages": ([_vp, _u64, _u64, _u64, _u64, C.c_int, C.POINTER(_u64)], C.c_long),
            "kc_unmap_pages": ([_vp, _u64, _u64, _u64, _u64, C.c_int, C.POINTER(_u64)], C.c_long),
            "kc_unmap_pages_at": ([_vp, _u64, _u64, _u64, _vp, _u64, C.POINTER(_u64)], C.c_long),
            "kc_iova_to_phys": ([_vp, _u64, C.POINTER(_u64)], C.c_long),
            "kc_iotlb_sync_map": ([_vp, _u64, _u64, C.POINTER(C.c_long)], C.c_long),
            "kc_features": ([], C.c_int), "kc_crash_text": ([], C.c_char_p), "kc_crash_frame_count": ([], C.c_int),
            "kc_crash_frame": ([C.c_int, C.POINTER(_u64)], _u64), "kc_crash_frame_object": ([C.c_int], C.c_char_p),
        }
        declare(L, ((name, args, res) for name, (args, res) in sig.items()))
        # csrc/gather.c, built only where the tree's iommu.h has the gather helpers in the expected shape
        optional = {
            "kc_gdom_new": ([C.c_int], _vp), "kc_gdom_free": ([_vp], None),
            "kc_gdom_take_syncs": ([_vp, C.POINTER(_u64), C.c_long], C.c_long),
            "kc_gather_new": ([], _vp), "kc_gather_free": ([_vp], None),
            "kc_gather_read": ([_vp, C.POINTER(_u64)], None),
            "kc_gather_op": ([_vp, _vp, C.c_int, _u64, _u64, C.POINTER(C.c_long)], C.c_long),
        }
        declare(L, ((name, args, res) for name, (args, res) in optional.items() if hasattr(L, name)))
        self.machines: "weakref.WeakValueDictionary[int, Machine]" = weakref.WeakValueDictionary()
        self.graveyard: list = []                    # (ctx, C tables) of machines gone, to free
        self.pool: list = []                         # freed contexts, reset and reused
        self.by_mem: "weakref.WeakValueDictionary[int, Machine]" = weakref.WeakValueDictionary()  # id(Memory)
        self.tables: "weakref.WeakValueDictionary[int, object]" = weakref.WeakValueDictionary()
        self._next = 1
        self.error: BaseException | None = None      # an exception raised inside a hook
        hooks = _Host(ALLOC_FN(self._guard(self._alloc, 0)), FREE_FN(self._guard(self._free)),
                      DMA_FN(self._guard(self._dma)), WARN_FN(self._guard(self._warn)),
                      FLUSH_ALL_FN(self._guard(self._flush_all)), FLUSH_WALK_FN(self._guard(self._flush_walk)),
                      ADD_PAGE_FN(self._guard(self._add_page)), BARRIER_FN(self._guard(self._barrier)))
        self._hooks = hooks                              # keep the trampolines alive
        _Host.in_dll(L, "kc_host").__init__(*[getattr(hooks, f) for f, _t in _Host._fields_])
        f = L.kc_features()
        self.features = {"defer_sync_pte": bool(f & 1), "ops_iotlb_sync_map": bool(f & 2)}

    def reap(self) -> None:
        """Free the C side of machines that are gone: their tables' own memory, then the arena."""
        while self.graveyard:
            ctx, tables = self.graveyard.pop()
            self._reaping = True
            try:
                for t in tables:
                    self.L.kc_free(t)        # hooks find no machine for this ctx: they do nothing
            finally:
                self._reaping = False
            if len(self.pool) < 8:
                self.pool.append(ctx)
            else:
                self.L.kc_ctx_free(ctx)

    def next_id(self) -> int:
        self._next += 1
        return self._next

    # ---- hooks: C calls these with the machine's id (and a table's cookie) ------------------------
    def _guard(self, fn, default=None):
        return guard(self, fn, default)

    def _live(self, host) -> "Machine | None":
        m = self.machines.get(host)
        return None if m is None or m.muted else m

    def _alloc(self, host, size):
        m = self._live(host)
        return m.alloc(size) if m else 0

    def _free(self, host, pa, size):
        m = self._live(host)
        if m:
            m.free(pa, size)

    def _dma(self, host, pa, size, what):
        m = self._live(host)
        if m:
            m.dma(pa, size, what)

    def _barrier(self, host, complete):
        m = self._live(host)
        if m:
            m.barrier(bool(complete))

    def _warn(self, host, file, line, cond):
        m = self._live(host)
        if m:
            m.warn(f"{os.path.basename(file.decode())}:{line}: WARN_ON({cond.decode()})")

    def _table(self, host, cookie):
        m = self._live(host)
        if m is None:
            return None
        m.collect()
        return self.tables.get(cookie)

    def _flush_all(self, host, cookie):
        t = self._table(host, cookie)
        if t is not None:
            t.hook_flush_all()

    def _flush_walk(self, host, cookie, iova, size, granule):
        t = self._table(host, cookie)
        if t is not None:
            t.hook_flush_walk(iova, size, granule)

    def _add_page(self, host, cookie, token, iova, granule):
        t = self._table(host, cookie)
        if t is not None:
            t.hook_add_page(token, iova, granule)

    # ---- crashes ----------------------------------------------------------------------------------
    def crash(self) -> KernelCrash:
        """The fault the guard caught, with its call chain resolved to function and line (addr2line)."""
        L = self.L
        what = L.kc_crash_text().decode(errors="replace")
        frames = []
        for i in range(L.kc_crash_frame_count()):
            base = _u64(0)
            pc = L.kc_crash_frame(i, C.byref(base))
            obj = L.kc_crash_frame_object(i).decode(errors="replace")
            frames.append((obj, pc - base.value if obj == self.path else pc))
        return KernelCrash(f"kernel code crashed: {what}\n" + _symbolize(self.path, frames))


def _symbolize(lib: str, frames: list) -> str:
    """The frames inside the kernel library as `function file:line`, the first 12."""
    ours = [off for obj, off in frames if obj == lib]
    if not ours:
        return "  (no frames in the kernel library)"
    try:
        out = subprocess.run(["addr2line", "-f", "-e", lib] + [hex(max(o - 1, 0)) for o in ours],
                             capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        return "\n".join(f"  libkc.so+{o:#x}" for o in ours)
    lines = []
    for i in range(0, len(out) - 1, 2):
        fn, loc = out[i], out[i + 1]
        if fn.startswith("kc_") and "glue.c" in loc:
            continue
        lines.append(f"  {fn} {os.path.basename(loc.split(' ')[0])}")
    return "\n".join(lines[:12])


class Machine:
    """The C side's view of one emulator `Memory`: an arena at its physical addresses, kept in sync."""

    def __init__(self, lib: KernelLib, mem):
        self.lib, self.L, self.mem = lib, lib.L, mem
        lib.reap()
        self.id = lib.next_id()
        if lib.pool:
            self.ctx = lib.pool.pop()
            lib.L.kc_ctx_reset(self.ctx, self.id)
        else:
            self.ctx = lib.L.kc_ctx_new(self.id, ARENA_BASE, ARENA_SIZE)
        if not self.ctx:
            raise MemoryError("kernel arena")
        lib.machines[self.id] = self
        lib.by_mem[id(mem)] = self         # the machine holds mem, so its id stays unique while both live
        self.warns: list[str] = []
        self.cleans: list[tuple[int, int, int]] = []     # (what, pa, size) of every DMA-API call
        self.dead: KernelCrash | None = None
        self.muted = False                               # tearing down: hooks do nothing
        self.owned: set[int] = set()                     # C tables not freed yet

    def __del__(self):
        """Freed later, outside any C call (a collection may run inside a hook of another machine)."""
        ctx, self.ctx = getattr(self, "ctx", None), None
        if ctx:
            self.lib.graveyard.append((ctx, () if self.dead is not None else tuple(self.owned)))

    def alloc(self, size: int) -> int:
        return self.mem.alloc_pages(size)

    def free(self, pa: int, size: int) -> None:
        self.collect()
        self.mem.free_pages(pa, size)

    def dma(self, pa: int, size: int, what: int) -> None:
        self.collect()
        self.cleans.append((what, pa, size))
        if what in (0, 1) and not self.mem.coherent:      # dma_map_single / dma_sync_single_for_device
            self.mem.clean(pa, size)

    def warn(self, text: str) -> None:
        self.warns.append(text)

    def barrier(self, complete: bool) -> None:
        """wmb() (complete) or dma_wmb() in kernel code: its stores so far, then the barrier, reach the emulator."""
        self.collect()
        if complete:
            self.mem.wmb()
        else:
            self.mem.dma_wmb()

    def collect(self) -> int:
        """Copy the words the C code stored since the last look into the emulator's CPU view."""
        n = self.L.kc_collect(self.ctx)
        if n:
            buf = self.L.kc_changes_buf()[: 2 * n]
            w = self.mem.cpu_write
            for i in range(0, 2 * n, 2):
                w(buf[i], buf[i + 1])
        return n

    def call(self, fn, *args):
        """Run kernel code: mirror its stores, raise a hook's exception or the crash it caused."""
        if self.dead is not None:
            raise self.dead
        r = fn(*args)
        self.collect()
        err, self.lib.error = self.lib.error, None
        if r == CRASHED:
            self.dead = self.lib.crash()
            raise self.dead
        if err is not None:
            raise err
        return r
