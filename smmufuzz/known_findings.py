"""Known design findings: races the harness finds on variants the registry marks correct, in the design
itself rather than in one posted version, each with its explanation and reproducer.

A finding on a correct variant is UNEXPECTED unless it matches one entry here. An entry matches on what
survives minimisation and a fresh corpus, not on one minimised program's exact op sequence (which varies
from campaign to campaign): the finding's kind, the variant family (correct variants only), the kind of op
the finding is reported at, what stale translation the oracle saw (a phrase of its message), and the op
kinds of which one must run on another context than that op (the race partner), with the arguments
`partner_args` names, under at least `min_switches` preemptions. Anything else on a correct variant, including a finding of the same kind from a
sequential program, stays UNEXPECTED.
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
    partner_args: tuple = ()            # (argument, value) pairs the partner op must have too
    min_switches: int = 0               # preemptions the race needs: a program with fewer is something else

    def matches(self, finding, prog, family: str, buggy: bool) -> bool:
        if buggy or family != self.family or finding.kind != self.kind or self.stale not in finding.message:
            return False
        if finding.variant in self.fixed_by or len(prog.schedule) < self.min_switches:
            return False
        if not 0 <= finding.op_index < len(prog.ops):
            return False
        at = prog.ops[finding.op_index]
        if at.kind not in self.at_ops:
            return False
        if not any(op.kind == k and op.get(a) == v for op in prog.ops for k, a, v in self.needs):
            return False
        return any(op.kind in self.partners and op.ctx != at.ctx and all(op.get(a) == v for a, v in self.partner_args)
                   for op in prog.ops)


# the ops whose invalidation walks domain->invs (arm_smmu_domain_inv_range())
INVALIDATING_OPS = frozenset({"unmap", "unmap_fast", "sync", "flush_all", "dma_unmap", "fq_timeout"})

KNOWN_FINDINGS = (
    KnownFinding(
        name="ats-enable-races-inflight-unmap",
        kind="MISSED_INVALIDATION",
        family="002-invs",
        at_ops=INVALIDATING_OPS,
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
    KnownFinding(
        name="ats-disable-fences-the-new-array",
        kind="CMD_ERROR",
        family="002-invs",
        at_ops=INVALIDATING_OPS,
        stale="CERROR_ATC_INV_SYNC",
        partners=frozenset({"ats"}),
        partner_args=(("on", False),),
        min_switches=3,                 # clean under every schedule of up to two (tests/test_ats_disable_new_array.py)
        needs=(("ats", "on", True),),
        explanation=(
            "invs->rwlock fences only readers of the array the ATS-disabling attach unreferences. On a re-attach "
            "to the same arm_smmu_domain (seed 002 v9, arm_smmu_attach_prepare_invs(): 'if (new_smmu_domain == "
            "old_smmu_domain) invst->old_invs = state->new_domain_invst.new_invs'; in the kernel a nested domain "
            "over its S2 parent with the vSTE's EATS changed, our pci_ats(off)) that is the array the same attach "
            "has just merged and installed, which no reader holds: an invalidation that loaded the previous array, "
            "holds its read lock and publishes its ATC_INV for the stream has its CMD_SYNC outstanding when ATS "
            "goes off (arm_smmu_invs_unref() write-locks the new array, the old one is only kfree_rcu()'d). The "
            "same happens without a same-domain re-attach when another attach replaced the array between the "
            "reader's load and a detach (four switches, beyond the search's bound). v9, merged and "
            "merged-ats-order alike, and merged-ats-disable-fenced (its fence is the array published when the "
            "attach began; an older one a reader still holds is not fenced). invs:merged disables ATS after the "
            "old array's unref; the source calls pci_disable_ats() earlier, in arm_smmu_attach_prepare(), where "
            "the race needs one switch (invs:merged-ats-disable-in-prepare, docs/invs-ats-race.md)."),
        reproducer="corpus/regressions/invs/ats_off_reattach_reader_of_old_array.txt",
    ),
)


def known_finding(finding, prog, family: str, buggy: bool) -> KnownFinding | None:
    """The known design finding `finding` (on a variant of `family`) on `prog` is, if any."""
    return next((k for k in KNOWN_FINDINGS if k.matches(finding, prog, family, buggy)), None)
