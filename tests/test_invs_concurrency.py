"""Seed 002 under concurrency: the scheduler's rules, the lost update of plain `users`, the exhaustive
mode on the hand-written race programs (buggy orderings found, correct ones clean up to 2 preemptions),
and the sequential agreement of the array versions with the classic per-domain path."""

import glob
import os
from dataclasses import replace

import pytest

from smmufuzz.exec.exhaustive import conflict_steps, explore, explore_collisions, explore_races
from smmufuzz.fuzz.fuzz_target import COLLIDE_SCHEDULES, RACE_SCHEDULES
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import Program, parse
from smmufuzz.exec.runner import HANG, run_program
from smmufuzz.variants.invs import INV_TYPE_S1_ASID, Inv, Invs, InvsFlavor, invs_alloc, invs_merge, invs_unref
from smmufuzz.variants.kthread import Acquire, Lock, Point, Release, drain

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus")
HAND = sorted(glob.glob(os.path.join(ROOT, "regressions", "invs", "hand_*.txt")))
CORRECT = {"invs:new-after-ste": "invs:merged", "invs:old-unref-before-ste": "invs:merged",
           "invs:no-mb": "invs:merged", "invs:no-mutex-plain": "invs:merged", "invs:no-mutex-refcount": "invs:merged",
           "invs:writer-no-irqsave": "invs:v9", "invs:merged-writer-no-irqsave": "invs:merged", "invs:v9-fair-rwlock": "invs:merged-fair-rwlock"}


def _interleave(*gens):
    """Round-robin two task bodies one step at a time (the classic lost-update interleaving)."""
    live = list(gens)
    while live:
        for g in list(live):
            try:
                req = next(g)
                assert not isinstance(req, (Acquire, Release)) or not req.lock.writer
            except StopIteration:
                live.remove(g)


@pytest.mark.parametrize("refcount,expect", [(False, 1), (True, 0)])
def test_plain_users_lose_a_concurrent_decrement_refcount_does_not(refcount, expect):
    fl = InvsFlavor(refcount=refcount)
    one = lambda: Invs([Inv(0, INV_TYPE_S1_ASID, 1)], 1)
    arr = drain(invs_merge(fl, drain(invs_merge(fl, invs_alloc(0), one())), one()))
    assert arr.inv[0].users == 2
    _interleave(invs_unref(fl, arr, one()), invs_unref(fl, arr, one()))
    assert arr.inv[0].users == expect     # plain: both read 2 and write 1; the entry never becomes trash


def _prog(text):
    return parse(text)


HEAD = "config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"


def test_empty_schedule_is_the_sequential_program():
    body = ("iommu_attach_device(d0, sid=0)\niommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
            "iommu_unmap(d0, iova=0x200000, size=0x1000)\ndev_dma(sid=0, iova=0x200000, write=0)\n")
    seq = run_program(_prog(HEAD + body), ["invs:merged"])
    conc = run_program(_prog(HEAD + body.replace("iommu_unmap", "cpu1: iommu_unmap")), ["invs:merged"])
    assert seq.runs[0].returns == conc.runs[0].returns == [0, 0, 0x1000, None]
    log = conc.runs[0].trace.log
    begins = [ctx for _p, ctx, label in log if label.startswith("begin")]
    assert begins == ["cpu0", "cpu0", "cpu1", "cpu0"]      # cpu0 runs until it blocks or ends; then cpu1


def test_preemption_bound_clips_the_schedule():
    prog = load_program(os.path.join(ROOT, "regressions", "invs", "hand_b12a.txt"))[0]
    assert run_program(prog, ["invs:new-after-ste"]).findings
    assert not run_program(prog, ["invs:new-after-ste"], max_preemptions=0).findings


