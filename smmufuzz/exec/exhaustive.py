"""Every schedule of one fixed program up to K preemptions (CHESS-style iterative context bounding).

Answers "is this race real, and which interleavings trigger it" for a minimised finding, and "no
interleaving within the bound goes wrong" for the correct version. Depth-first over the decision
points of each run: a child schedule adds one switch after the parent's last one, so runs share the
prefix and every schedule with at most K preemptions (plus the free choices when a task blocks or
finishes) is run exactly once.

The fuzz target's quick searches, per input, stop at the first finding: explore_races adds one switch
to the program's own schedule where another context's next op can run inside an op on a common
domain; explore_collisions moves an op onto another context to run it inside the window of the op
before it on a common domain.
"""

import itertools
import os
import random
import zlib
from collections import deque
from dataclasses import dataclass, field, replace

from ..prog.contract import own_gather
from ..prog.program import CONTEXTS, SLEEPING_KINDS, Program, touched_domains
from .runner import Finding, run_program, run_variant_concurrent


@dataclass
class Exploration:
    variant: str
    bound: int
    schedules: int = 0
    complete: bool = True
    findings: list = field(default_factory=list)      # [(Program with its schedule, Finding)]: the first
    #                                                   per kind (explore), the first (explore_races/_collisions)
    trace: object = None                              # the searched program's own run (races/collisions)

    def kinds(self) -> dict[str, int]:
        return dict(self._counts)

    _counts: dict = field(default_factory=dict)


def explore(prog: Program, variant: str, bound: int = 2, policy: str = "max-cache",
            limit: int = 20000) -> Exploration:
    """Run prog on one variant under every schedule with at most `bound` preemptions (up to `limit` runs)."""
    ex = Exploration(variant, bound)

    def run(schedule: tuple):
        p = Program(prog.config, prog.ops, schedule)
        res = run_program(p, [variant], policy, max_preemptions=bound, keep_log=False)
        ex.schedules += 1
        r = res.runs[0]
        if r.finding is not None:
            k = r.finding.kind
            ex._counts[k] = ex._counts.get(k, 0) + 1
            if ex._counts[k] == 1:
                ex.findings.append((p, r.finding))
        return r.trace

    stack = [((), 0, 0)]          # (schedule, preemptions used, first decision index still free)
    while stack:
        if ex.schedules >= limit:
            ex.complete = False
            break
        schedule, used, start = stack.pop()
        trace = run(schedule)
        if trace is None:
            continue
        children = []
        for k in range(start, len(trace.points)):
            key, default, runnable, chosen, forced = trace.points[k]
            if key is None:
                continue
            for r in runnable:
                if r == chosen:
                    continue
                cost = 0 if forced else 1
                if used + cost > bound:
                    continue
                children.append((tuple(sorted(schedule + ((key[0], key[1], r),))), used + cost, k + 1))
        stack.extend(reversed(children))
    return ex


def race_candidates(prog: Program, trace, shared_only: bool = False) -> list[tuple]:
    """The one-switch schedules of prog, from the decision points of its default run: a switch in op i
    to another context runs that context's next op j inside op i's window. Ordered for a small budget:
    pairs that touch a common domain first (with `shared_only`, only those), switches in a conflict
    window of the pair (conflict_steps) before the others, then by step (every pair's first step before
    any pair's second), then nearest pairs first."""
    ops = prog.ops
    nxt = {}              # (op index, context) -> (the context's next op after it, shared domain, hot steps)
    doms = touched_domains(ops)
    ranked = []
    for key, _default, runnable, chosen, _forced in trace.points:
        if key is None:
            continue
        i, after = key
        for r in runnable:
            if r == chosen:
                continue
            pair = nxt.get((i, r))
            if pair is None:
                j = next((k for k in range(i + 1, len(ops)) if ops[k].ctx == r), -1)
                shared = j >= 0 and bool(doms[i] & doms[j])
                pair = nxt[(i, r)] = (j, shared, conflict_steps(trace, i, j) if shared else set())
            j, shared, hot = pair
            if shared_only and not shared:
                continue
            ranked.append((not shared, after not in hot, after, abs(j - i), i, r))
    ranked.sort()
    seen, out = set(), []
    for _ns, _cold, after, _d, i, r in ranked:
        if (i, after, r) not in seen:
            seen.add((i, after, r))
            out.append(((i, after, r),))
    return out


