"""The core layer of `smmufuzz kernel check`: our gather model vs the tree's include/linux/iommu.h.

Random sequences of gather calls (iommu_iotlb_gather_init / _add_range / _add_page / _is_disjoint /
_queued, iommu_iotlb_sync, and a caller setting gather->queued) run on variants/gather.py with the
core rule of the tree's version (gather_rules.core_for_version) and on the tree's C (csrc/gather.c).
After every call we compare what it returned, the gather's fields (start, end, pgsize, queued, an empty
freelist) and what the driver's iotlb_sync was handed. Each class of difference (call, field) keeps
one sequence, shrunk, with the first call where the two part.
"""

import random
from collections import Counter
from dataclasses import dataclass, field

from ..kernel import cgather
from ..variants import gather as G
from ..variants.core import Domain

M64 = (1 << 64) - 1
GRANULES = (1, 0x1000, 0x4000, 0x10000, 0x200000, 0x2000000, 0x20000000, 0x40000000, 1 << 39)
CODES = {"init": cgather.INIT, "set_queued": cgather.SET_QUEUED, "add_range": cgather.ADD_RANGE,
         "add_page": cgather.ADD_PAGE, "is_disjoint": cgather.IS_DISJOINT, "queued": cgather.QUEUED,
         "queued_null": cgather.QUEUED_NULL, "sync": cgather.SYNC}
FIELDS = ("start", "end", "pgsize", "queued", "freelist empty")


@dataclass(frozen=True)
class Step:
    op: str
    iova: int = 0
    size: int = 0

    def text(self) -> str:
        if self.op in ("add_range", "add_page", "is_disjoint"):
            return f"{self.op}(iova={self.iova:#x}, size={self.size:#x})"
        return f"set_queued({self.iova})" if self.op == "set_queued" else f"{self.op}()"


@dataclass(frozen=True)
class Sequence:
    has_sync: bool               # the driver has an iotlb_sync op
    steps: tuple

    def text(self) -> str:
        return "\n".join([f"domain(iotlb_sync={'yes' if self.has_sync else 'NULL'})"] +
                         [s.text() for s in self.steps])

    def without(self, i: int, n: int) -> "Sequence":
        return Sequence(self.has_sync, self.steps[:i] + self.steps[i + n:])


@dataclass(frozen=True)
class State:
    ret: int
    fields: tuple                # FIELDS
    syncs: tuple                 # (start, end, pgsize, queued) per call of the driver's iotlb_sync


class _Driver:
    """A driver whose iotlb_sync records the gather it is handed (the model's twin of gather.c's)."""

    def __init__(self):
        self.syncs = []

    def iotlb_sync(self, domain, g) -> None:
        self.syncs.append((g.start, g.end, g.pgsize, bool(g.queued)))


class _NoSyncDriver:
    """A driver without iotlb_sync."""
    syncs: list = []


def run_model(seq: Sequence, core_cls) -> list[State]:
    """The states of our model (variants/gather.py, iotlb_sync of core_cls) after each step."""
    drv = _Driver() if seq.has_sync else _NoSyncDriver()
    dom = Domain(0, drv, 0)
    core = core_cls(None)
    g = G.Gather()
    out = []
    for s in seq.steps:
        ret = 0
        if s.op == "init":
            G.gather_init(g)
        elif s.op == "set_queued":
            g.queued = bool(s.iova)
        elif s.op == "add_range":
            G.add_range(g, s.iova, s.size)
        elif s.op == "add_page":
            G.add_page(core, dom, g, s.iova, s.size)
        elif s.op == "is_disjoint":
            ret = int(bool(G.is_disjoint(g, s.iova, s.size)))
        elif s.op == "queued":
            ret = int(bool(G.queued(g)))
        elif s.op == "queued_null":
            ret = int(bool(G.queued(None)))
        elif s.op == "sync":
            core.iotlb_sync(dom, g)
        syncs, drv.syncs = tuple(drv.syncs), [] if seq.has_sync else drv.syncs
        out.append(State(ret, (g.start, g.end, g.pgsize, bool(g.queued), not g.freelist), syncs))
    return out


