"""Runs one program on the reference emulator under each variant and reports findings.

The single interface between harness and variants: a variant is a class built as
`factory(hw, pg_shift, ias, oas, stage)` with map/map_sg/unmap/unmap_fast/iotlb_sync/
flush_iotlb_all/attach/detach/set_ats, each returning what the kernel API returns.
"""

import gc
import traceback
from bisect import bisect_left
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from itertools import accumulate

from ..reference.oracle import Oracle, Violation, check_translation
from ..reference.smmu import CommandBudgetExceeded, HangError, HwConfig, Smmu
from ..reference.spec import DomainSpec, Spec, iommu_pgsize
from ..variants.caps import caps
from ..variants.registry import comparable, variant as lookup_variant
from ..variants.kthread import Acquire, Deadlock, Livelock, Release
from ..prog import contract, latitude
from . import feature_cov, inflight, op_models
from .figures import OpFigures
from ..prog.program import CONTEXTS, NUM_SIDS, OS_KINDS, Config, Op, Program
from .sched import DEFAULT_PREEMPTIONS, Scheduler, ScheduleHang

HANG, CRASH, DIVERGENCE = "HANG", "CRASH", "DIVERGENCE"
_DOM_FIRST = frozenset(k for k in OS_KINDS if k not in ("detach", "ats", "dma_unmap"))   # args[0] is a domain
OAS = 48
MAX_LEAVES_PER_OP = 1024       # program budget: bigger maps are skipped (same for every variant)
MAX_LEAVES_PER_PROGRAM = 4096
SKIPPED = "skipped: over the program budget"


@dataclass
class Finding:
    kind: str
    variant: str
    op_index: int
    op_text: str
    message: str
    witness: str = ""

    def signature(self) -> tuple:
        return (self.kind, self.variant, self.op_text.split("(", 1)[0])

    def text(self) -> str:
        s = f"{self.kind} in variant {self.variant} at op {self.op_index}: {self.op_text}\n  {self.message}"
        if self.witness:
            s += "\n  witness: " + self.witness.replace("\n", "\n    ")
        return s


@dataclass
class VariantRun:
    name: str
    finding: Finding | None = None
    returns: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    stopped: int | None = None       # op index where the command budget ended the run
    trace: object = None             # concurrent runs: the scheduler's SchedTrace


@dataclass
class RunResult:
    program: Program
    runs: list[VariantRun]
    findings: list[Finding]


def hw_config(cfg: Config, policy: str) -> HwConfig:
    return HwConfig(coherent=cfg.coherent, range_inv=cfg.range_inv, ats=cfg.ats, e2h=cfg.e2h, policy=policy,
                    **latitude.hw_fields(cfg))


