"""The core layer's map/unmap part: variants/core.py vs the tree's drivers/iommu/iommu.c (kernel/cdomain.CCore).

Random sequences of core calls (iommu_map, iommu_unmap, iommu_unmap_fast, iommu_iotlb_sync on a caller's
gather, iommu_map_sg, iommu_flush_iotlb_all, a caller setting gather->queued) run on the model core of the
tree's version and on the C core, each over a fresh recording driver (`RecDriver`: a page table of
(iova -> pgsize) leaves, map failures at chosen addresses, a gather policy, an iotlb_sync_map that may
fail). After every call we compare what it returned, every call the core made into the driver (with the
gather as the driver saw it, and at each iotlb_sync) and the caller's gathers. Each class of difference
keeps one sequence, shrunk, with the first call where the two part.
"""

import random
from dataclasses import dataclass

from ..kernel.cdomain import CCore
from ..variants import gather as G
from ..variants.core import Domain
from .fidelity_core import CoreResult, format_classes, search

M64 = (1 << 64) - 1
ENOMEM, EEXIST, EIO = 12, 17, 5
BITMAPS = (0x1000 | 0x200000 | 0x40000000, 0x1000 | 0x10000 | 0x200000 | 0x2000000, 0x4000 | 0x2000000,
           0x10000 | 0x20000000, 0x1000)
# how the driver treats the gather in unmap_pages: nothing (arm-smmu, virtio...), iommu_iotlb_gather_add_page()
# per page (arm-smmu-v3), one add_range (mtk)
POLICIES = ("ignore", "add_page", "add_range")


@dataclass(frozen=True)
class Step:
    op: str                   # map, unmap, unmap_fast, sync, map_sg, flush_all, set_queued
    iova: int = 0
    paddr: int = 0
    size: int = 0
    gid: int = 0
    sgl: tuple = ()

    def text(self) -> str:
        if self.op == "map":
            return f"iommu_map(iova={self.iova:#x}, paddr={self.paddr:#x}, size={self.size:#x})"
        if self.op == "unmap":
            return f"iommu_unmap(iova={self.iova:#x}, size={self.size:#x})"
        if self.op == "unmap_fast":
            return f"iommu_unmap_fast(iova={self.iova:#x}, size={self.size:#x}, gather={self.gid})"
        if self.op == "sync":
            return f"iommu_iotlb_sync(gather={self.gid})"
        if self.op == "set_queued":
            return f"gather{self.gid}.queued = {self.size}"
        if self.op == "map_sg":
            return f"iommu_map_sg(iova={self.iova:#x}, [{', '.join(f'({p:#x}, {n:#x})' for p, n in self.sgl)}])"
        return "iommu_flush_iotlb_all()"


@dataclass(frozen=True)
class Sequence:
    bitmap: int
    policy: str
    ops: tuple                # the driver ops that exist (the others NULL)
    fail_at: frozenset        # iovas where map_pages fails (-ENOMEM)
    sync_map_fails: bool      # iotlb_sync_map returns -EIO
    steps: tuple

    def text(self) -> str:
        head = (f"driver(pgsize_bitmap={self.bitmap:#x}, gather={self.policy}, ops={','.join(self.ops)}, "
                f"map fails at {{{', '.join(hex(a) for a in sorted(self.fail_at))}}}, "
                f"iotlb_sync_map {'fails' if self.sync_map_fails else 'ok'})")
        return "\n".join([head] + [s.text() for s in self.steps])

    def without(self, i: int, n: int) -> "Sequence":
        return Sequence(self.bitmap, self.policy, self.ops, self.fail_at, self.sync_map_fails,
                        self.steps[:i] + self.steps[i + n:])


class _Hw:
    def tick(self, n: int = 1) -> None:
        pass


def _gather(g) -> tuple:
    return (g.start, g.end, g.pgsize, bool(g.queued))


