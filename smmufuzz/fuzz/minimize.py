"""Op-level minimisation: delete operations, schedule switches and contexts, and simplify arguments and
configuration while the finding keeps its signature (kind, variant, kind of the op it happens at). Deterministic; separate from
generation, in the spirit of Hypothesis' shrinker."""

from dataclasses import replace

from ..prog import latitude
from ..prog.ops import KINDS
from ..prog.program import Op, Program
from ..exec.runner import Finding, run_program


def signature_of(prog: Program, variants: list[str], policy: str) -> tuple | None:
    res = run_program(prog, variants, policy)
    return res.findings[0].signature() if res.findings else None


def minimize(prog: Program, variants: list[str], policy: str = "max-cache", budget: int = 2000) -> tuple[Program, Finding]:
    """Smallest program found (within `budget` runs) that gives the same first-finding signature."""
    target = signature_of(prog, variants, policy)
    if target is None:
        raise ValueError("the program gives no finding on these variants")
    runs = [0]

    def keeps(p: Program) -> bool:
        if runs[0] >= budget:
            return False
        runs[0] += 1
        return signature_of(p, variants, policy) == target

    best = prog
    changed = True
    while changed and runs[0] < budget:
        changed = False
        # 1. delete chunks of ops, halving the chunk size (ddmin-like)
        n = len(best.ops)
        chunk = max(1, n // 2)
        while chunk >= 1:
            i = 0
            while i < len(best.ops):
                cand = best.without(i, chunk)
                if cand.ops != best.ops and keeps(cand):
                    best, changed = cand, True
                else:
                    i += chunk
            chunk //= 2
        # 2. simplify arguments towards round values
        for i, op in enumerate(best.ops):
            for cand_op in _simpler_ops(op):
                cand = best.with_ops(best.ops[:i] + (cand_op,) + best.ops[i + 1:])
                if keeps(cand):
                    best, changed = cand, True
                    break
        # 3. drop schedule switches, then move ops to cpu0 (fewer contexts, fewer preemptions)
        for k in range(len(best.schedule) - 1, -1, -1):
            if k < len(best.schedule):
                cand = replace(best, schedule=best.schedule[:k] + best.schedule[k + 1:])
                if keeps(cand):
                    best, changed = cand, True
        for i, op in enumerate(best.ops):
            if op.ctx:
                cand = best.with_ops(best.ops[:i] + (replace(op, ctx=0),) + best.ops[i + 1:])
                if keeps(cand):
                    best, changed = cand, True
        # 4. simplify the configuration towards the defaults
        for field_, value in (*latitude.DEFAULTS.items(), ("e2h", False), ("ats", False), ("range_inv", False),
                              ("coherent", True), ("stage", 1), ("ias", 48), ("pg_shift", 12)):
            if getattr(best.config, field_) != value:
                cand = replace(best, config=replace(best.config, **{field_: value}))
                if keeps(cand):
                    best, changed = cand, True
    res = run_program(best, variants, policy)
    return best, res.findings[0]


def _simpler_ops(op: Op):
    """Candidate replacements of one op, simplest first (each field type's simpler values, ops.py)."""
    for idx, (_name, ftype) in enumerate(KINDS[op.kind].fields):
        for c in ftype.simpler(op.args[idx]):
            yield Op(op.kind, op.args[:idx] + (c,) + op.args[idx + 1:], op.ctx)


def reproducer_text(prog: Program, finding: Finding, target: str, how: str, expect: str | None = None,
                    verdict=None, variants: list[str] | None = None, policy: str = "max-cache") -> str:
    """The program as a reproducer, its switches named (anchors.named: `preempt(at="label", to=cpu1)`) where
    that keeps its findings on `variants` (the target's; default the finding's variant).
    `expect` (default: the finding's kind) is what replaying on the target gives, e.g. "DIVERGENCE,WRONG_PA";
    `verdict` (default: the finding's own, verdict.py) is the program's on the target."""
    from ..exec.anchors import named
    from ..exec.verdict import classify
    prog = named(prog, finding, variants, policy)      # preempt lines name the kernel point they follow
    verdict = verdict or classify(finding, prog)
    head = [f"# target: {target}", f"# expect: {expect or finding.kind}", f"# verdict: {verdict.text()}",
            f"# variant: {finding.variant}", f"# how: {how}"]
    head += ["# finding: " + line for line in finding.text().splitlines()[:3]]
    from ..kernel.session import header_lines
    head += header_lines(finding.variant.split("+"))
    if prog.concurrent():          # how the contexts interleaved on the finding's variant
        from ..exec.sched import interleaving
        run = run_program(prog, [finding.variant]).runs[0]
        if run.trace is not None:
            head += ["# interleaving: " + line for line in interleaving(run.trace)[-24:]]
    return "\n".join(head) + "\n" + prog.text()