def test_an_interrupt_cannot_start_while_its_cpu_holds_an_irqsave_lock():
    prog = load_program(os.path.join(ROOT, "regressions", "invs", "hand_b11.txt"))[0]
    res = run_program(prog, ["invs:v9"])       # writer uses write_lock_irqsave
    assert not res.findings
    log = res.runs[0].trace.log
    unlock = next(p for p, c, label in log if c == "cpu0" and label == "unlock(invs->rwlock)")
    first_irq = next(p for p, c, _label in log if c == "irq0")
    assert first_irq > unlock                  # the switch to irq0 at the lock was deferred


@pytest.mark.parametrize("path", HAND, ids=[os.path.basename(p) for p in HAND])
def test_hand_written_race_reproduces_and_its_fix_is_clean(path):
    prog, header = load_program(path)
    buggy = header["target"]
    res = run_program(prog, [buggy])
    assert [f.kind for f in res.findings] == [header["expect"]]
    if prog.concurrent():
        bare = replace(prog, schedule=())
        ex = explore(bare, buggy, bound=2)
        assert ex.complete and header["expect"] in ex.kinds()
        fixed = CORRECT[buggy]
        ex = explore(bare, fixed, bound=2)
        assert ex.complete and ex.schedules > 10 and not ex.findings, ex.findings


ONE_SWITCH = [p for p in HAND if load_program(p)[0].concurrent() and len(load_program(p)[0].schedule) == 1]


@pytest.mark.parametrize("path", ONE_SWITCH, ids=[os.path.basename(p) for p in ONE_SWITCH])
def test_fuzz_target_race_budget_finds_one_switch_races(path):
    """The fuzz target's ranked one-switch search finds each hand race without its preempt line within
    its budget, and nothing on the fixed variant."""
    prog, header = load_program(path)
    bare = replace(prog, schedule=())
    ranked = explore_races(bare, header["target"], RACE_SCHEDULES)
    assert header["expect"] in ranked.kinds()
    assert not explore_races(bare, CORRECT[header["target"]], RACE_SCHEDULES).findings


@pytest.mark.parametrize("path", ONE_SWITCH, ids=[os.path.basename(p) for p in ONE_SWITCH])
def test_collisions_find_one_switch_races_in_the_sequential_program(path):
    """With every op on cpu0 and no preempt line, running an op inside its predecessor's window from
    another context (all collide candidates) finds the race; the fixed variant gives nothing."""
    prog, header = load_program(path)
    seq = replace(prog, schedule=(), ops=tuple(replace(op, ctx=0) for op in prog.ops))
    assert not run_program(seq, [header["target"]]).findings
    ex = explore_collisions(seq, header["target"], 1000)
    assert header["expect"] in ex.kinds()
    found = ex.findings[0][0]
    assert found.concurrent() and len(found.schedule) == 1
    assert [f.kind for f in run_program(found, [header["target"]]).findings] == [header["expect"]]
    fixed = explore_collisions(seq, CORRECT[header["target"]], 1000)
    assert fixed.complete and fixed.schedules > 1 and not fixed.findings


TWO_SWITCH = [os.path.join(ROOT, "regressions", "invs", f) for f in ("hand_fair.txt", "hand_nomutex_refcount.txt")]


@pytest.mark.parametrize("path", TWO_SWITCH, ids=[os.path.basename(p) for p in TWO_SWITCH])
def test_collisions_in_conflict_windows_find_two_switch_races_within_the_fuzz_budget(path):
    """The races the hand programs need two switches for, found from the sequential program within the
    fuzz target's collision budget: the switch aimed at a conflict window (the lost update: between the
    array load and its install; the deadlock: while the reader holds the rwlock), then, for the
    deadlock, the next op in an interrupt at the writer's wait. The fixed variant: nothing, all tried."""
    prog, header = load_program(path)
    seq = replace(prog, schedule=(), ops=tuple(replace(op, ctx=0) for op in prog.ops))
    ex = explore_collisions(seq, header["target"], COLLIDE_SCHEDULES)
    assert ex.kinds() == {header["expect"]: 1}
    found = ex.findings[0][0]
    assert [f.kind for f in run_program(found, [header["target"]]).findings] == [header["expect"]]
    fixed = explore_collisions(seq, CORRECT[header["target"]], 1000)
    assert fixed.complete and fixed.schedules > COLLIDE_SCHEDULES and not fixed.findings