class _Exec:
    """One variant executing one program against its own SMMU and Spec."""

    def __init__(self, prog: Program, name: str, policy: str, snapshots: bool, figures: bool = False):
        factory = lookup_variant(name).factory
        self.factory = factory
        self.caps = c = caps(factory)
        cfg = prog.config
        if c.config:                                 # what the driver supports (e.g. a 4K-only, 32-bit IOMMU)
            cfg = replace(cfg, **{k: (min(v, getattr(cfg, k)) if k == "ias" else v) for k, v in c.config.items()})
        self.cfg = cfg
        self.name = name
        hw = hw_config(cfg, policy)
        for k, v in c.hw.items():                    # e.g. a variant for non-coherent SMMUs
            setattr(hw, k, v)
        hw.weak_stores = c.store_barriers            # judged on store order only where it has the barriers
        self.smmu = Smmu(hw)
        self.ias = cfg.ias
        self.bitmap = c.bitmap(cfg.pg_shift)         # domain->pgsize_bitmap
        self.oas = c.oas
        self.pa_min = c.pa_min
        self.dma_only = c.fq_default
        self.os = factory(self.smmu, cfg.pg_shift, self.ias, c.oas, cfg.stage)
        self.spec = Spec()
        self.oracle = Oracle(self.smmu, self.spec)
        self.policy = policy
        self.want_snapshots = snapshots
        self.granule = 1 << cfg.pg_shift
        self.budget_used = 0
        # invalidation and cache-maintenance cost per op kind: an observer the cost tools turn on (it reads
        # every command an op sends, a quarter-million for one io-pgtable walk flush by register TLBIs)
        self.figures = OpFigures(self.granule) if figures else None
        self.handles: list = []                  # dma_map results, by program order
        self.dom_tags: dict[int, set] = {}
        self.concurrent = False                  # set by the scheduler: ops may be in flight together
        self.inflight: dict = {}                 # op index -> op, while concurrent
        self.claims: dict = {}                   # op index -> (domain, lo, hi) it is changing
        self.conflicts: set = set()
        self.gather_owner: dict = {}             # (domain, gather id) -> context using it (contract.gather_taken)
        self.mms: dict = {}                      # mm -> reference.process_mm.ProcessMm (op_models.process_mm)
        self.sva_handles: dict = {}              # (sid, mm) -> (PASID, users) of a live iommu_sva handle

    def dspec(self, dom: int) -> DomainSpec:
        ds = self.spec.domains.get(dom)
        if ds is None:
            if self.caps.fq_default:
                self.spec.fq.add(dom)            # an IOMMU_DOMAIN_DMA_FQ domain from the start
            ds = self.spec.domains[dom] = DomainSpec(self.bitmap, self.ias, self.oas,
                                                     0 if self.caps.no_perms else self.cfg.stage,
                                                     chunk_extents=self.caps.chunk_extents)
        return ds

    def leaves(self, iova: int, pa: int, size: int) -> int:
        """How many leaf PTEs a map of this shape writes (iommu_pgsize chunks)."""
        bitmap = self.bitmap
        if (iova | pa | size) & (self.granule - 1):
            return 0
        n = 0
        while size and n <= MAX_LEAVES_PER_OP:
            pg, cnt = iommu_pgsize(bitmap, iova, pa, size)
            n += cnt
            iova, pa, size = iova + pg * cnt, pa + pg * cnt, size - pg * cnt
        return n

    def skip_reason(self, op: Op) -> str | None:
        """Ops the harness does not issue: outside the caller contract (contract.py), or beyond the program
        budget (a map writing more than MAX_LEAVES_PER_OP leaves, or the program more than MAX_LEAVES_PER_PROGRAM)."""
        chunks = self.map_chunks(op)
        why = contract.skip(self, op, chunks)
        if why or not chunks:
            return why
        n = sum(self.leaves(va, pa, ln) for va, pa, ln in chunks)
        self.budget_used += n
        if n > MAX_LEAVES_PER_OP or self.budget_used > MAX_LEAVES_PER_PROGRAM:
            return SKIPPED
        return None

    def map_chunks(self, op: Op) -> list[tuple[int, int, int]]:
        """The (iova, paddr, length) runs a map-like op writes (a dma_map's IOVA is the allocator's: 0 here, the
        allocator aligning it to the size)."""
        if op.kind == "map":
            return [(op.args[1], op.args[2], op.args[3])]
        if op.kind == "map_sg":
            return sg_chunks(op.args[1], op.args[2])
        if op.kind == "dma_map":
            g = self.granule
            pa, size = op.args[1], op.args[2]
            return [(0, pa & ~(g - 1), (size + (pa & (g - 1)) + g - 1) & ~(g - 1))]
        return []

    def step(self, i: int, op: Op):
        """Execute one op alone; returns (return value, violation or None)."""
        g = self.step_gen(i, op)
        try:
            req = next(g)
        except StopIteration as e:
            return e.value
        raise AssertionError(f"op {i} yielded {req} outside a concurrent run")

    def _os(self, task, call):
        """The OS call: under the scheduler, on a step-by-step variant (VariantCaps.concurrent), the task body
        task() gives (its *_task() method: a generator returning what the API returns); else call(), one step."""
        if self.concurrent and self.caps.concurrent:
            return (yield from task())
        return call()

    def _group_lock(self, sid: int, take: bool):
        """The variant's group->mutex of the device (SmmuV3Os.group_mutex) taken or released, where ops can be
        in flight together; the intent is updated inside it, where the change takes effect."""
        if self.concurrent:
            yield (Acquire if take else Release)(self.os.group_mutex(sid))

    def step_gen(self, i: int, op: Op):
        """Execute one op as a task body; returns (return value, violation or None)."""
        k = op.kind
        smmu, spec = self.smmu, self.spec
        why = self.skip_reason(op)
        if why:
            return why, None
        contract.gather_taken(self, op)
        mark = self.figures.start(smmu) if self.figures is not None else None
        if self.concurrent:
            inflight.claim(self, i, op)
        ret = op_models.MODELS[k](self, i, op)
        if isinstance(ret, Generator):          # (a compiled model's generator too)
            ret = yield from ret
        if isinstance(ret, op_models.Stop):          # judged inside the op: nothing after it runs
            return ret.ret, ret.violation
        if self.concurrent:
            inflight.release(self, i)
        for sid, d in spec.attached.items():          # the TLB tags each domain has been used with
            if self.concurrent and inflight.unstable(self, i, sid):
                continue
            ste = smmu.strtab.get(sid)
            if ste is not None and ste.translates:
                self.dom_tags.setdefault(d, set()).add(ste.tag)
        if spec.fq_pending:
            self._settle_fq()
        if k in OS_KINDS:
            if mark is not None:
                self.figures.add(i, op, mark, smmu, spec.domains.get(op.args[0]) if op.kind in _DOM_FIRST else None)
            if self.policy == "max-cache":
                smmu.fill_all()
        if feature_cov.collecting_cache_shapes():
            feature_cov.cache_event(k, smmu.cache_shape())
        return ret, self._judge(i)

    def _judge(self, i: int):
        """The oracle after op i (taking the other contexts' ops in flight into account)."""
        return self.oracle.check(range(NUM_SIDS), inflight.resolver(self, i) if self.concurrent else None)

    def _settle_fq(self) -> None:
        """A lazily unmapped range is promised gone once a context-wide flush of its domain, published
        after the unmap, has completed (the flush queue's flush-all), or once no cache holds it (_cached)."""
        spec, smmu = self.spec, self.smmu
        for dom, entries in spec.fq_pending.items():
            tags = set(self.dom_tags.get(dom, ()))   # never attached: nothing can have been cached
            for o in self.inflight.values():          # a stream being attached may already walk dom
                if o.kind == "attach" and o.args[0] == dom:
                    ste = smmu.strtab.get(o.args[1])
                    if ste is not None and ste.translates:
                        tags.add(ste.tag)
            keep = []
            for seq, exts, uop in entries:
                if all(smmu.covered_since(t, seq, e.base, e.base + e.span)
                       or not self._cached(t, e.base, e.base + e.span) for t in tags for e in exts):
                    self.dspec(dom).settle(exts, uop)
                else:
                    keep.append((seq, exts, uop))
            entries[:] = keep

    def _cached(self, tag: tuple, lo: int, hi: int) -> bool:
        """Could a device still translate part of lazily unmapped [lo, hi): a TLB entry of this tag, any device
        ATC entry, or a walk of a configuration with this tag (e.g. a virtio-iommu UNMAP still queued)? With none,
        nothing can bring the old translation back (e.g. a virtio-iommu domain whose last endpoint left: the host
        destroyed it, and viommu_flush_iotlb_all() rightly does nothing). A PTE clear the SMMU may not observe yet
        (reference/store_order.py) may still be walked: arm_smmu_tlb_inv_context() relies on the flush's command
        publication for that."""
        smmu = self.smmu
        if smmu.mem.stores_pending:
            return True
        if any(k[0] == tag and k[1] < hi and lo < k[1] + k[2] for k in smmu.tlb):
            return True
        if any(va < hi and lo < va + span for atc in smmu.atc.values() for va, span, _pa, _p in atc):
            return True
        for sid in range(NUM_SIDS):
            for ste in smmu.configs(sid):
                if ste.translates and ste.tag == tag and any(lf.va < hi and lo < lf.va + lf.span
                                                             for lf in smmu.tree(ste)[0]):
                    return True
        return False

    def _spec_map_sg(self, dom, iova, sg, prot, i, ok: bool = True) -> None:
        """iommu_map_sg() intent: the merged chunks, all or nothing."""
        chunks = sg_chunks(iova, sg)
        ds = self.dspec(dom)
        total = sum(ln for _va, _pa, ln in chunks)
        # caller misuse (contract.map_unknown); even a map_sg that fails later may have replaced a table by
        # a block (freeing what was under it) before the unwind
        r = contract.map_unknown(ds, iova, total, prot, ok)
        if r:
            ds.mark_unknown(*r, i)
            return
        if not ok:
            return
        probe = DomainSpec(ds.bitmap, ds.ias, ds.oas, ds.stage)
        for va, pa, ln in chunks:
            if ln and not probe.map(va, pa, ln, prot, i):
                return      # some chunk fails: iommu_map_sg unwinds everything
        for va, pa, ln in chunks:
            ds.map(va, pa, ln, prot, i)

    def _spec_unmap(self, dom: int, iova: int, size: int, ret: int, i: int, state_after: str | None) -> list:
        """The intent after an unmap-like call returned ret: an unknown range if it broke the caller contract
        (contract.unmap_unknown), else the extents it removed (or left pending until their gather is synced)."""
        ds = self.dspec(dom)
        r = contract.unmap_unknown(ds, iova, size, ret)
        if r:
            ds.mark_unknown(*r, i)
            return []
        return ds.unmap(iova, size, ret, i, state_after)

    def _check_dma(self, sid: int, iova: int, write: bool, outs) -> Violation | None:
        dom = self.spec.attached.get(sid)
        ds = self.spec.domains.get(dom) if dom is not None else None
        page = iova & ~(self.granule - 1)
        need = "w" if write else "r"
        for o in outs:
            if need not in o.perms or o.source == "bypass":
                continue
            v = check_translation(ds, page, self.granule, o.pa & ~(self.granule - 1), o.perms,
                                  f"sid {sid} DMA {'write' if write else 'read'} via {o.source}", o.seq,
                                  self.smmu.cmd_log)
            if v:
                return v
        return None

    def snapshot(self) -> tuple:
        """What the SMMU would translate for each stream now (for cross-variant divergence)."""
        out = []
        for sid in range(NUM_SIDS):
            ste = self.smmu.strtab.get(sid)
            if ste is None or not ste.translates:
                out.append((sid, ste.config if ste else "abort"))
                continue
            reach = self.smmu.reach(ste)
            dom = self.spec.attached.get(sid)
            ds = self.spec.domains.get(dom) if dom is not None else None
            # only what has been promised: a pending unmap (or a range the caller contract leaves unknown)
            # may legitimately be visible on one variant and gone on another until its gather is synced
            unsettled = ds.unsettled() if ds is not None else ()
            if unsettled:               # keep a leaf no unsettled [lo, hi) overlaps: the last lo below its end,
                us = sorted(unsettled)  # and the highest hi up to it
                los = [lo for lo, _hi in us]
                top = list(accumulate((hi for _lo, hi in us), max))
                reach = tuple(t for t in reach if (j := bisect_left(los, t[0] + t[1]) - 1) < 0 or top[j] <= t[0])
            out.append((sid, reach))
        return tuple(out)


