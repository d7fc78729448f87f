"""Completing a race pair: an op that took a rwlock shared, with no later op taking that lock exclusive,
is followed by an op of a kind seen taking a lock of that name exclusive, built on the reader's domain
from the resources live there (Razzer's pairing of a read with a write of one object; which op kinds
write a lock is learned from the runs, not written down). The completed program's collisions are then
searched like any input's: a reader and a writer of an array's rwlock side by side, the start of an
interrupt deadlock, without waiting for the mutator to put a writer after the one input that reached a
reader."""

import random
import zlib

from .exhaustive import Exploration, _objects, drain, iter_collisions
from ..prog.mutator import live_op_of
from ..prog.program import Program, touched_domains

COMPLETIONS = 3             # completed programs tried per input
COMPLETION_SCHEDULES = 4    # collisions per completed program (its wait followers come on top)


def learn_writers(writers: dict, prog: Program, trace) -> None:
    """writers[lock name] gains the kinds of the ops that took a lock of that name exclusive in `trace`."""
    for op, _step, _reads, writes in trace.access:
        for x in writes:
            if x[0] == "lock":
                writers.setdefault(x[2], set()).add(prog.ops[op].kind)


def unmatched_readers(prog: Program, trace) -> list[tuple[int, str]]:
    """(op, lock name) for each op that took a lock shared that no later op takes exclusive."""
    objs = [_objects(trace, k) for k in range(len(prog.ops))]
    out = []
    for r, mine in enumerate(objs):
        for x, written in mine.items():
            if x[0] == "lock" and not written and not any(o.get(x) for o in objs[r + 1:]):
                out.append((r, x[2]))
    return out


def completions(prog: Program, trace, writers: dict, rng: random.Random) -> list[Program]:
    """Up to COMPLETIONS programs: prog with a writer op inserted right after an unmatched reader."""
    doms = touched_domains(prog.ops)
    out: list[Program] = []
    for r, name in unmatched_readers(prog, trace):
        for kind in sorted(writers.get(name, ())):
            op = live_op_of(prog, r + 1, kind, doms[r], rng, leave=0.5)   # an attach that leaves the domain
            if op is None:
                continue
            p = Program(prog.config, prog.ops[:r + 1] + (op,) + prog.ops[r + 1:],
                        tuple((j + (j > r), a, c) for j, a, c in prog.schedule))
            if p not in out:
                out.append(p)
            if len(out) >= COMPLETIONS:
                return out
    return out


def explore_completions(prog: Program, variant: str, policy: str, trace, writers: dict,
                        observe=None) -> Exploration:
    """iter_completions, run to its end."""
    return drain(iter_completions(prog, variant, policy, trace, writers, observe))


def iter_completions(prog: Program, variant: str, policy: str, trace, writers: dict, observe=None):
    """Learn prog's lock writers from `trace` (its run under the scheduler), then search the collisions
    of each completion of its unmatched readers until one gives a finding (seeded by the program). A
    generator yielding after every run."""
    ex = Exploration(variant, len(prog.schedule) + 1)
    if trace is None:
        return ex
    learn_writers(writers, prog, trace)
    rng = random.Random(zlib.crc32(repr((prog.config, prog.ops)).encode()))
    for p in completions(prog, trace, writers, rng):
        sub = yield from iter_collisions(p, variant, COMPLETION_SCHEDULES, policy, observe=observe)
        ex.schedules += sub.schedules
        if sub.findings:
            ex.findings = sub.findings
            break
    return ex