def collide_candidates(prog: Program, trace, pairs: list[tuple[int, int]] | None = None) -> list[tuple]:
    """Programs that run op j inside op i's window (syzkaller's "collide", a step at a time), for each
    pair (i, j) (by default _colliding_pairs: op i and the next op on a common domain): op j moved to
    just after op i, on the other CPU or, if it does not sleep, on an interrupt on either CPU (on op i's, it
    interrupts op i; on the other, it can interrupt what op i preempted or waits for), and a switch to
    it after each step of op i but the last (the step counts from `trace`, prog's run). Each as (ops,
    schedule, switch, hot): `hot` if the switch falls in a conflict window of the pair (conflict_steps)."""
    pairs = _colliding_pairs(prog) if pairs is None else pairs
    if not pairs:
        return []
    steps: dict[int, int] = {}
    for key, *_rest in trace.points:
        if key is not None and key[1] > steps.get(key[0], 0):
            steps[key[0]] = key[1]
    ops = prog.ops
    out = []
    for i, j in pairs:
        a, b = ops[i], ops[j]
        if steps.get(i, 0) < 2:
            continue
        hot = conflict_steps(trace, i, j)
        base = tuple((i + 1 if k == j else k + (i < k < j), at, c) for k, at, c in prog.schedule)
        taken = {(k, at) for k, at, _c in base}
        cpu = a.ctx if a.ctx < 2 else a.ctx - 2
        for c in (1 - cpu,) + (() if b.kind in SLEEPING_KINDS else (2 + cpu, 3 - cpu)):
            if c == a.ctx:
                continue
            moved = ops[:i + 1] + (replace(b, ctx=c),) + ops[i + 1:j] + ops[j + 1:]
            moved = moved[:i + 1] + (own_gather(moved, i + 1),) + moved[i + 2:]
            out += [(moved, tuple(sorted(base + ((i, s, c),))), (i, s, c), s in hot)
                    for s in range(1, steps[i]) if (i, s) not in taken]
    return out


STALE_TAIL = 3          # steps after op i's last read of an object op j writes (a stale copy in use)


def conflict_steps(trace, i: int, j: int) -> set[int]:
    """The steps of op i after which running op j is most likely to matter (the accesses `trace`
    recorded; AVIO's unserialisable interleavings): for each shared object both access, one of them
    writing, every step from op i's first access of it up to its last (op j lands between them: a
    lost update, a torn read, a lock held across) and the step just before the first (op j's access
    goes first); for an object op i only reads and op j writes, also the STALE_TAIL steps from op i's
    last read on (op j's write lands while op i acts on what it read: a time-of-check-to-time-of-use
    window, e.g. a reader that loaded an array and has not yet issued what the array told it to)."""
    mine: dict = {}
    for step, reads, writes in trace.accesses_of(i):
        for x in reads:
            mine.setdefault(x, [step, step, False])[1] = step
        for x in writes:
            m = mine.setdefault(x, [step, step, True])
            m[1], m[2] = step, True
    theirs = _objects(trace, j)
    hot: set[int] = set()
    for x, (first, last, wrote) in mine.items():
        if x in theirs and (wrote or theirs[x]):
            hot.update(range(max(1, first - 1), max(first, last)))
            if theirs[x] and not wrote:
                hot.update(range(last, last + STALE_TAIL))
    return hot


def _objects(trace, op: int) -> dict:
    """{shared object: written} for what one op accessed in `trace`."""
    objs: dict = {}
    for _step, reads, writes in trace.accesses_of(op):
        for x in reads:
            objs.setdefault(x, False)
        for x in writes:
            objs[x] = True
    return objs


def _colliding_pairs(prog: Program) -> list[tuple[int, int]]:
    """(i, j) for each op i and the next op j that touches a domain op i touches."""
    doms = touched_domains(prog.ops)
    out = []
    for i in range(len(doms) - 1):
        j = next((j for j in range(i + 1, len(doms)) if doms[i] & doms[j]), None)
        if j is not None:
            out.append((i, j))
    return out


def _far_pairs(near: list[tuple[int, int]], n: int, trace, far: int = 3) -> list[tuple[int, int]]:
    """For each near pair (i, j), up to `far` later ops k > j (of n) where one of op i and op k takes a
    lock shared and the other exclusive (a reader and a writer of one rwlock far apart in the program)."""
    locks = [{x: w for x, w in _objects(trace, k).items() if x[0] == "lock"} for k in range(n)]
    out = []
    for i, j in near:
        if not locks[i]:
            continue
        ks = (k for k in range(j + 1, n) if any(x in locks[i] and w != locks[i][x] for x, w in locks[k].items()))
        out += [(i, k) for k in itertools.islice(ks, far)]
    return out