def test_conflict_steps_are_the_window_between_the_array_load_and_its_install():
    """The scheduler records what each step accessed; two attaches to one domain conflict on
    domain->invs from the first's load (step 2) to its install, and not on their group mutexes."""
    prog = parse(HEAD + "iommu_attach_device(d0, sid=0)\niommu_attach_device(d0, sid=1)\n")
    trace = run_program(replace(prog, ops=(prog.ops[0], replace(prog.ops[1], ctx=1))),
                        ["invs:no-mutex-refcount"], keep_log=True).runs[0].trace
    steps = [label for _p, ctx, label in trace.log if ctx == "cpu0" and not label.startswith(("begin", "end"))]
    load = steps.index("prepare: load new_domain->invs") + 1
    install = steps.index("install new: rcu_assign_pointer(new_domain->invs)") + 1
    assert 1 < load < install
    assert conflict_steps(trace, 0, 1) == set(range(load - 1, install))


def test_a_forced_switch_is_not_a_preemption():
    """A switch taken where the running task waits for a lock costs no preemption (CHESS), so the bound
    does not drop it: Pranjal's deadlock is one preemption and one forced switch."""
    prog, header = load_program(os.path.join(ROOT, "regressions", "invs", "hand_fair.txt"))
    res = run_program(prog, [header["target"]], max_preemptions=1)
    assert [f.kind for f in res.findings] == [HANG] and res.runs[0].trace.preemptions == 1


def test_an_interrupt_cannot_land_on_a_cpu_spinning_in_an_irqsave_lock():
    """local_irq_save() comes before the spin (__raw_write_lock_irqsave): cpu1 waiting for the invs write
    lock with IRQs off cannot take irq1, so a fair rwlock does not deadlock there (the collision search
    found this false HANG on the correct merged design when interrupts could land mid-spin)."""
    prog = parse(HEAD.replace("ats=0", "ats=1") + "pci_ats(sid=0, on=1)\n"
                 "iommu_attach_device(d0, sid=0)\niommu_attach_device(d0, sid=1)\n"
                 "iommu_flush_iotlb_all(d0)\npreempt(after=2, to=cpu1)\n"
                 "cpu1: iommu_detach_device(sid=1)\npreempt(after=8, to=irq1)\nirq1: iommu_flush_iotlb_all(d0)\n")
    res = run_program(prog, ["invs:merged-fair-rwlock"])
    assert not res.findings, res.findings
    log = res.runs[0].trace.log
    spin = next(p for p, c, label in log if c == "cpu1" and label.endswith("waits"))
    assert next(p for p, c, _l in log if c == "irq1") > spin      # irq1 ran only after cpu1 got the lock


def test_a_dma_api_op_meeting_a_lock_held_mid_op_stops_the_run_unjudged():
    """dma_unmap runs to completion in one step (the DMA API path is not steppable); reaching the invs
    rwlock that cpu1's ATS enable holds mid-op is a wait in the kernel, not a deadlock: the run stops
    without a finding (a false HANG the fuzzer reported before, on a branch)."""
    prog = parse(HEAD.replace("ats=0", "ats=1") + "iommu_attach_device(d0, sid=0)\n"
                 "cpu1: pci_ats(sid=0, on=1)\npreempt(after=6, to=cpu0)\npreempt(after=9, to=cpu0)\n"
                 "dma_map(d0, paddr=0x0, size=0x1000, prot=RW)\ndma_unmap(handle=0)\n")
    res = run_program(prog, ["invs:no-mutex-refcount"])
    assert not res.findings and res.runs[0].stopped == 3
    assert "cannot wait under the scheduler" in res.runs[0].returns[3]


