"""The ATS-enable race of the invalidation array (issue 18 item 8, docs/invs-ats-race.md): an unmap between
its array load and its TLBI misses the ATC of a stream that gains ATS meanwhile, on v9 and merged; the fix
(invs:merged-ats-order: TLBIs + CMD_SYNC, smp_mb(), the array loaded again for the ATC invalidations, as
arm_smmu_atc_inv_domain() reads nr_ats_masters) is clean under every schedule of up to 3 preemptions."""

import os
from dataclasses import replace

import pytest

from smmufuzz.exec.exhaustive import explore
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_variant
from smmufuzz.exec.verdict import KNOWN_DESIGN, UNEXPECTED, classify
from smmufuzz.variants import arm_smmu_v3_invs
from smmufuzz.variants.kthread import Acquire, Point, Release

INVS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "invs")
# ATS enabled on an attached stream (pci_ats on), an ATS stream moving into the domain, an ATS stream joining
# it; the last behind the second of two SMMU instances
RACES = ["ats_enable_on_attached_stream.txt", "ats_stream_moves_into_unmapping_domain.txt",
         "ats_enable_races_inflight_unmap.txt", "ats_stream_joins_on_second_smmu.txt"]
FIX = "invs:merged-ats-order"


def _bare(name: str):
    prog, header = load_program(os.path.join(INVS, name))
    assert header["expect"] == "MISSED_INVALIDATION"
    return replace(prog, schedule=())


@pytest.mark.parametrize("name", RACES)
def test_the_race_is_found_on_v9_and_merged_and_not_on_the_fix(name):
    prog = _bare(name)
    two = ":2smmu" if "second_smmu" in name else ""
    for v in ("invs:v9", "invs:merged"):      # one preemption is enough (a subset of the 3-preemption schedules)
        assert "MISSED_INVALIDATION" in explore(prog, v + two, bound=1).kinds(), v + two
    ex = explore(prog, FIX + two, bound=3)
    assert ex.complete and ex.schedules > 1000 and not ex.findings, ex.findings


def _no_reload(self, d, invs, iova, size, granule, leaf):
    """The fix's split without its second load of domain->invs."""
    yield from self._inv_body(invs, iova, size, granule, leaf, ats=False)
    yield Point("smp_mb(), array not loaded again")
    if invs.has_ats:
        yield Acquire(invs.rwlock, shared=True, irqsave=True)
        yield from self._inv_body(invs, iova, size, granule, leaf, ats=True)
        yield Release(invs.rwlock, shared=True, irqsave=True)


def test_the_second_load_is_the_fix_and_its_miss_is_not_excused(monkeypatch):
    """Without reloading the array after the TLBIs' CMD_SYNC the fix has the race again, and there it is
    UNEXPECTED (the variant is correct and fixes the known design finding), while on merged it is known."""
    prog = _bare(RACES[0])
    monkeypatch.setattr(arm_smmu_v3_invs.ArmSmmuV3InvsDriver, "_inv_tlb_then_atc", _no_reload)
    ex = explore(prog, FIX, bound=1)
    assert [f.kind for _p, f in ex.findings] == ["MISSED_INVALIDATION"]
    found, f = ex.findings[0]
    assert classify(f, found).cls == UNEXPECTED
    monkeypatch.undo()
    m = explore(prog, "invs:merged", bound=1)
    assert classify(m.findings[0][1], m.findings[0][0]).cls == KNOWN_DESIGN


def test_the_fix_keeps_the_rwlock_ordering_against_ats_disable():
    """Issue 18 item 6's race (ATS disabled under an outstanding ATC_INV) stays impossible: the fix takes
    the reloaded array's rwlock around its ATC invalidations."""
    prog, _ = load_program(os.path.join(INVS, "race_no_ats_rwlock.txt"))
    ex = explore(replace(prog, schedule=()), FIX, bound=3)
    assert ex.complete and ex.schedules > 1000 and not ex.findings, ex.findings