def each_run(ex: Exploration, progs, variant: str, policy: str, observe, follow=None, nest=None):
    """Generator: run each program (one more switch than the input), yielding after every run, until one
    gives a finding; `follow(program, trace)` may return programs to run next (not counted in the
    iterable); `nest` (a Nesting), the nested switches of each run too. Returns `ex`."""
    todo = deque()
    progs = iter(progs)
    while True:
        p = todo.popleft() if todo else next(progs, None)
        if p is None:
            break
        bound = max(ex.bound, len(p.schedule)) if nest is not None and p in nest.deep else ex.bound
        r = run_program(p, [variant], policy, max_preemptions=bound, keep_log=False).runs[0]
        ex.schedules += 1
        if observe is not None:
            observe(p)
        yield
        if r.finding is not None:
            ex._counts[r.finding.kind] = 1
            ex.findings.append((p, r.finding))
            break
        if follow is not None and r.trace is not None:
            todo.extend(follow(p, r.trace))
        if nest is not None and r.trace is not None:
            todo.extend(nest.follow(p, r.trace))
    return ex


# nested schedules (second and third switches) per search at most (0: none). On by default since 2026-12-04: the
# three-switch CMD_ERROR a campaign on the correct invs targets found with it is triaged as a design race (known
# finding ats-disable-fences-the-new-array), and scripts/race_exposure.py (500 generated programs, seed 4, runs per
# exposure with the search's own runs) gave invs:new-after-ste 644 with it against 2,610 without, invs:no-mb 494
# against 393; the bench found invs:no-ats-rwlock's three switches 2/3 with it, 0/3 without (docs/bench.md).
# SMMUFUZZ_NEST_RUNS=0 switches it off (a knob for benchmarks and campaigns, as SMMUFUZZ_FEATURES).
NEST_RUNS_ON = 16       # the default, and what the measurements and tests use
NEST_RUNS = int(os.environ.get("SMMUFUZZ_NEST_RUNS", str(NEST_RUNS_ON)))
NEST_SECOND = 2         # second switches tried per searched schedule


