"""ATS disabled under an outstanding ATC invalidation (issue 18 item 6): only a reader that skips
invs->rwlock lets the detach's pci_disable_ats() land in its CMD_SYNC poll, and only the emulator's
CERROR_ATC_INV_SYNC timeout makes that visible."""

import os
from dataclasses import replace

from smmufuzz.exec.exhaustive import explore
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.reference import smmu

REPRO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "invs",
                     "race_no_ats_rwlock.txt")


def test_the_race_times_out_a_sync_only_with_the_timeout_modelled(monkeypatch):
    prog, header = load_program(REPRO)
    assert [f.kind for f in run_program(prog, [header["target"]]).findings] == [header["expect"]]
    monkeypatch.setattr(smmu, "outstanding_atc_inv", lambda pending, sid: set())
    assert not run_program(prog, [header["target"]]).findings


def test_every_schedule_up_to_three_preemptions_is_clean_with_the_rwlock():
    prog, header = load_program(REPRO)
    bare = replace(prog, schedule=())
    assert header["expect"] in explore(bare, header["target"], bound=3).kinds()
    ex = explore(bare, "invs:merged", bound=3)
    assert ex.complete and ex.schedules > 100 and not ex.findings, ex.findings


def _sequential():
    prog, header = load_program(REPRO)
    return replace(prog, schedule=(), ops=tuple(replace(op, ctx=0) for op in prog.ops)), header


def test_the_collision_search_nests_the_three_switches_the_race_needs(monkeypatch):
    """One more switch per search never reaches this race from a program without one (it needs three: the
    reader preempted after its array load, the detach preempted before pci_disable_ats(), the reader preempted
    in its CMD_SYNC poll). The nested switches of a collision (exhaustive.Nesting) do, within COLLIDE_SCHEDULES
    collisions and NEST_RUNS nested runs; the rwlock reader stays clean; without nesting the search misses it."""
    from smmufuzz.exec import exhaustive
    from smmufuzz.fuzz.fuzz_target import COLLIDE_SCHEDULES
    monkeypatch.setattr(exhaustive, "NEST_RUNS", exhaustive.NEST_RUNS_ON)
    seq, header = _sequential()
    ex = exhaustive.explore_collisions(seq, header["target"], COLLIDE_SCHEDULES)
    assert ex.kinds() == {header["expect"]: 1}
    found = ex.findings[0][0]
    assert len(found.schedule) == 3
    assert [f.kind for f in run_program(found, [header["target"]]).findings] == [header["expect"]]
    assert ex.schedules <= COLLIDE_SCHEDULES + exhaustive.FAR_COLLISIONS + exhaustive.NEST_RUNS + 1
    clean = exhaustive.explore_collisions(seq, "invs:merged", COLLIDE_SCHEDULES)
    assert not clean.findings
    monkeypatch.setattr(exhaustive, "NEST_RUNS", 0)
    assert not exhaustive.explore_collisions(seq, header["target"], COLLIDE_SCHEDULES).findings


def test_nesting_is_bounded_and_only_where_three_switches_fit(monkeypatch):
    """A search nests at most NEST_RUNS schedules, and none for a program that already has a switch (the fuzz
    target's inputs have at most DEFAULT_PREEMPTIONS switches), nor with NEST_RUNS 0 (SMMUFUZZ_NEST_RUNS=0)."""
    from smmufuzz.exec import exhaustive
    prog, header = load_program(REPRO)
    bare = replace(prog, schedule=())
    monkeypatch.setattr(exhaustive, "NEST_RUNS", 0)
    assert not exhaustive.Nesting(bare).on
    monkeypatch.setattr(exhaustive, "NEST_RUNS", exhaustive.NEST_RUNS_ON)
    assert exhaustive.Nesting(bare).on and not exhaustive.Nesting(replace(prog, schedule=prog.schedule[:1])).on
    counts = []
    for p in (bare, replace(prog, schedule=prog.schedule[:1])):
        seen = []
        exhaustive.explore_races(p, "invs:merged", 32, observe=seen.append)
        counts.append(sum(len(q.schedule) > len(p.schedule) + 1 for q in seen))
    assert 0 < counts[0] <= exhaustive.NEST_RUNS and counts[1] == 0, counts


PREPARE = os.path.join(os.path.dirname(REPRO), "ats_disable_in_prepare.txt")


def test_the_sources_ats_disable_order_times_out_under_one_preemption():
    """pci_disable_ats() at the end of arm_smmu_attach_prepare(), as the source has it: an ATC_INV the reader has
    outstanding then times out under one preemption; with the disable after the old array's write lock (the
    model's order) every schedule of up to two is clean."""
    prog, header = load_program(PREPARE)
    assert [f.kind for f in run_program(prog, [header["target"]]).findings] == [header["expect"]]
    assert not run_program(prog, ["invs:merged"]).findings
    bare = replace(prog, schedule=())
    assert header["expect"] in explore(bare, header["target"], bound=1).kinds()
    ex = explore(bare, "invs:merged", bound=2)
    assert ex.complete and ex.schedules > 100 and not ex.findings, ex.findings


def test_the_fenced_disable_in_prepare_is_clean_under_three_preemptions():
    """The smaller fix (invs:merged-ats-disable-fenced): pci_disable_ats() kept in arm_smmu_attach_prepare(),
    under the write side of the old domain's published array. The reader's outstanding ATC_INV completes before
    the disable, so there is no finding under any schedule of up to three switches. merged-ats-disable-in-prepare
    (the same design without the fence) times out on the same ops."""
    prog, header = load_program(PREPARE)
    bare = replace(prog, schedule=())
    ex = explore(bare, "invs:merged-ats-disable-fenced", bound=3)
    assert ex.complete and ex.schedules > 1000 and not ex.findings, ex.findings
    assert not run_program(prog, ["invs:merged-ats-disable-fenced"]).findings