def sg_chunks(iova: int, sg) -> list[tuple[int, int, int]]:
    """iommu_map_sg()'s merging of physically contiguous entries: [(iova, paddr, length)]."""
    chunks, start, length, off = [], 0, 0, 0
    for pa, ln in sg:
        if length and pa == start + length:
            length += ln
            continue
        if length:
            chunks.append((iova + off, start, length))
            off += length
        start, length = pa, ln
    if length:
        chunks.append((iova + off, start, length))
    return chunks


def _setup(prog: Program, name: str, policy: str, snapshots: bool,
           figures: bool = False) -> tuple[VariantRun, "_Exec | None"]:
    run = VariantRun(name)
    try:
        return run, _Exec(prog, name, policy, snapshots, figures)
    except Exception as e:  # the variant failed to even set up
        run.finding = Finding(CRASH, name, -1, "setup", f"{type(e).__name__}: {e}", traceback.format_exc(limit=-4))
        return run, None


def run_variant(prog: Program, name: str, policy: str = "max-cache", snapshots: bool = False,
                probe=None, figures: bool = False) -> VariantRun:
    """Run prog on one variant; probe(ex, i, op, ret), if given, sees the machine after each op; with
    `figures`, run.stats["per_op"] and ["last_op"] hold the cost figures (figures.py)."""
    run, ex = _setup(prog, name, policy, snapshots, figures)
    if ex is None:
        return run
    for i, op in enumerate(prog.ops):
        try:
            ret, v = ex.step(i, op)
        except HangError as e:
            run.finding = Finding(HANG, name, i, op.text(), str(e), _last_frames())
            break
        except CommandBudgetExceeded as e:
            run.returns.append(f"stopped: {e} (the program budget)")
            run.stopped = i
            break
        except RecursionError as e:
            run.finding = Finding(HANG, name, i, op.text(), f"unbounded recursion: {e}", _last_frames())
            break
        except (Livelock, Deadlock) as e:
            run.finding = Finding(HANG, name, i, op.text(), f"{type(e).__name__.lower()}: {e}", _last_frames())
            break
        except Exception as e:
            run.finding = Finding(CRASH, name, i, op.text(), f"{type(e).__name__}: {e}", _last_frames())
            break
        run.returns.append(ret)
        if snapshots:
            run.snapshots.append(ex.snapshot())
        if probe is not None:
            probe(ex, i, op, ret)
        if v is not None:
            run.finding = Finding(v.kind, name, i, op.text(), v.message, v.witness)
            break
    _stats(run, ex)
    if probe is None:
        ex.smmu.release()           # freed now, not by the cyclic collector
    return run