def test_fuzz_target_race_search_adds_a_switch_to_the_programs_own():
    """Pranjal's deadlock needs two switches: given the first, the race search finds the second."""
    prog, header = load_program(os.path.join(ROOT, "regressions", "invs", "hand_fair.txt"))
    first = replace(prog, schedule=prog.schedule[:1])
    assert not run_program(first, [header["target"]]).findings
    ex = explore_races(first, header["target"], RACE_SCHEDULES)
    assert ex.kinds() == {HANG: 1} and ex.findings[0][0].schedule[0] == prog.schedule[0]
    assert not explore_races(first, CORRECT[header["target"]], RACE_SCHEDULES).findings


def test_v9_reader_hangs_on_a_nest_parent_and_merged_does_not():
    prog = _prog(HEAD.replace("stage=1", "stage=2") + "iommu_attach_device(d0, sid=0)\n"
                 "iommu_map(d0, iova=0x1000, paddr=0x80001000, size=0x200000, prot=RW)\n"
                 "iommu_unmap(d0, iova=0x1000, size=0x200000)\n")   # 512 4K leaves: too_big without RANGE_INV
    assert [f.kind for f in run_program(prog, ["invs:v9:nest"]).findings] == [HANG]
    assert not run_program(prog, ["invs:merged:nest"]).findings


def test_array_versions_agree_with_the_classic_path_sequentially():
    body = ("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=1, ats=1, e2h=0)\n"
            "pci_ats(sid=1, on=1)\niommu_attach_device(d0, sid=0)\niommu_attach_device(d0, sid=1)\n"
            "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x400000, prot=RW)\n"
            "ats_translate(sid=1, iova=0x200000)\niommu_unmap(d0, iova=0x200000, size=0x201000)\n"
            "iommu_attach_device(d1, sid=1)\niommu_detach_device(sid=0)\n"
            "iommu_unmap(d0, iova=0x401000, size=0x1000)\n")
    res = run_program(_prog(body), ["smmuv3", "invs:v9", "invs:merged", "invs:merged-refcount"])
    assert not res.findings, [f.text() for f in res.findings]
    assert len({tuple(r.returns) for r in res.runs}) == 1


def test_text_form_round_trips_contexts_and_schedule():
    prog = load_program(os.path.join(ROOT, "regressions", "invs", "hand_b12b.txt"))[0]
    assert parse(prog.text()) == prog
    assert "cpu1: iommu_unmap" in prog.text() and "iommu_attach_device(d1, sid=0)\npreempt(after=" in prog.text()


def test_a_collided_writer_waiting_on_a_reader_is_followed_by_the_reader_re_entered_from_an_interrupt():
    """reader; writer on one domain, nothing after: the collision puts the detach inside the flush while it
    holds the rwlock, the detach waits, and the flush itself re-entered from irq0 at the wait deadlocks
    on the fair rwlock; the queued rwlock (an interrupt reader passes) and read_lock_irqsave do not."""
    prog = parse(HEAD.replace("ats=0", "ats=1") + "pci_ats(sid=0, on=1)\niommu_attach_device(d0, sid=0)\n"
                 "iommu_flush_iotlb_all(d0)\niommu_detach_device(sid=0)\n")
    ex = explore_collisions(prog, "invs:v9-fair-rwlock", COLLIDE_SCHEDULES)
    assert ex.kinds() == {HANG: 1}
    found = ex.findings[0][0]
    assert [op.text() for op in found.ops[2:]] == ["iommu_flush_iotlb_all(d0)", "cpu1: iommu_detach_device(sid=0)",
                                                   "irq0: iommu_flush_iotlb_all(d0)"]
    assert found.schedule[-1][2] == 2 and len(found.schedule) == 2
    for v in ("invs:v9", "invs:merged-fair-rwlock"):
        assert not explore_collisions(prog, v, 1000).findings


def test_an_unmap_landing_inside_a_flush_all_is_not_promised_by_it():
    """iommu_flush_iotlb_all() promises only the removals made before it began: an unmap_fast from irq1
    after the flush's TLBI leaves its page pending (its gather not synced), not a missed invalidation
    (a false finding the collision search reached on every variant)."""
    text = (HEAD + "iommu_attach_device(d0, sid=0)\niommu_map(d0, iova=0x20000000, paddr=0x0, size=0x1000, prot=RW)\n"
            "iommu_flush_iotlb_all(d0)\npreempt(after=4, to=irq1)\n"
            "irq1: iommu_unmap_fast(d0, iova=0x20000000, size=0x1000, gather=g0)\n")
    assert not run_program(parse(text), ["invs:v9", "invs:merged"]).findings