class RecDriver:
    """A driver whose every op is recorded (the gather as it is handed over) and decided by its table."""

    def __init__(self, seq: Sequence, core):
        self.seq, self.core, self.log, self.leaves = seq, core, [], {}
        for name in ("iotlb_sync", "iotlb_sync_map", "flush_iotlb_all"):
            if name not in seq.ops:
                setattr(self, name, None)

    def map_pages(self, domain, iova, paddr, pgsize, count, prot):
        done = 0
        ret = 0
        for k in range(count):
            a = (iova + k * pgsize) & M64
            if a in self.seq.fail_at or a in self.leaves:
                ret = -ENOMEM if a in self.seq.fail_at else -EEXIST
                break
            self.leaves[a] = pgsize
            done += pgsize
        self.log.append(("map_pages", iova, paddr, pgsize, count, ret, done))
        return ret, done

    def unmap_pages(self, domain, iova, pgsize, count, g):
        self.log.append(("unmap_pages", iova, pgsize, count, _gather(g)))
        done = 0
        for k in range(count):
            a = (iova + k * pgsize) & M64
            if self.leaves.get(a) != pgsize:
                break
            del self.leaves[a]
            done += pgsize
            if self.seq.policy == "add_page" and not G.queued(g):
                G.add_page(self.core, domain, g, a, pgsize)
        if done and self.seq.policy == "add_range":
            G.add_range(g, iova, done)
        return done

    def iotlb_sync(self, domain, g):
        self.log.append(("iotlb_sync",) + _gather(g))

    def iotlb_sync_map(self, domain, iova, size):
        self.log.append(("iotlb_sync_map", iova, size))
        return -EIO if self.seq.sync_map_fails else 0

    def flush_iotlb_all(self, domain):
        self.log.append(("flush_iotlb_all",))


@dataclass(frozen=True)
class State:
    ret: object
    calls: tuple              # the driver calls this step made
    gathers: tuple            # the caller's gathers (start, end, pgsize, queued), by id


def run(seq: Sequence, core) -> list[State]:
    """The states of `core` (a model IommuCore or a CCore) over a RecDriver after each step."""
    drv = RecDriver(seq, core)
    dom = Domain(0, drv, seq.bitmap)
    gathers = {0: G.Gather(), 1: G.Gather()}
    out = []
    for s in seq.steps:
        ret = None
        try:
            if s.op == "map":
                ret = core.iommu_map(dom, s.iova, s.paddr, s.size, 3)
            elif s.op == "unmap":
                ret = core.iommu_unmap(dom, s.iova, s.size)
            elif s.op == "unmap_fast":
                ret = core.iommu_unmap_fast(dom, s.iova, s.size, gathers[s.gid])
            elif s.op == "sync":
                core.iotlb_sync(dom, gathers[s.gid])
            elif s.op == "set_queued":
                gathers[s.gid].queued = bool(s.size)
            elif s.op == "map_sg":
                ret = core.iommu_map_sg(dom, s.iova, list(s.sgl), 3)
            elif s.op == "flush_all":
                core.flush_iotlb_all(dom)
        except Exception as e:             # BUG_ON in iommu_pgsize (model: AssertionError; C: KernelCrash)
            ret = "crash"
            _ = e
        calls, drv.log = tuple(drv.log), []
        out.append(State(ret, calls, tuple(_gather(gathers[k]) for k in sorted(gathers))))
        if ret == "crash":
            break
    return out


def c_core(lib) -> CCore:
    """A CCore on this library, outside any variant."""
    return type("CCoreOn", (CCore,), {"lib_for": staticmethod(lambda: lib)})(_Hw())


def compare(seq: Sequence, core_cls, lib) -> list[tuple[str, int, str]]:
    """The differences at the first step where model and C part: (class, step, what), class "op: aspect"."""
    for i, (m, c) in enumerate(zip(run(seq, core_cls(_Hw())), run(seq, c_core(lib)))):
        op = seq.steps[i].op
        out = []
        if m.ret != c.ret:
            out.append((f"{op}: return value", i, f"model {_v(m.ret)}, C {_v(c.ret)}"))
        if m.calls != c.calls:
            k = next((j for j, (x, y) in enumerate(zip(m.calls, c.calls)) if x != y), min(len(m.calls), len(c.calls)))
            what = (m.calls[k][0] if k < len(m.calls) else c.calls[k][0])
            out.append((f"{op}: driver's {what}", i, f"driver call {k}: model {_call(m.calls, k)}, "
                        f"C {_call(c.calls, k)}"))
        if m.gathers != c.gathers:
            out.append((f"{op}: caller's gather", i, f"model {m.gathers}, C {c.gathers}"))
        if out:
            return out
    return []


def _v(x) -> str:
    return hex(x) if isinstance(x, int) and x >= 0 else str(x)


def _call(calls: tuple, k: int) -> str:
    if k >= len(calls):
        return "no call"
    return calls[k][0] + "(" + ", ".join(_v(a) if not isinstance(a, tuple) else str(tuple(map(_v, a)))
                                         for a in calls[k][1:]) + ")"


# ---- random sequences ---------------------------------------------------------------------------
def _size(rng: random.Random, bitmap: int) -> int:
    sizes = [1 << i for i in range(64) if bitmap >> i & 1]
    r = rng.random()
    if r < 0.7:
        return rng.choice(sizes) * rng.randrange(1, 5) + rng.choice((0, 0, 0, sizes[0], sizes[0] * 3))
    if r < 0.8:
        return 0
    if r < 0.9:
        return rng.choice(sizes) // 2 or 1                # below the page sizes, or unaligned
    return rng.choice(sizes) + rng.randrange(1, 0x1000)