def run_c(seq: Sequence, lib) -> list[State]:
    """The states of the tree's C (csrc/gather.c on include/linux/iommu.h) after each step."""
    c = cgather.CGather(lib, seq.has_sync)
    out = []
    for s in seq.steps:
        ret = c.op(CODES[s.op], s.iova, s.size)
        out.append(State(ret, c.fields(), tuple(c.syncs())))
    return out


def compare(seq: Sequence, core_cls, lib) -> list[tuple[str, int, str]]:
    """The differences at the first step where model and C part: (class, step, what), class "op: field"."""
    for i, (m, c) in enumerate(zip(run_model(seq, core_cls), run_c(seq, lib))):
        op = seq.steps[i].op
        out = []
        if m.ret != c.ret:
            out.append((f"{op}: return value", i, f"model {m.ret}, C {c.ret}"))
        for name, x, y in zip(FIELDS, m.fields, c.fields):
            if x != y:
                out.append((f"{op}: {name}", i, f"model {_hex(x)}, C {_hex(y)}"))
        if m.syncs != c.syncs:
            out.append((f"{op}: driver's iotlb_sync", i, f"model {_syncs(m.syncs)}, C {_syncs(c.syncs)}"))
        if out:
            return out
    return []


def _hex(v) -> str:
    return hex(v) if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _syncs(s: tuple) -> str:
    if not s:
        return "not called"
    return "called with " + "; ".join(f"start={a:#x} end={b:#x} pgsize={p:#x} queued={q}" for a, b, p, q in s)


# ---- random sequences ---------------------------------------------------------------------------
def _size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.6:
        return rng.choice(GRANULES)
    if r < 0.8:
        return rng.choice(GRANULES) * rng.randrange(2, 9)
    if r < 0.85:
        return 0
    if r < 0.9:
        return rng.randrange(1, 0x3000)
    if r < 0.95:
        return (M64 - rng.randrange(0, 0x3000)) & M64
    return rng.getrandbits(64)


def _iova(rng: random.Random, ranges: list, size: int) -> int:
    """Mostly next to, inside or just off a range added since the last init or sync; sometimes at the
    ends of the address space or anywhere."""
    r = rng.random()
    if ranges and r < 0.7:
        lo, sz = rng.choice(ranges)
        hi = (lo + sz - 1) & M64
        gran = rng.choice(GRANULES)
        return rng.choice((hi + 1, lo - size, lo, hi, hi + 1 + gran, lo - size - gran, hi + 2, lo - size - 1,
                           lo + rng.randrange(0, max(sz, 1)))) & M64
    if r < 0.8:
        return (M64 + 1 - rng.choice(GRANULES) * rng.randrange(1, 4)) & M64
    if r < 0.85:
        return 0
    if r < 0.95:
        return rng.choice(GRANULES) * rng.randrange(0, 64)
    return rng.getrandbits(64)


def random_sequence(rng: random.Random, max_len: int = 30) -> Sequence:
    """init, then up to max_len calls."""
    steps = [Step("init")]
    ranges: list = []
    for _ in range(rng.randrange(1, max_len + 1)):
        op = rng.choices(("add_page", "add_range", "is_disjoint", "sync", "init", "set_queued", "queued",
                          "queued_null"), (40, 15, 15, 8, 4, 6, 6, 2))[0]
        if op in ("add_page", "add_range", "is_disjoint"):
            size = _size(rng)
            iova = _iova(rng, ranges, size)
            steps.append(Step(op, iova, size))
            if op != "is_disjoint":
                ranges.append((iova, size))
        elif op == "set_queued":
            steps.append(Step(op, rng.randrange(2)))
        else:
            steps.append(Step(op))
            if op in ("init", "sync"):
                ranges = []
    return Sequence(rng.random() < 0.8, tuple(steps))


