"""Every schedule of one fixed program up to K preemptions (CHESS-style iterative context bounding).

Answers "is this race real, and which interleavings trigger it" for a minimised finding, and "no
interleaving within the bound goes wrong" for the correct version. Depth-first over the decision
points of each run: a child schedule adds one switch after the parent's last one, so runs share the
prefix and every schedule with at most K preemptions (plus the free choices when a task blocks or
finishes) is run exactly once.
"""

from dataclasses import dataclass, field

from .program import CONTEXTS, Program
from .runner import Finding, run_program


@dataclass
class Exploration:
    variant: str
    bound: int
    schedules: int = 0
    complete: bool = True
    findings: list = field(default_factory=list)      # [(schedule, Finding)], first per kind

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
                ex.findings.append((schedule, r.finding))
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


def report(ex: Exploration) -> str:
    head = (f"{ex.variant}: {ex.schedules} schedule(s) with at most {ex.bound} preemption(s)"
            f"{'' if ex.complete else ' (stopped at the limit: not exhaustive)'}")
    if not ex.findings:
        return head + ": no finding"
    lines = [head + ": " + ", ".join(f"{k} under {n}" for k, n in ex.kinds().items())]
    for schedule, f in ex.findings:
        sw = "; ".join(f"op {i} preempt(after={a}, to={CONTEXTS[c]})" for i, a, c in schedule)
        lines.append(f"  first {f.kind}: {sw}\n    " + f.text().replace("\n", "\n    "))
    return "\n".join(lines)