def run_variant_concurrent(prog: Program, name: str, policy: str = "max-cache",
                           max_preemptions: int = DEFAULT_PREEMPTIONS, keep_log: bool = True,
                           figures: bool = False) -> VariantRun:
    """Run prog's contexts as cooperative tasks under its schedule (exec/sched.py); the oracle
    judges each op when it returns, and the max-cache policy refills after every step."""
    run, ex = _setup(prog, name, policy, False, figures)
    if ex is None:
        return run
    ex.concurrent = True
    fill = ex.smmu.fill_all if policy == "max-cache" else (lambda: None)
    sched = Scheduler(prog, ex.step_gen, fill, max_preemptions, keep_log)
    ex.inflight = sched.inflight
    returns: dict[int, object] = {}
    sched.on_result = returns.__setitem__
    run.trace = sched.trace

    def at() -> tuple[int, str]:
        t = sched.stepping
        i = t.op_index if t is not None else -1
        return i, (prog.ops[i].text() if i >= 0 else "schedule")
    try:
        found = sched.run()
        if found is not None:
            i, _ret, v = found
            run.finding = Finding(v.kind, name, i, prog.ops[i].text(), v.message, v.witness)
    except ScheduleHang as e:
        run.finding = Finding(HANG, name, *at(), str(e), _trace_tail(sched.trace))
    except Deadlock as e:
        if any(h in CONTEXTS for h in e.holders):
            # an op that runs to completion in one step (the DMA API path) met a lock another context
            # holds mid-op: in the kernel it would spin until that context releases it; the model
            # cannot interleave inside it, so the run stops unjudged (not a finding)
            run.stopped = at()[0]
            returns[run.stopped] = f"stopped: {e} (an op that cannot wait under the scheduler)"
        else:
            run.finding = Finding(HANG, name, *at(), f"Deadlock: {e}", _last_frames())
    except (HangError, RecursionError, Livelock) as e:
        run.finding = Finding(HANG, name, *at(), f"{type(e).__name__}: {e}", _last_frames())
    except CommandBudgetExceeded as e:
        run.stopped = at()[0]
        returns[run.stopped] = f"stopped: {e} (the program budget)"
    except Exception as e:
        run.finding = Finding(CRASH, name, *at(), f"{type(e).__name__}: {e}", _last_frames())
    run.returns = [returns.get(i) for i in range(len(prog.ops))]
    _stats(run, ex)
    ex.smmu.release()               # freed now, not by the cyclic collector
    return run


