"""Runs a concurrent program's contexts as cooperative tasks under a schedule (fuzz-anchors §5.2).

Each context (cpu0, cpu1, irq0, irq1) is a task that executes its ops in program order; an op's body
yields at every preemption point (variants/kthread.py). `preempt(after=s, to=ctx)` on op i switches
to ctx once op i has run s steps (one preemption), `preempt(at="label", n=k, to=ctx)` once it has passed
its k-th point with that label (program.Anchor: the same kernel point on every variant); otherwise the current task finishes its op and the
next op in program order follows, so an empty schedule is the sequential program. irqN is an interrupt on CPU N: while it runs, cpuN's
task cannot; it cannot start while cpuN holds an irqsave lock. A lock wait is a blocked task; no
runnable task left with work outstanding is a deadlock, too many steps in one op a livelock.
"""

import functools
import re
from dataclasses import dataclass, field

from ..variants.kthread import Acquire, Point, Release, can_acquire, grant, release
from .feature_cov import interleaving_event
from ..prog.program import CONTEXTS, Anchor, Program

OP_STEP_LIMIT = 20000          # one op that takes more steps than this never finishes (a livelock)
DEFAULT_PREEMPTIONS = 3


class ScheduleHang(Exception):
    """A deadlock or livelock under this schedule; the message says who waits for what."""


@dataclass
class Task:
    ctx: int
    queue: list = field(default_factory=list)     # [(op index, op)] still to start
    gen: object = None                            # the running op's body
    op_index: int = -1
    blocked: Acquire | None = None
    steps: int = 0
    irq_off: int = 0
    label: str = ""                               # the latest preemption point it passed
    seen: dict = field(default_factory=dict)      # label -> occurrences in the running op (for anchors)

    @property
    def name(self) -> str:
        return CONTEXTS[self.ctx]

    @property
    def cpu(self) -> int:
        return self.ctx & 1 if self.ctx >= 2 else self.ctx

    @property
    def is_irq(self) -> bool:
        return self.ctx >= 2

    def has_work(self) -> bool:
        return self.gen is not None or bool(self.queue)


@dataclass
class SchedTrace:
    """What the scheduler did: the decision points (for exhaustive search) and a readable log."""
    points: list = field(default_factory=list)   # [(switch key, default, runnable ctxs, chosen, forced)] per step
    log: list = field(default_factory=list)         # [(point, context name, label)]
    preemptions: int = 0
    access: list = field(default_factory=list)      # [(op index, step, reads, writes)]: shared objects
    #                                                 (kthread.Point's; a lock is written, or read if shared)
    waits: list = field(default_factory=list)       # [(op index, step)]: a lock wait began after that step
    anchors: dict = field(default_factory=dict)     # (op index, step) -> (label, occurrence) (with keep_log)
    _by_op: dict | None = None

    def accesses_of(self, op: int) -> list:
        """[(step, reads, writes)] of one op, from `access` (indexed on first use)."""
        if self._by_op is None:
            self._by_op = {}
            for i, step, reads, writes in self.access:
                self._by_op.setdefault(i, []).append((step, reads, writes))
        return self._by_op.get(op, [])