SEQUENTIAL = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
pci_ats(sid=0, on=1)
iommu_attach_device(d0, sid=0)
iommu_attach_device(d0, sid=1)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x3000, prot=RW)
iommu_map(d0, iova=0x400000, paddr=0x80200000, size=0x200000, prot=RW)
iommu_unmap(d0, iova=0x201000, size=0x1000)
iommu_unmap_fast(d0, iova=0x400000, size=0x200000, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
iommu_flush_iotlb_all(d0)
iommu_detach_device(sid=0)
iommu_unmap(d0, iova=0x200000, size=0x1000)
"""


def test_the_fix_costs_no_command_when_alone():
    """Sequentially the fix issues exactly merged's commands and CMD_SYNCs (its price is one smp_mb() and
    one more load and walk of the array, which the model does not count)."""
    prog = parse(SEQUENTIAL)
    runs = {v: run_variant(prog, v) for v in ("invs:merged", FIX)}
    assert all(r.finding is None for r in runs.values())
    merged, fix = (runs[v].stats for v in ("invs:merged", FIX))
    assert merged["cmds"].get("ATC_INV") and merged["syncs"] > 0
    assert fix["cmds"] == merged["cmds"] and fix["syncs"] == merged["syncs"]


def _sequential(name: str):
    prog = _bare(name)
    return replace(prog, ops=tuple(replace(op, ctx=0) for op in prog.ops))


def test_a_readers_stale_load_is_a_conflict_window():
    """The unmap loads domain->invs and acts on it later (TLBIs, then no ATC_INV); a pci_ats(on) of another CPU
    that replaces the array right after that load is the race. The conflict window of the pair covers the
    STALE_TAIL steps from the unmap's last read of domain->invs on, not only the steps between its reads."""
    from smmufuzz.exec.exhaustive import STALE_TAIL, conflict_steps
    from smmufuzz.exec.runner import run_program
    prog = _sequential("ats_enable_on_attached_stream.txt")
    i = next(k for k, op in enumerate(prog.ops) if op.kind == "unmap")
    assert prog.ops[i + 1].kind == "ats"
    two = replace(prog, ops=prog.ops[:i + 1] + (replace(prog.ops[i + 1], ctx=1),) + prog.ops[i + 2:])
    trace = run_program(two, ["invs:merged"], keep_log=True).runs[0].trace
    mine = [label for _p, ctx, label in trace.log if ctx == "cpu0" and label.startswith(("unmap", "smp_mb", "reader"))]
    load = mine.index("smp_mb(); rcu_dereference(domain->invs)") + 1
    hot = conflict_steps(trace, i, i + 1)
    assert set(range(load, load + STALE_TAIL)) <= hot and STALE_TAIL >= 2
    assert load + STALE_TAIL not in hot


@pytest.mark.parametrize("name", RACES[:3])
def test_the_collision_search_finds_the_race_in_the_sequential_program(name, monkeypatch):
    """The fuzz target's collision search of a sequential input (COLLIDE_SCHEDULES runs: the next op on the
    domain moved to the other CPU, switched to inside the unmap) finds the race on merged, and not on the fix;
    without the stale-load window it spends its runs elsewhere on at least one of these programs."""
    from smmufuzz.exec import exhaustive
    from smmufuzz.fuzz.fuzz_target import COLLIDE_SCHEDULES
    prog = _sequential(name)
    ex = exhaustive.explore_collisions(prog, "invs:merged", COLLIDE_SCHEDULES)
    assert ex.kinds() == {"MISSED_INVALIDATION": 1}
    assert not exhaustive.explore_collisions(prog, FIX, COLLIDE_SCHEDULES).findings
    monkeypatch.setattr(exhaustive, "STALE_TAIL", 0)
    if name == "ats_enable_on_attached_stream.txt":
        assert not exhaustive.explore_collisions(prog, "invs:merged", COLLIDE_SCHEDULES).findings