# ---- the check ---------------------------------------------------------------------------------
def search(n: int, seed: int, res, random_sequence, differences, c_states, outcomes, first: int = 0,
           label: str = "core layer", progress=None):
    """n random sequences (random_sequence(rng)) into res: what the C did (outcomes of c_states), and each
    class of difference (differences(seq): (class, step, what)) once, counted, with its sequence shrunk by
    deleting steps from index `first` on (fidelity.shrink)."""
    from .fidelity import shrink
    rng = random.Random(seed)
    for _ in range(n):
        seq = random_sequence(rng)
        res.sequences += 1
        res.steps += len(seq.steps)
        res.seen.update(outcomes(seq, c_states(seq)))
        for cls, step, detail in differences(seq):
            slot = res.by_class.get(cls)
            if slot is not None:
                slot[0] += 1
                continue
            small = shrink(seq, lambda s, k=cls: any(d[0] == k for d in differences(s)), items=lambda s: s.steps,
                           first=first)
            d = next(x for x in differences(small) if x[0] == cls)
            res.by_class[cls] = [1, small, d[1], d[2]]
            if progress:
                progress(f"{label}: new difference: {cls} (sequence {res.sequences})")
    return res


def format_classes(head: str, by_class: dict) -> str:
    """head, then each class of difference with its smallest sequence and the call where model and C part."""
    if not by_class:
        return head + ": no difference"
    lines = [head + f": {len(by_class)} class(es) of difference"]
    for cls, (count, seq, step, detail) in sorted(by_class.items()):
        lines.append(f"\n{cls}, in {count} sequence(s); smallest, at call {step} ({seq.steps[step].text()}): {detail}")
        lines.append("    " + seq.text().replace("\n", "\n    "))
    return "\n".join(lines)


@dataclass
class CoreResult:
    sequences: int = 0
    steps: int = 0
    by_class: dict = field(default_factory=dict)     # class -> [count, sequence, step, detail]
    seen: Counter = field(default_factory=Counter)   # what the C did: "add_page: driver synced", "is_disjoint: 1", ...
    core: str = ""
    missing: str | None = None                       # why the layer could not run (the build has no gather.c)


def _outcomes(seq: Sequence, states: list[State]):
    for s, st in zip(seq.steps, states):
        if s.op in ("add_page", "sync"):
            yield f"{s.op}: {'driver synced' if st.syncs else 'no driver sync'}"
        elif s.op in ("is_disjoint", "queued"):
            yield f"{s.op}: {st.ret}"
        if s.op in ("add_page", "add_range") and s.size and s.iova + s.size - 1 > M64:
            yield f"{s.op}: range wraps past ULONG_MAX"
        if s.op == "add_page" and st.fields[0] > st.fields[1]:
            yield "add_page: leaves start > end"


def check(n: int, seed: int, lib, core_cls, progress=None) -> CoreResult:
    """n random sequences on the model (with core_cls's iotlb_sync) and on the C in lib."""
    return search(n, seed, CoreResult(core=core_cls.__name__), random_sequence, lambda s: compare(s, core_cls, lib),
                  lambda s: run_c(s, lib), _outcomes, first=1, progress=progress)


def check_build(n: int, seed: int, build, lib, progress=None) -> CoreResult:
    """The core layer on a build: the model with the core rule of the tree's version, or why it cannot run."""
    from ..variants.gather_rules import core_for_version
    core_cls = core_for_version(build.tree.version)
    if build.core_missing:
        return CoreResult(core=core_cls.__name__, missing=build.core_missing)
    return check(n, seed, lib, core_cls, progress)


def format_result(res: CoreResult, version_text: str = "") -> str:
    if res.missing:
        return f"core layer: not checked: the tree's gather helpers were not built: {res.missing}"
    head = (f"core layer: {res.sequences} gather sequences ({res.steps} calls), variants/gather.py with "
            f"{res.core}'s iotlb_sync vs include/linux/iommu.h{' of linux ' + version_text if version_text else ''}")
    return format_classes(head, res.by_class)