class Nesting:
    """Nested switches (a sandwich, found a switch at a time within one search): after a searched schedule whose
    added switch (i, s, c) ran op j, context c's next op, inside op i, op j preempted back to op i's context
    just before its first write of an object op i accesses after step s (op i's rest runs inside op j's
    window); after that run, op i preempted to c again at its last access of that object and the STALE_TAIL - 1
    steps after it (op j's write lands while op i acts on what it read). E.g. a reader that loaded an array, a
    detach that flushes the ATC and has not yet disabled ATS, the reader's ATC invalidation published, then
    ATS disabled under its CMD_SYNC: three switches, which one more switch per search never reaches from a
    program without one. Only for programs whose switches leave room for both (DEFAULT_PREEMPTIONS); at most
    NEST_RUNS runs per search (see NEST_RUNS), so the search's runs (and its share of the fuzzer's,
    race_queue.py) grow by a bounded amount."""

    def __init__(self, prog: Program, base=None):
        from .sched import DEFAULT_PREEMPTIONS
        self.on = NEST_RUNS > 0 and len(prog.schedule) + 3 <= DEFAULT_PREEMPTIONS
        self.base = base                # the searched program's own run (its trace), if known
        self.first: dict = {}           # searched program -> the switch it added
        self.second: dict = {}          # nested program -> (the first switch, the object)
        self.deep: set = set()          # programs run with their own number of switches as the bound
        self.runs = 0

    def searched(self, p: Program, switch: tuple) -> None:
        if self.on:
            self.first[p] = switch

    def _take(self, progs: list) -> list:
        progs = progs[:max(0, NEST_RUNS - self.runs)]
        self.runs += len(progs)
        self.deep.update(progs)
        return progs

    def follow(self, p: Program, trace) -> list:
        if p in self.first:
            i, s, c = self.first.pop(p)
            return self._take(self._seconds(p, i, s, c, trace))
        if p in self.second:
            (i, s, c), x, before = self.second.pop(p)
            return self._take(self._thirds(p, i, s, c, _same_objects(before, trace).get(x, x), trace))
        return []

    def _seconds(self, p: Program, i: int, s: int, c: int, trace) -> list:
        ops = p.ops
        j = next((k for k in range(i + 1, len(ops)) if ops[k].ctx == c), None)
        if j is None:
            return []
        waited = set(trace.waits)
        order = [k for k, step, _r, _w in trace.access if (k, step) not in waited]
        if j not in order or i not in order or order.index(j) > len(order) - 1 - order[::-1].index(i):
            return []               # op j did not run inside op i (it waited for a lock op i held): no sandwich
        # what op i goes on to access after step s: in this run, where op j has already run inside it (and
        # may have changed what op i sees: a trashed entry it now skips), and in the undisturbed run, where
        # it reads what op j's write would change
        later = {x for step, reads, writes in trace.accesses_of(i) if step > s for x in reads + writes}
        if self.base is not None:
            same = _same_objects(self.base, trace)
            later |= {same.get(x, x) for step, reads, writes in self.base.accesses_of(i) if step > s
                      for x in reads + writes}
        firsts: dict = {}
        for step, _reads, writes in trace.accesses_of(j):
            for x in writes:
                if x in later and x not in firsts:
                    firsts[x] = step
        taken = {(k, a) for k, a, _c in p.schedule}
        out, steps = [], set()
        for x, w in sorted(firsts.items(), key=lambda e: e[1]):
            if w < 2 or (j, w - 1) in taken or w - 1 in steps or len(steps) >= NEST_SECOND:
                continue
            steps.add(w - 1)
            q = Program(p.config, ops, tuple(sorted(p.schedule + ((j, w - 1, ops[i].ctx),))))
            self.second[q] = ((i, s, c), x, trace)
            out.append(q)
        return out

    def _thirds(self, p: Program, i: int, s: int, c: int, x, trace) -> list:
        last = max((step for step, reads, writes in trace.accesses_of(i) if step > s and x in reads + writes),
                   default=None)
        if last is None:
            return []
        taken = {(k, a) for k, a, _c in p.schedule}
        return [Program(p.config, p.ops, tuple(sorted(p.schedule + ((i, a, c),))))
                for a in range(last, last + STALE_TAIL) if (i, a) not in taken]


def _same_objects(base, trace) -> dict:
    """base's shared objects -> the same objects in trace, a run of the same program that follows base up to
    a switch: paired by position in the two runs' common prefix of accesses (objects are named by identity,
    which differs between runs; those with a stable name, a StreamID's STE or ATS, are equal anyway)."""
    def shape(accesses):
        return [(step, len(reads), len(writes)) for step, reads, writes in accesses]

    same: dict = {}
    for (i, step, reads, writes), (i2, step2, reads2, writes2) in zip(base.access, trace.access):
        if (i, step) != (i2, step2) or len(reads) != len(reads2) or len(writes) != len(writes2):
            break
        same.update(zip(reads + writes, reads2 + writes2))
    for i in {a[0] for a in base.access}:     # then an op that made the same accesses in both runs (the op
        mine, theirs = base.accesses_of(i), trace.accesses_of(i)      # that ran inside another, unaffected)
        if shape(mine) == shape(theirs):
            for (_s, r, w), (_s2, r2, w2) in zip(mine, theirs):
                for x, y in zip(r + w, r2 + w2):
                    same.setdefault(x, y)
    return same


