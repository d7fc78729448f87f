"""A schedule's switches as step counts or as named preemption points (program.Anchor), converted on one
variant's run: the fuzzer and the searches count steps; a reproducer names the kernel point its switch
follows (the kthread.Point label, `mutex_lock(...)`, `acquired ...`, `return`), which means the same on every
variant that passes that point, where "after 5 steps" shifts with each point a variant adds before it."""

from dataclasses import replace

from ..prog.program import Anchor, Program, schedule_key


def points_of(prog: Program, variant: str, policy: str = "max-cache") -> dict:
    """(op index, step) -> (label, occurrence) of every step prog's run on `variant` took."""
    from .runner import run_program
    run = run_program(prog, [variant], policy, keep_log=True).runs[0]
    return run.trace.anchors if run.trace is not None else {}


def anchor_at(names: dict, i: int, step: int) -> Anchor | None:
    """The name of op i's step in `names` (points_of), or None if the run never took it or its label does not
    print back."""
    named = names.get((i, step))
    return Anchor(*named) if named is not None and Anchor.writable(named[0]) else None


def anchor_schedule(prog: Program, variant: str, policy: str = "max-cache") -> Program | None:
    """prog with each step-counted switch named by the point that step passed on `variant`, or None when a
    switch's step was not reached there (a switch that never fired) or its label does not print back."""
    if not prog.concurrent() or not any(isinstance(a, int) for _i, a, _c in prog.schedule):
        return None
    names = points_of(prog, variant, policy)
    out = []
    for i, after, c in prog.schedule:
        if isinstance(after, int):
            after = anchor_at(names, i, after)
            if after is None:
                return None
        out.append((i, after, c))
    return replace(prog, schedule=tuple(sorted(out, key=schedule_key)))


def resolve_anchors(prog: Program, variant: str, policy: str = "max-cache") -> Program | None:
    """prog with each named switch replaced by the step it fires at on `variant` (what the byte format and
    the schedule searches take), or None when one of the points is not passed there."""
    if not any(isinstance(a, Anchor) for _i, a, _c in prog.schedule):
        return prog
    steps = {(i, label, n): s for (i, s), (label, n) in points_of(prog, variant, policy).items()}
    out = []
    for i, after, c in prog.schedule:
        if isinstance(after, Anchor):
            s = steps.get((i, after.label, after.nth))
            if s is None:
                return None
            after = s
        out.append((i, after, c))
    return replace(prog, schedule=tuple(sorted(out, key=schedule_key)))


def named(prog: Program, finding, variants: list[str] | None = None, policy: str = "max-cache") -> Program:
    """A reproducer's form of prog: its switches named on the finding's variant (anchor_schedule), kept only if
    the named program gives the same findings (signatures, the first one first) on `variants` (default: the
    finding's variant), where a name can land at another step than the count did; else prog."""
    from .runner import run_program
    variant = finding.variant.split("+")[0]
    cand = anchor_schedule(prog, variant, policy)
    if cand is None:
        return prog
    vs = list(variants or [variant])

    def sigs(p: Program) -> list:
        return [f.signature() for f in run_program(p, vs, policy, keep_log=False).findings]
    return cand if sigs(cand) == sigs(prog) else prog