FLUSH_THEN_DETACH = """\
config(granule=16K, ias=35, stage=1, coherent=1, range_inv=1, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
pci_ats(sid=0, on=1)
iommu_flush_iotlb_all(d0)
cpu1: iommu_detach_device(sid=0)
"""


def test_nested_switches_name_objects_across_runs():
    """Item 6's race in a shape the generator writes (a flush, then the other CPU's detach), which needs three
    switches. The nested search must recognise the objects of the undisturbed run (the users count of the
    stream's ATS entry, which the detach trashes) in the runs it derives from it. Objects are named by identity,
    and identities differ between runs (exhaustive._same_objects pairs them). It must also spend no nested runs
    on a switch whose other op only waited for a lock (the group mutex). Found within the fuzz target's own
    search."""
    from smmufuzz.exec import exhaustive
    from smmufuzz.fuzz.fuzz_target import race_steps
    prog = parse(FLUSH_THEN_DETACH)
    v = "invs:no-ats-rwlock"
    res = run_program(prog, [v])
    assert not res.findings
    found = exhaustive.drain(race_steps(prog, res, [v], "max-cache", None, None, {}))
    assert found is not None and found[1].findings[0].kind == "CMD_ERROR"
    assert len(found[0].schedule) == 3
    assert not run_program(found[0], ["invs:merged"]).findings


PCI_ATS_OFF_FORM = """\
config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
pci_ats(sid=0, on=1)
iommu_flush_iotlb_all(d0)
preempt(after=2, to=cpu1)
preempt(after=6, to=cpu1)
cpu1: pci_ats(sid=0, on=0)
preempt(after=16, to=cpu0)
"""

DETACH_FORM = """\
config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
pci_ats(sid=0, on=1)
iommu_flush_iotlb_all(d0)
preempt(after=5, to=cpu1)
preempt(after=6, to=cpu1)
cpu1: iommu_detach_device(sid=0)
preempt(after=13, to=cpu0)
"""


def test_a_three_switch_race_the_control_shares_does_not_count(monkeypatch):
    """The bench found invs:no-ats-rwlock's timeout in both forms. With a pci_ats(off) partner, the same ops time
    out on invs:merged too (the same-domain re-attach write-locks the array it just installed: known finding
    ats-disable-fences-the-new-array), under three switches at other steps. With a detach partner they do not.
    The control's quick searches add one switch at a time; for a small race, control_shows then runs the control
    under every schedule with as many switches, and tells the two forms apart."""
    from smmufuzz import known_findings
    from smmufuzz.fuzz import fuzz_target
    monkeypatch.setattr(fuzz_target, "CONTROL_SCHEDULES", 0)       # the quick searches find nothing
    monkeypatch.setattr(known_findings, "KNOWN_FINDINGS", ())      # the control's own search alone (below: not)
    v = "invs:no-ats-rwlock"
    for text, shared in ((PCI_ATS_OFF_FORM, True), (DETACH_FORM, False)):
        prog = parse(text)
        res = run_program(prog, [v])
        assert [f.kind for f in res.findings] == ["CMD_ERROR"]
        assert not run_program(prog, ["invs:merged"]).findings        # the schedule itself is clean there
        assert fuzz_target.control_shows(prog, res.findings, ["invs:merged"], "max-cache", [v]) is shared
    monkeypatch.setattr(fuzz_target, "CONTROL_EXHAUSTIVE_OPS", 0)
    assert not fuzz_target.control_shows(parse(PCI_ATS_OFF_FORM), res.findings, ["invs:merged"], "max-cache", [v])


def test_a_known_design_race_on_a_buggy_variant_exposes_no_planted_bug(monkeypatch):
    """The bench's seed 2 counted this pci_ats(off) race as an exposure of invs:no-mb, new-after-ste,
    old-unref-before-ste and new-after-ste:2smmu: the design race of known finding ats-disable-fences-the-new-
    array, which their control's bounded search did not meet. A finding that matches a known design finding of
    its family (as if its variant were correct) is shared by the correct siblings whatever the control's search
    meets; the detach form, which matches none, still counts."""
    from smmufuzz.fuzz import fuzz_target
    monkeypatch.setattr(fuzz_target, "CONTROL_SCHEDULES", 0)
    monkeypatch.setattr(fuzz_target, "CONTROL_EXHAUSTIVE_OPS", 0)  # no control search meets either race
    prog = parse(PCI_ATS_OFF_FORM.replace("after=2,", "after=3,").replace("after=6,", "after=7,"))
    for v in ("invs:no-mb", "invs:new-after-ste"):
        res = run_program(prog, [v])
        assert [f.kind for f in res.findings] == ["CMD_ERROR"]
        assert fuzz_target.shared_design(res.findings, prog)
        assert fuzz_target.control_shows(prog, res.findings, ["invs:merged"], "max-cache", [v])
    v = "invs:no-ats-rwlock"
    prog = parse(DETACH_FORM)
    res = run_program(prog, [v])
    assert [f.kind for f in res.findings] == ["CMD_ERROR"]
    assert not fuzz_target.shared_design(res.findings, prog)
    assert not fuzz_target.control_shows(prog, res.findings, ["invs:merged"], "max-cache", [v])