def _trace_tail(trace) -> str:
    if not trace.log:
        return f"{len(trace.points)} scheduling points, {trace.preemptions} preemptions"
    return "\n".join(f"#{p} {ctx}: {label}" for p, ctx, label in trace.log[-12:])


def _stats(run: VariantRun, ex: "_Exec") -> None:
    m = ex.smmu.mem
    st = ex.smmu.stats
    run.stats = {"cmds": dict(st.cmds), "syncs": st.syncs, "inv_pages": st.inv_pages,
                 "full_flushes": st.full_flushes, "cleans": m.cleans, "lines_cleaned": m.lines_cleaned,
                 "redundant_cleans": m.redundant_cleans,
                 "per_op": ex.figures.per_op if ex.figures is not None else {},
                 "last_op": ex.figures.last_op if ex.figures is not None else {}}


def _last_frames() -> str:
    return "".join(traceback.format_exc(limit=-6).splitlines(keepends=True)[-14:])


def run_program(prog: Program, variants: list[str], policy: str = "max-cache",
                max_preemptions: int = DEFAULT_PREEMPTIONS, keep_log: bool = True, figures: bool = False) -> RunResult:
    """Run prog on every variant; findings are per variant, plus DIVERGENCE between variants of one driver model
    (registry.comparable; for sequential programs: under a schedule each variant has its own preemption points).
    `figures`: each run's cost figures per op kind (run.stats["per_op"], the cost and matrix tools)."""
    concurrent = prog.concurrent()
    groups = [g for g in comparable(variants) if len(g) > 1] if not concurrent else []
    many = bool(groups)
    gc_was = gc.isenabled()
    gc.disable()        # long command logs make the cyclic collector the hot spot; collect between runs
    try:
        if concurrent:
            runs = [run_variant_concurrent(prog, v, policy, max_preemptions, keep_log, figures) for v in variants]
        else:
            runs = [run_variant(prog, v, policy, snapshots=many, figures=figures) for v in variants]
    finally:
        if gc_was:
            gc.enable()
    findings = [r.finding for r in runs if r.finding]
    by_name = {r.name: r for r in runs}
    for g in groups:
        grun = [by_name[n] for n in g]
        end = _fault_taken_apart(grun)
        d = _divergence(prog, grun, end) or _return_divergence(prog, grun, end)
        if d:
            findings.append(d)
    return RunResult(prog, runs, findings)