def _addr(rng: random.Random, bitmap: int, used: list) -> int:
    sizes = [1 << i for i in range(64) if bitmap >> i & 1]
    r = rng.random()
    if used and r < 0.5:
        a = rng.choice(used)
        return (a + rng.choice((0, 0, sizes[0], -sizes[0], rng.choice(sizes)))) & M64
    if r < 0.9:
        return rng.choice(sizes) * rng.randrange(0, 8) + sizes[0] * rng.randrange(0, 4)
    if r < 0.95:
        return (M64 + 1 - rng.choice(sizes) * rng.randrange(1, 3)) & M64     # ends at the top of the space
    return rng.randrange(0, 1 << 20)


def random_sequence(rng: random.Random, max_len: int = 16) -> Sequence:
    bitmap = rng.choice(BITMAPS)
    if rng.random() < 0.03:
        bitmap = 0
    ops = tuple(o for o in ("iotlb_sync", "iotlb_sync_map", "flush_iotlb_all") if rng.random() < 0.75)
    min_pg = bitmap & -bitmap or 0x1000
    used: list = []
    steps = []
    for _ in range(rng.randrange(1, max_len + 1)):
        op = rng.choices(("map", "unmap", "unmap_fast", "sync", "map_sg", "flush_all", "set_queued"),
                         (30, 20, 20, 12, 10, 3, 5))[0]
        gid = rng.randrange(2)
        if op == "map":
            iova = _addr(rng, bitmap or 0x1000, used)
            size = _size(rng, bitmap or 0x1000)
            paddr = (iova + min_pg * rng.choice((0, 0, 1, 16))) & ((1 << 48) - 1) if rng.random() < 0.9 else \
                rng.randrange(0, 1 << 40)
            steps.append(Step(op, iova, paddr, size))
            used.append(iova)
        elif op in ("unmap", "unmap_fast"):
            steps.append(Step(op, _addr(rng, bitmap or 0x1000, used), 0, _size(rng, bitmap or 0x1000), gid))
        elif op == "map_sg":
            iova = _addr(rng, bitmap or 0x1000, used)
            phys = min_pg * rng.randrange(0, 64)
            sgl = []
            for _k in range(rng.randrange(1, 5)):
                n = min_pg * rng.randrange(1, 4) if rng.random() < 0.9 else rng.choice((0, min_pg // 2 or 1))
                sgl.append((phys, n))
                phys = phys + n if rng.random() < 0.6 else min_pg * rng.randrange(0, 64)
            steps.append(Step(op, iova, 0, 0, 0, tuple(sgl)))
            used.append(iova)
        elif op == "set_queued":
            steps.append(Step(op, 0, 0, rng.randrange(2), gid))
        else:
            steps.append(Step(op, gid=gid))
    fail_at = frozenset(rng.sample(used, k=min(len(used), rng.randrange(0, 2)))) if used else frozenset()
    fail_at = frozenset((a + min_pg * rng.randrange(0, 3)) & M64 for a in fail_at)
    return Sequence(bitmap, rng.choice(POLICIES), ops, fail_at, rng.random() < 0.15, tuple(steps))


# ---- the check ---------------------------------------------------------------------------------
def _outcomes(seq: Sequence, states: list[State]):
    for s, st in zip(seq.steps, states):
        if s.op in ("map", "map_sg"):
            yield f"{s.op}: {'error' if isinstance(st.ret, int) and st.ret < 0 else 'ok'}"
        if any(c[0] == "iotlb_sync" for c in st.calls):
            yield f"{s.op}: driver synced"
        if s.op in ("unmap", "unmap_fast") and st.ret == 0:
            yield f"{s.op}: nothing unmapped"
        if s.op in ("unmap", "unmap_fast") and isinstance(st.ret, int) and st.ret > s.size:
            yield f"{s.op}: unmapped more than asked"
        if any(c[0] == "map_pages" and c[4] > 1 for c in st.calls):
            yield f"{s.op}: map_pages with count > 1"


def check(n: int, seed: int, lib, core_cls, progress=None) -> CoreResult:
    """n random sequences on the model (core_cls) and on the C core in lib."""
    return search(n, seed, CoreResult(core=core_cls.__name__), random_sequence, lambda s: compare(s, core_cls, lib),
                  lambda s: run(s, c_core(lib)), _outcomes, label="core layer (map/unmap)", progress=progress)


def format_result(res: CoreResult, version_text: str = "") -> str:
    return format_classes(f"core layer: {res.sequences} map/unmap sequences ({res.steps} calls), variants/core.py "
                          f"{res.core} vs drivers/iommu/iommu.c{' of linux ' + version_text if version_text else ''}",
                          res.by_class)
