"""ATS disabled under a reader of the previous array (known design finding ats-disable-fences-the-new-array,
smmufuzz/known_findings.py): the ATS-disabling attach write-locks the array it unreferences, which on a re-attach to
the same arm_smmu_domain is the array that attach has just merged and installed (seed 002 v9,
arm_smmu_attach_prepare_invs()), not the one a concurrent invalidation holds; its CMD_SYNC times out."""

import os
from dataclasses import replace

import pytest

from smmufuzz.exec.exhaustive import explore
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.exec.verdict import KNOWN_DESIGN, UNEXPECTED, classify

INVS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "invs")
S1 = os.path.join(INVS, "ats_off_reattach_reader_of_old_array.txt")
NEST = os.path.join(INVS, "ats_off_reattach_nest_parent.txt")
NAME = "ats-disable-fences-the-new-array"

# no re-attach to the same domain: sid 1 joining d1 replaces the array the flush holds, then sid 3 is detached and
# its unref write-locks the replacement; four switches (the flush preempted after its load, again after sid 1's
# attach, the detach before pci_disable_ats(), the flush in its CMD_SYNC poll)
TWO_STREAMS = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
iommu_attach_device(d1, sid=3)
pci_ats(sid=3, on=1)
iommu_flush_iotlb_all(d1)
preempt(after=3, to=cpu1)
preempt(after=4, to=cpu1)
preempt(after=7, to=cpu1)
cpu1: iommu_attach_device(d1, sid=1)
cpu1: iommu_detach_device(sid=3)
preempt(after=12, to=cpu0)
"""


def _timeout(prog, variant, bound=3):
    (f,) = run_program(prog, [variant], max_preemptions=bound).findings
    assert f.kind == "CMD_ERROR" and "CERROR_ATC_INV_SYNC" in f.message and "sid=3" in f.message, f.text()
    return f


@pytest.mark.parametrize("variant", ["invs:v9", "invs:merged", "invs:merged-refcount"])
def test_the_reattach_times_out_the_reader_and_is_a_known_design_finding(variant):
    prog, _ = load_program(S1)
    v = classify(_timeout(prog, variant), prog)
    assert v.cls == KNOWN_DESIGN and NAME in v.why


def test_the_form_the_kernel_reaches_a_nested_domain_over_its_parent():
    prog, header = load_program(NEST)
    assert header["target"] == "invs:merged:nest" and prog.config.stage == 2
    assert classify(_timeout(prog, header["target"]), prog).cls == KNOWN_DESIGN


def test_the_race_search_needs_three_preemptions():
    """Clean under every schedule of up to 2 preemptions; 40 of the 5940 schedules of up to 3 time out."""
    prog, _ = load_program(S1)
    bare = replace(prog, schedule=())
    assert not explore(bare, "invs:merged", bound=2).findings
    ex = explore(bare, "invs:merged", bound=3)
    assert ex.complete and ex.schedules == 5940 and ex.kinds() == {"CMD_ERROR": 40}, (ex.schedules, ex.kinds())


def test_without_a_same_domain_reattach_it_takes_four_switches_and_stays_unexpected():
    """The same race from an ordinary detach after another attach replaced the array. The matcher only excuses a
    pci_ats(off) partner: with a detach partner the finding is indistinguishable (by program) from a reader that
    skips the rwlock (invs:no-ats-rwlock's race), so it is left UNEXPECTED."""
    prog = parse(TWO_STREAMS)
    assert not run_program(prog, ["invs:merged"]).findings          # the fourth switch is beyond the default bound
    assert classify(_timeout(prog, "invs:merged", bound=4), prog).cls == UNEXPECTED


def test_the_known_finding_needs_an_ats_disable_on_another_context():
    prog, _ = load_program(S1)
    f = _timeout(prog, "invs:merged")
    sequential = replace(prog, ops=tuple(replace(op, ctx=0) for op in prog.ops), schedule=())
    assert classify(f, sequential).cls == UNEXPECTED
    detach = replace(prog, ops=tuple(replace(op, kind="detach", args=(3,)) if op.ctx else op for op in prog.ops))
    assert classify(f, detach).cls == UNEXPECTED
    assert classify(replace(f, message="some other command error"), prog).cls == UNEXPECTED


def test_the_known_finding_needs_ats_going_off_and_the_three_switches():
    """partner_args: an ATS enable on the other context is not the race; min_switches: a timeout under fewer
    than the three preemptions the race needs (e.g. ATS disabled before the write lock, one switch:
    ats_disable_in_prepare.txt) is something else, and stays UNEXPECTED."""
    prog, _ = load_program(S1)
    f = _timeout(prog, "invs:merged")
    assert classify(f, prog).cls != UNEXPECTED
    enable = replace(prog, ops=tuple(replace(op, args=(op.args[0], True)) if op.ctx and op.kind == "ats" else op
                                     for op in prog.ops))
    assert classify(f, enable).cls == UNEXPECTED
    assert classify(f, replace(prog, schedule=prog.schedule[:2])).cls == UNEXPECTED
