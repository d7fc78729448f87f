"""Triage of a crash input: replay, op-level minimisation, and the dedup signature (kind, variants affected, op shape)."""

from dataclasses import dataclass

from .minimize import minimize
from ..prog.program import Program
from ..exec.runner import Finding, run_program
from ..exec.verdict import Verdict, classify, worst

MINIMIZE_BUDGET = 400


@dataclass
class Triaged:
    signature: dict        # {"kind", "variants", "shape"}: one finding in the store per signature
    finding: Finding       # the first finding of the minimised program
    program: Program       # the minimised program
    raw_ops: int           # ops before minimisation
    kinds: list[str]       # every kind the minimised program gives on the target (sorted)
    coarse: list[tuple]    # (kind, variant, kernel call) of each of its findings: what workers may tolerate
    verdict: Verdict       # the worst verdict over its findings (UNEXPECTED, known design finding, expected)


def triage(prog: Program, variants: list[str], policy: str = "max-cache",
           budget: int = MINIMIZE_BUDGET) -> Triaged | None:
    """None if the program gives no finding on `variants` (a flaky or stale artifact)."""
    if not run_program(prog, variants, policy).findings:
        return None
    small, finding = minimize(prog, variants, policy, budget=budget)
    res = run_program(small, variants, policy)
    affected = sorted({f.variant for f in res.findings})
    sig = {"kind": finding.kind, "variants": affected, "shape": [op.kind for op in small.ops]}
    return Triaged(sig, finding, small, len(prog.ops), sorted({f.kind for f in res.findings}),
                   sorted({f.signature() for f in res.findings}), worst(classify(f, small) for f in res.findings))


def search_schedules(prog: Program, variants: list[str], policy: str = "max-cache") -> Program | None:
    """The fuzz target's own schedule search on a raw crash input that replays clean (fuzz_target._race:
    one more switch, collisions, completions of its own lock pairs): the program giving the finding, if
    any. A race-only input's finding shows only under a searched schedule; it is not flaky."""
    from .fuzz_target import _race, explores
    from ..exec.sched import DEFAULT_PREEMPTIONS
    if not explores(list(variants)) or len(prog.schedule) >= DEFAULT_PREEMPTIONS:
        return None
    found = _race(prog, run_program(prog, variants, policy), list(variants), policy, None, None, {})
    return found[0] if found else None