def drain(steps):
    """Run a search generator (each_run, iter_races, ...) to its end; what it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _base_trace(ex: Exploration, prog: Program, variant: str, policy: str):
    """prog's own run under the scheduler, for its decision points (None, and the finding recorded, if it
    gives one)."""
    base = run_variant_concurrent(prog, variant, policy, ex.bound - 1, keep_log=False)
    ex.schedules = 1
    if base.finding is not None:
        ex._counts[base.finding.kind] = 1
        ex.findings.append((prog, base.finding))
        return None
    return base.trace


FAR_COLLISIONS = 4      # collisions of a reader and a writer of one rwlock far apart, beyond the budget


def explore_collisions(prog: Program, variant: str, budget: int, policy: str = "max-cache",
                       trace=None, observe=None) -> Exploration:
    """iter_collisions, run to its end."""
    return drain(iter_collisions(prog, variant, budget, policy, trace, observe))


def iter_collisions(prog: Program, variant: str, budget: int, policy: str = "max-cache",
                    trace=None, observe=None, prefer: frozenset = frozenset()):
    """Up to `budget` of prog's collide_candidates for adjacent pairs (op i and the next op on a common
    domain) on one variant: those in a conflict window first, the rest of the budget a sample drawn by a
    generator seeded from the program itself (the same program always tries the same ones; its mutants,
    others); then up to FAR_COLLISIONS for far reader/writer pairs of one rwlock (_far_pairs), in a
    conflict window. A collision whose moved op waits for a lock is followed by switches at that wait to
    an interrupt (wait_followers).
    `trace`: prog's run under the scheduler if the caller has one (a sequential run has none);
    `observe(program)` is called after each run; `prefer`: pairs (i, j) to try first (half the budget
    goes to their conflict windows). A generator yielding after
    every run (each_run)."""
    ex = Exploration(variant, len(prog.schedule) + 1)
    near = _colliding_pairs(prog)
    if prefer:          # the pairs asked for first
        near.sort(key=lambda p: p not in prefer)
    if not near:
        return ex
    if trace is None:
        trace = _base_trace(ex, prog, variant, policy)
        yield
    if trace is None:
        return ex
    ex.trace = trace
    cands = collide_candidates(prog, trace, near)
    rng = random.Random(zlib.crc32(repr((prog.config, prog.ops)).encode()))
    far_pairs = _far_pairs(near, len(prog.ops), trace)
    far = _spread([c for c in collide_candidates(prog, trace, far_pairs) if c[3]], rng) if far_pairs else []
    ex.complete = len(cands) <= budget and len(far) <= FAR_COLLISIONS
    if len(cands) > budget:
        first = []
        if prefer:
            asked = {i for i, _j in prefer}
            first = _spread([c for c in cands if c[2][0] in asked and c[3]], rng)[:budget // 2]
        hot = [c for c in _spread([c for c in cands if c[3]], rng) if c not in first]
        cold = [c for c in cands if not c[3] and c not in first]
        room = budget - len(first)
        cands = first + (hot[:room] if len(hot) >= room else hot + rng.sample(cold, room - len(hot)))
    cands += far[:FAR_COLLISIONS]
    pair_of = {}                        # collision program -> i (op i+1 runs inside op i)
    nest = Nesting(prog, trace)

    def progs():
        for ops, sched, switch, _hot in cands:
            p = Program(prog.config, ops, sched)
            pair_of[p] = switch[0]
            nest.searched(p, switch)
            yield p

    return (yield from each_run(ex, progs(), variant, policy, observe,
                                lambda p, tr: wait_followers(p, pair_of[p], tr) if p in pair_of else [], nest))


def _spread(cands: list, rng: random.Random) -> list:
    """Collision candidates in an order that gives every (pair, context) a try before any gets a second:
    each one's switch steps shuffled, then taken a round at a time."""
    groups: dict = {}
    for c in cands:
        groups.setdefault((c[2][0], c[2][2]), []).append(c)
    for g in groups.values():
        rng.shuffle(g)
    rounds = list(groups.values())
    out = []
    for k in range(max(map(len, rounds), default=0)):
        out += [g[k] for g in rounds if k < len(g)]
    return out


def wait_followers(prog: Program, i: int, trace) -> list[Program]:
    """After a collision of ops i and i+1 (`trace`, its run) in which op i+1 waited for a lock, a switch
    at the start of the wait to an interrupt: the second switch of an interrupt deadlock (a reader
    interrupted while a writer queues behind it), found a switch at a time. The interrupt runs the next
    op that does not sleep and touches their domains, moved to an interrupt on op i's CPU (then the
    other's), and, if op i does not sleep, a copy of op i inserted after op i+1 on an interrupt on its
    CPU (the path re-entered from an interrupt, as syzkaller's collide runs a call against itself)."""
    ops = prog.ops
    wait = next((step for op, step in trace.waits if op == i + 1), None)
    if wait is None:
        return []
    doms = touched_domains(ops)
    pair = doms[i] | doms[i + 1]
    cpu = ops[i].ctx & 1 if ops[i].ctx >= 2 else ops[i].ctx
    out = []
    k = next((k for k in range(i + 2, len(ops)) if ops[k].kind not in SLEEPING_KINDS and doms[k] & pair), None)
    if k is not None:
        for c in (2 + cpu, 3 - cpu):
            if c not in (ops[i].ctx, ops[i + 1].ctx):
                moved = ops[:k] + (replace(ops[k], ctx=c),) + ops[k + 1:]
                moved = moved[:k] + (own_gather(moved, k),) + moved[k + 1:]
                out.append(Program(prog.config, moved, tuple(sorted(prog.schedule + ((i + 1, wait, c),)))))
    if ops[i].kind not in SLEEPING_KINDS and ops[i].ctx < 2 and ops[i + 1].ctx != 2 + cpu:
        grown = ops[:i + 2] + (replace(ops[i], ctx=2 + cpu),) + ops[i + 2:]
        grown = grown[:i + 2] + (own_gather(grown, i + 2),) + grown[i + 3:]
        sched = tuple((j + (j > i + 1), a, c) for j, a, c in prog.schedule) + ((i + 1, wait, 2 + cpu),)
        out.append(Program(prog.config, grown, tuple(sorted(sched))))
    return out