def test_a_design_race_the_control_shares_is_not_the_planted_bug():
    """The bench's control check searches the control's own schedules: the ATS-enable race of the design
    (all variants) found on the fair-rwlock variant at one step count is found on v9 at another, so it is
    not counted; the fair lock's deadlock is not shown by v9 under any schedule searched."""
    from smmufuzz.fuzz.fuzz_target import control_shows
    design = load_program(os.path.join(ROOT, "regressions", "invs", "ats_enable_races_inflight_unmap.txt"))[0]
    ex = explore_races(Program(design.config, design.ops, ()), "invs:v9-fair-rwlock", 64)
    found = [(p, f) for p, f in ex.findings if f.kind == "MISSED_INVALIDATION"]
    assert found, "the design race is reachable on the fair-rwlock variant"
    prog, f = found[0]
    assert control_shows(prog, [f], ["invs:v9"], "max-cache")
    fair = load_program(os.path.join(ROOT, "regressions", "invs", "hand_fair.txt"))[0]
    res = run_program(fair, ["invs:v9-fair-rwlock"])
    assert [x.kind for x in res.findings] == ["HANG"]
    assert not control_shows(fair, res.findings, ["invs:v9"], "max-cache")


def test_step_by_step_targets_count_an_edge_once():
    """-use_counters=0 for seed-002 targets only; the user's extra flags come after it (and win)."""
    from smmufuzz.fuzz.fuzz import libfuzzer_args
    args = libfuzzer_args("w", ["c"], 1, 1, "x", "d", ["-use_counters=1"], ["invs:v9"])
    assert args.index("-use_counters=0") < args.index("-use_counters=1")
    assert "-use_counters=0" not in libfuzzer_args("w", ["c"], 1, 1, "x", "d", [], ["gather:legacy:arm-smmu-v3"])


READER_ONLY = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
pci_ats(sid=0, on=1)
iommu_attach_device(d0, sid=0)
iommu_flush_iotlb_all(d0)
"""


def _trace(prog, v):
    from smmufuzz.exec.exhaustive import Exploration, _base_trace
    return _base_trace(Exploration(v, 1), prog, v, "max-cache")


def test_a_reader_is_completed_with_a_learned_writer_into_the_interrupt_deadlock():
    """A flush holding an ATS array's read lock, with no writer after it: its collisions find nothing;
    once the runs have shown which op kinds take that lock exclusive, the completion puts one after the
    reader and its collisions (and wait followers) give the fair rwlock's deadlock, and nothing on v9."""
    from smmufuzz.exec.complete import explore_completions, learn_writers, unmatched_readers
    v = "invs:v9-fair-rwlock"
    prog = parse(READER_ONLY)
    assert not explore_collisions(prog, v, 100).findings
    trace = _trace(prog, v)
    assert unmatched_readers(prog, trace) == [(2, "invs->rwlock")]
    writers: dict = {}
    assert not explore_completions(prog, v, "max-cache", trace, writers).findings     # nothing learned yet
    assert "invs->rwlock" not in writers
    detach = parse(READER_ONLY + "iommu_detach_device(sid=0)\n")
    learn_writers(writers, detach, _trace(detach, v))
    assert writers["invs->rwlock"] == {"detach"}
    ex = explore_completions(prog, v, "max-cache", trace, writers)
    assert [f.kind for _p, f in ex.findings] == ["HANG"]
    found = ex.findings[0][0]
    assert [op.kind for op in found.ops][:4] == ["ats", "attach", "flush_all", "detach"]
    assert not explore_completions(prog, "invs:v9", "max-cache", _trace(prog, "invs:v9"), writers).findings