class Scheduler:
    """Drives `start(i, op)` bodies (generators returning (ret, violation)) for one variant."""

    def __init__(self, prog: Program, start, after_step, max_preemptions: int = DEFAULT_PREEMPTIONS,
                 keep_log: bool = False):
        self.tasks: dict[int, Task] = {}
        for i, op in enumerate(prog.ops):
            self.tasks.setdefault(op.ctx, Task(op.ctx)).queue.append((i, op))
        self.order = [self.tasks[c] for c in sorted(self.tasks)]
        self.switches = {(i, a): c for i, a, c in prog.schedule if not isinstance(a, Anchor)}
        self.anchored = {(i, a.label, a.nth): c for i, a, c in prog.schedule if isinstance(a, Anchor)}
        self.count_labels = keep_log or bool(self.anchored)
        self.last_anchor: tuple | None = None          # (op index, label, occurrence) of the latest step
        self.ops = prog.ops
        self.last: tuple | None = None                # (op index, steps of it done) after the latest step
        self.start = start
        self.after_step = after_step
        self.max_preemptions = max_preemptions
        self.trace = SchedTrace()
        self.keep_log = keep_log
        self.inflight: dict[int, object] = {}        # op index -> op, for the oracle
        self.last_access: dict = {}                  # shared object -> {op index: (its last label, wrote)}
        self.stepping: Task | None = None

    def _irq_task(self, cpu: int) -> Task | None:
        return self.tasks.get(2 + cpu)

    def _cpu_task(self, cpu: int) -> Task | None:
        return self.tasks.get(cpu)

    def runnable(self, t: Task) -> bool:
        if not t.has_work():
            return False
        if t.blocked is not None and not can_acquire(t.blocked, t.name, t.is_irq):
            return False
        if t.is_irq:
            if t.gen is None:                          # a new interrupt: masked while its CPU has IRQs off,
                owner = self._cpu_task(t.cpu)          # also while it spins in a *_lock_irqsave (IRQs go off
                if owner is not None and (owner.irq_off or   # before the spin: __raw_write_lock_irqsave)
                                          (owner.blocked is not None and owner.blocked.irqsave)):
                    return False
            return True
        irq = self._irq_task(t.cpu)
        return not (irq is not None and irq.gen is not None)   # an interrupt is running on this CPU

    def run(self):
        """Run to completion; returns the first (op index, ret, violation) with a violation, or None
        (each op's return value goes to on_result)."""
        cur = self.order[0]
        point = 0
        while True:
            runnable = [t for t in self.order if self.runnable(t)]
            if not runnable:
                waiting = [t for t in self.order if t.has_work()]
                if waiting:
                    raise ScheduleHang("deadlock: " + "; ".join(self._why(t) for t in waiting))
                return None
            default = self._default(cur, runnable)
            forced = cur not in runnable
            chosen = default
            key = self.last
            to = self.switches.get(key, -1) if key is not None else -1
            if to < 0 and self.anchored:
                to = self.anchored.get(self.last_anchor, -1)
            tgt = self.tasks.get(to)
            if tgt is not None and tgt is not default and (forced or self.trace.preemptions < self.max_preemptions):
                if tgt not in runnable:                  # masked interrupt, lock wait: the switch waits
                    interleaving_event("deferred", self._where(cur), tgt.name)
                else:
                    if not forced:
                        self.trace.preemptions += 1
                        interleaving_event("preempt", self._where(cur))
                    chosen = tgt
            self.trace.points.append((key, default.ctx, tuple(t.ctx for t in runnable), chosen.ctx, forced))
            cur = chosen
            point += 1
            found = self._step(cur, point)
            if found is not None:
                return found
            self.after_step()

    def _where(self, t: Task) -> str:
        """What a task is doing, for the interleaving features: its op kind and latest point, numbers
        dropped (normalised only when an event needs it: the step loop is the fuzzer's hot path)."""
        return self.ops[t.op_index].kind + ":" + _normal(t.label)

    @staticmethod
    def _default(cur: Task, runnable: list) -> Task:
        """Without a switch: the current task finishes its op; at an op boundary the program order
        decides (a preempted task's unfinished op comes before any op not yet started)."""
        if cur in runnable and cur.gen is not None:
            return cur
        return min(runnable, key=lambda t: t.op_index if t.gen is not None else t.queue[0][0])

    def _why(self, t: Task) -> str:
        if t.blocked is not None:
            lk = t.blocked.lock
            held = lk.writer or ",".join(lk.readers) or "nobody (a waiting writer has priority)"
            return f"{t.name} waits for {lk.name} (held by {held})"
        irq = self._irq_task(t.cpu)
        if not t.is_irq and irq is not None and irq.gen is not None:
            return f"{t.name} is interrupted by {irq.name}, which cannot finish"
        return f"{t.name} cannot run"

    def _step(self, t: Task, point: int):
        self.stepping = t
        if t.gen is None:
            i, op = t.queue.pop(0)
            t.gen, t.op_index, t.steps = self.start(i, op), i, 0
            if self.count_labels:
                t.seen = {}
            self.inflight[i] = op
            if self.keep_log:
                self.trace.log.append((point, t.name, f"begin op {i}: {op.text()}"))
        if t.blocked is not None:
            req, t.blocked = t.blocked, None
            t.steps += 1
            self.last = (t.op_index, t.steps)
            self._grant(t, req)
            if self.count_labels:
                self._anchor(t, f"acquired {req.lock.name}")
            if self.keep_log:
                self.trace.log.append((point, t.name, f"acquired {req.lock.name}"))
            return None
        t.steps += 1
        self.last = (t.op_index, t.steps)
        if t.steps > OP_STEP_LIMIT:
            raise ScheduleHang(f"livelock: {t.name} ran {OP_STEP_LIMIT} steps in op {t.op_index} without finishing")
        try:
            req = t.gen.send(None)
        except StopIteration as e:
            ret, violation = e.value
            if self.count_labels:
                self._anchor(t, "return")
            t.gen = None
            del self.inflight[t.op_index]
            kind = self.ops[t.op_index].kind
            for o in self.order:
                if o is not t and o.gen is not None:     # this op ran entirely inside o's window
                    interleaving_event(kind, self._where(o))
            if self.keep_log:
                self.trace.log.append((point, t.name, f"end op {t.op_index} -> {ret}"))
            self.on_result(t.op_index, ret)
            if violation is not None:
                return t.op_index, ret, violation
            return None
        if isinstance(req, Acquire):
            self.trace.access.append((t.op_index, t.steps, *_lock_access(req)))
            if can_acquire(req, t.name, t.is_irq):
                self._grant(t, req)
            else:
                t.blocked = req
                self.trace.waits.append((t.op_index, t.steps))
                interleaving_event("wait", self.ops[t.op_index].kind, req.lock.name, t.name[:3])
                if not req.shared and t.name not in req.lock.waiting_writers:
                    req.lock.waiting_writers.append(t.name)
            label = f"{'read' if req.shared else 'write' if req.lock.rw else 'mutex'}_lock" \
                    f"{'_irqsave' if req.irqsave else ''}({req.lock.name})" + (" waits" if t.blocked else "")
        elif isinstance(req, Release):
            self.trace.access.append((t.op_index, t.steps, *_lock_access(req)))
            release(req, t.name)
            if req.irqsave:
                t.irq_off -= 1
            label = f"unlock({req.lock.name})"
        elif isinstance(req, Point):
            label = req.label
            if req.reads or req.writes:
                self.trace.access.append((t.op_index, t.steps, req.reads, req.writes))
                self._alias(t.op_index, label, req.reads, req.writes)
        else:
            label = str(req)
        t.label = label
        if self.count_labels:
            self._anchor(t, label)
        if self.keep_log:
            self.trace.log.append((point, t.name, label))
        return None

    def _anchor(self, t: Task, label: str) -> None:
        """Name the step just run by its label and the label's occurrence in the op (program.Anchor)."""
        n = t.seen[label] = t.seen.get(label, 0) + 1
        self.last_anchor = (t.op_index, label, n)
        if self.keep_log:
            self.trace.anchors[(t.op_index, t.steps)] = (label, n)

    def _alias(self, op: int, label: str, reads: tuple, writes: tuple) -> None:
        """KRACE's alias coverage, for windows: an access that lands between two accesses of the same
        object by another op still in flight (one of the two accesses writing) is an interleaving event
        named by both labels (e.g. an array install inside another attach's load..install window)."""
        for x, wrote in [(x, False) for x in reads] + [(x, True) for x in writes]:
            ops = self.last_access.setdefault(x, {})
            for m, (lab, w) in list(ops.items()):
                if m == op:
                    continue
                if m not in self.inflight:
                    del ops[m]
                elif wrote or w:
                    interleaving_event("alias", _normal(lab), _normal(label))
            ops[op] = (label, wrote)

    def _grant(self, t: Task, req: Acquire) -> None:
        grant(req, t.name, t.is_irq)
        if req.irqsave:
            t.irq_off += 1

    def on_result(self, i: int, ret) -> None:
        """Overridden by the runner to record each op's return value."""


def _lock_access(req) -> tuple:
    """(reads, writes) of a lock acquire/release: the shared side only conflicts with the exclusive one."""
    key = ("lock", id(req.lock), req.lock.name)
    return ((key,), ()) if req.shared else ((), (key,))


_DIGITS = re.compile(r"[0-9a-fx]*[0-9][0-9a-fx]*")


@functools.lru_cache(maxsize=4096)
def _normal(label: str) -> str:
    """A label with its numbers dropped, for feature keys (labels repeat: memoised on the hot path)."""
    return _DIGITS.sub("", label)


def interleaving(trace: SchedTrace) -> list[str]:
    """The trace folded into runs of consecutive steps on one context: `#a-#b ctx: first ... last`."""
    out: list[str] = []
    run: list = []
    for step, ctx, label in trace.log:
        if run and run[0][1] != ctx:
            out.append(_fold(run))
            run = []
        run.append((step, ctx, label))
    if run:
        out.append(_fold(run))
    return out


def _fold(run: list) -> str:
    (a, ctx, first), (b, _c, last) = run[0], run[-1]
    steps = f"#{a}" if a == b else f"#{a}-#{b}"
    return f"{steps} {ctx}: {first}" + ("" if len(run) == 1 else f" ... {last}")