def explore_races(prog: Program, variant: str, budget: int, policy: str = "max-cache",
                  trace=None, shared_only: bool = True, observe=None) -> Exploration:
    """iter_races, run to its end."""
    return drain(iter_races(prog, variant, budget, policy, trace, shared_only, observe))


def iter_races(prog: Program, variant: str, budget: int, policy: str = "max-cache",
               trace=None, shared_only: bool = True, observe=None):
    """Up to `budget` schedules of prog on one variant that add one switch to its own, best first
    (race_candidates): the fuzz target's quick look for the instant at which two ops it put side by
    side race (by default only pairs that touch a common domain). `trace`: the variant's run of prog
    under its own schedule, if the caller has it; `observe(program)` is called after each run. A
    generator yielding after every run (each_run)."""
    ex = Exploration(variant, len(prog.schedule) + 1)
    if trace is None:
        trace = _base_trace(ex, prog, variant, policy)
        yield
    if trace is None:
        return ex
    taken = {(i, a) for i, a, _c in prog.schedule}
    cands = [c for c in race_candidates(prog, trace, shared_only) if c[0][:2] not in taken]
    ex.complete = len(cands) <= budget
    nest = Nesting(prog, trace)

    def progs():
        for (sw,) in cands[:budget]:
            p = Program(prog.config, prog.ops, tuple(sorted(prog.schedule + (sw,))))
            nest.searched(p, sw)
            yield p

    return (yield from each_run(ex, progs(), variant, policy, observe, wait_switches, nest))


def wait_switches(prog: Program, trace) -> list[Program]:
    """After a searched schedule in which an op began to wait for a lock: the same schedule with a switch,
    at that wait, to each interrupt context that could run then (the first wait only; a forced switch
    costs no preemption): the holder interrupted while a writer queues behind it."""
    if not trace.waits:
        return []
    key = trace.waits[0]
    taken = {(i, a) for i, a, _c in prog.schedule}
    if key in taken:
        return []
    point = next((pt for pt in trace.points if pt[0] == key and pt[4]), None)
    if point is None:
        return []
    _key, _default, runnable, chosen, _forced = point
    return [Program(prog.config, prog.ops, tuple(sorted(prog.schedule + ((key[0], key[1], c),))))
            for c in runnable if c != chosen and c >= 2]


def report(ex: Exploration, policy: str = "max-cache") -> str:
    """The search's result as text; each first finding's switches named by the point they follow (program.Anchor)
    as well as counted in steps."""
    head = (f"{ex.variant}: {ex.schedules} schedule(s) with at most {ex.bound} preemption(s)"
            f"{'' if ex.complete else ' (stopped at the limit: not exhaustive)'}")
    if not ex.findings:
        return head + ": no finding"
    lines = [head + ": " + ", ".join(f"{k} under {n}" for k, n in ex.kinds().items())]
    from .verdict import classify
    from .anchors import anchor_at, points_of
    for found, f in ex.findings:
        names = points_of(found, ex.variant, policy)          # the kernel point each switch follows

        def switch(i: int, a: int, c: int) -> str:
            at = anchor_at(names, i, a)
            if at is None:
                return f"op {i} preempt(after={a}, to={CONTEXTS[c]})"
            return f"op {i} preempt({at.text()}, to={CONTEXTS[c]}) (step {a})"
        sw = "; ".join(switch(i, a, c) for i, a, c in found.schedule)
        lines.append(f"  first {f.kind}, {classify(f, found).text()}: {sw}\n    " + f.text().replace("\n", "\n    "))
    return "\n".join(lines)