def _fault_taken_apart(runs: list[VariantRun]) -> int:
    """The first op some of the runs skipped as a fault they do not model (contract.NO_FAULT) and others
    took: from there they may fail different allocations, and are not compared."""
    n = min(len(r.returns) for r in runs)
    return next((i for i in range(n) if len({r.returns[i] == contract.NO_FAULT for r in runs}) > 1), n)


def _divergence(prog: Program, runs: list[VariantRun], end: int) -> Finding | None:
    n = min(end, *(len(r.snapshots) for r in runs))
    for i in range(n):
        groups: dict = {}
        for r in runs:
            groups.setdefault(r.snapshots[i], []).append(r.name)
        if len(groups) > 1:
            desc = " vs ".join("{" + ", ".join(g) + "}" for g in groups.values())
            (sa, na), (sb, nb) = list(groups.items())[:2]
            diff = []
            for (sid, a), (_s, b) in zip(sa, sb):
                if a != b:
                    only_a = sorted(set(a) - set(b)) if isinstance(a, tuple) and isinstance(b, tuple) else a
                    only_b = sorted(set(b) - set(a)) if isinstance(a, tuple) and isinstance(b, tuple) else b
                    diff.append(f"sid {sid}: {na[0]} has {_leaves(only_a)}; {nb[0]} has {_leaves(only_b)}")
            return Finding(DIVERGENCE, "+".join(r.name for r in runs), i, prog.ops[i].text(),
                           f"SMMU-visible translations differ after this op: {desc}", "; ".join(diff[:2]))
    return None


def _return_divergence(prog: Program, runs: list[VariantRun], end: int) -> Finding | None:
    """The first op before `end` whose API return value differs between variants (runs that ended early excluded;
    an SVA op a variant skips because it does not model SVA is not compared: contract.NO_SVA)."""
    n = min(end, *(len(r.returns) for r in runs))
    for i in range(n):
        if any(r.returns[i] == contract.NO_SVA for r in runs):
            continue
        groups: dict = {}
        for r in runs:
            groups.setdefault(repr(r.returns[i]), []).append(r.name)
        if len(groups) > 1:
            desc = " vs ".join(f"{{{', '.join(g)}}} returned {v}" for v, g in groups.items())
            return Finding(DIVERGENCE, "+".join(r.name for r in runs), i, prog.ops[i].text(),
                           f"the API call returned different values: {desc}")
    return None


def _leaves(x) -> str:
    if not isinstance(x, list):
        return str(x)
    items = [f"{va:#x}+{span:#x}->{pa:#x} {perms}" for va, span, pa, perms in x[:3]]
    return "[" + ", ".join(items) + (f", +{len(x) - 3} more" if len(x) > 3 else "") + "]"
