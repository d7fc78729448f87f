"""Known design findings: races the harness finds on variants the registry marks correct, in the design
itself rather than in one posted version, each with its explanation and reproducer.

A finding on a correct variant is UNEXPECTED unless it matches one entry here. An entry matches on what
survives minimisation and a fresh corpus, not on one minimised program's exact op sequence (which varies
from campaign to campaign): the finding's kind, the variant family (correct variants only), the kind of op
the finding is reported at, what stale translation the oracle saw (a phrase of its message), and the op
kinds of which one must run on another context than that op (the race partner). Anything else on a correct
variant, including a finding of the same kind from a sequential program, stays UNEXPECTED.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownFinding:
    name: str
    kind: str                      # finding kind (MISSED_INVALIDATION, ...)
    family: str                    # registry variant family; only variants marked correct
    at_ops: frozenset              # op kinds the finding may be reported at
    stale: str                     # a phrase of the oracle's message: which cache holds the stale entry
    partners: frozenset            # op kinds one of which must be issued by another context than `at_ops`'s op
    needs: tuple                   # (op kind, argument, value) that must occur somewhere in the program
    explanation: str
    reproducer: str                # path in the repository
    fixed_by: frozenset = frozenset()   # variants of the family that fix it: there it stays UNEXPECTED

    def matches(self, finding, prog, family: str, buggy: bool) -> bool:
        if buggy or family != self.family or finding.kind != self.kind or self.stale not in finding.message:
            return False
        if finding.variant in self.fixed_by:
            return False
        if not 0 <= finding.op_index < len(prog.ops):
            return False
        at = prog.ops[finding.op_index]
        if at.kind not in self.at_ops:
            return False
        if not any(op.kind == k and op.get(a) == v for op in prog.ops for k, a, v in self.needs):
            return False
        return any(op.kind in self.partners and op.ctx != at.ctx for op in prog.ops)


KNOWN_FINDINGS = (
    KnownFinding(
        name="ats-enable-races-inflight-unmap",
        kind="MISSED_INVALIDATION",
        family="002-invs",
        at_ops=frozenset({"unmap", "unmap_fast", "sync", "flush_all", "dma_unmap", "fq_timeout"}),
        stale="device ATC entry",
        partners=frozenset({"attach", "ats"}),
        needs=(("ats", "on", True),),
        explanation=(
            "The invalidation array's reader decides which ATCs to invalidate when it loads domain->invs, "
            "before its TLBIs. An unmap that has loaded the array and not yet issued its TLBI, racing an attach "
            "(or pci_ats on) that adds an ATS-capable stream to the domain, leaves a stale entry in that "
            "device's ATC: its ATS request is served from the still-stale TLB once ATS is enabled, and the unmap "
            "invalidates only what its old array lists. v9 and merged alike; the classic "
            "arm_smmu_atc_inv_domain() closes the window by reading nr_ats_masters after TLBI+SYNC and an "
            "smp_mb(). A candidate: not checked against hardware or the merged kernel source. invs:merged-ats-order "
            "takes that order (docs/invs-ats-race.md); there the finding is UNEXPECTED."),
        reproducer="corpus/regressions/invs/ats_enable_races_inflight_unmap.txt",
        fixed_by=frozenset({"invs:merged-ats-order", "invs:merged-ats-order:2smmu"}),
    ),
)


def known_finding(finding, prog, family: str, buggy: bool) -> KnownFinding | None:
    """The known design finding `finding` (on a variant of `family`) on `prog` is, if any."""
    return next((k for k in KNOWN_FINDINGS if k.matches(finding, prog, family, buggy)), None)
