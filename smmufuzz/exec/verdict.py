"""A finding's verdict: UNEXPECTED (on a variant the registry marks correct), expected (on a variant marked
buggy: its known bug), or a known design finding (listed with its explanation in smmufuzz/known_findings.py).

A DIVERGENCE names every variant of the target; it is expected when the variants marked correct all make
the same translations visible (only buggy ones differ from them), UNEXPECTED when correct variants disagree
among themselves. A program's or a stored finding's verdict is its worst finding's: UNEXPECTED, then known
design finding, then expected.
"""

import re
from dataclasses import dataclass

from ..known_findings import known_finding
from ..variants.registry import VARIANTS

UNEXPECTED, KNOWN_DESIGN, EXPECTED = "unexpected", "known_design", "expected"
ORDER = (UNEXPECTED, KNOWN_DESIGN, EXPECTED)          # worst first: the order findings are printed in
LABEL = {UNEXPECTED: "UNEXPECTED", KNOWN_DESIGN: "known design finding", EXPECTED: "expected"}
_GROUP = re.compile(r"\{([^}]*)\}")


@dataclass(frozen=True)
class Verdict:
    cls: str          # UNEXPECTED | KNOWN_DESIGN | EXPECTED
    why: str

    @property
    def label(self) -> str:
        return LABEL[self.cls]

    def text(self) -> str:
        return f"{self.label} ({self.why})"

    def as_dict(self) -> dict:
        return {"verdict": self.cls, "verdict_why": self.why}


def _buggy(name: str) -> bool | None:
    info = VARIANTS.get(name)
    return None if info is None else info.buggy


def classify(finding, prog) -> Verdict:
    """The verdict on one finding of `prog` (the program that gave it)."""
    if finding.kind == "DIVERGENCE":
        groups = [[v.strip() for v in g.split(",") if v.strip()] for g in _GROUP.findall(finding.message)]
        if not groups:
            groups = [[v] for v in finding.variant.split("+")]
        correct = [g for g in groups if any(_buggy(v) is False for v in g)]
        if len(correct) > 1:
            return Verdict(UNEXPECTED, "variants marked correct disagree: " + " vs ".join(
                "{" + ", ".join(v for v in g if _buggy(v) is False) + "}" for g in correct))
        buggy = sorted(v for g in groups for v in g if _buggy(v))
        return Verdict(EXPECTED, f"only variants marked buggy ({', '.join(buggy)}) differ")
    info = VARIANTS.get(finding.variant)
    if info is None:
        return Verdict(UNEXPECTED, f"{finding.variant} is not in the registry")
    if info.buggy:
        return Verdict(EXPECTED, f"{finding.variant} is marked buggy")
    known = known_finding(finding, prog, info.family, info.buggy)
    if known:
        return Verdict(KNOWN_DESIGN, f"{known.name}, smmufuzz/known_findings.py; reproducer {known.reproducer}")
    return Verdict(UNEXPECTED, f"{finding.variant} is marked correct")


def worst(verdicts) -> Verdict | None:
    """The first of `verdicts` in ORDER (UNEXPECTED before known design before expected)."""
    vs = list(verdicts)
    return min(vs, key=lambda v: ORDER.index(v.cls)) if vs else None


def sort_key(cls: str) -> int:
    return ORDER.index(cls) if cls in ORDER else 0


def counts(classes) -> dict[str, int]:
    """{"unexpected": n, "known_design": n, "expected": n} over verdict classes."""
    out = {c: 0 for c in ORDER}
    for c in classes:
        out[c] = out.get(c, 0) + 1
    return out


def counts_text(c: dict[str, int]) -> str:
    return (f"{c.get(UNEXPECTED, 0)} unexpected, {c.get(EXPECTED, 0)} expected, "
            f"{c.get(KNOWN_DESIGN, 0)} known design")
