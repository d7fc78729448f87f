"""The caller contract (prog/contract.py): each rule is a skip (the op is not issued, and replay says so) or an
unknown range, and each one carries weight: its program is clean on correct variants, and where a correct
variant gives a false finding without the rule, switching the rule off brings that finding back."""

import inspect
import os
import re
import subprocess
import sys

import pytest

from smmufuzz.prog import contract
from smmufuzz.exec import runner
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import _Exec, run_program, run_variant
from smmufuzz.reference.spec import MAPPED, UNKNOWN
from smmufuzz.variants.registry import target

ROOT = os.path.dirname(os.path.dirname(__file__))
CFG = "config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
VIRTIO = target("gather:virtio")


def execute(text: str, variant: str):
    """Run a sequential program op by op on one variant; returns the executor (its intent) and the op results."""
    prog = parse(text)
    ex = _Exec(prog, variant, "max-cache", False)
    rets = []
    for i, op in enumerate(prog.ops):
        ret, v = ex.step(i, op)
        assert v is None, v
        rets.append(ret)
    return ex, rets


def extents(ex, dom=0):
    ds = ex.spec.domains.get(dom)
    return [] if ds is None else [(e.base, e.span, e.state) for e in (ds.ext[b] for b in ds.bases)]


@pytest.fixture
def without(monkeypatch):
    """Switch one rule off (a skip rule never fires, an unknown rule never applies)."""
    def off(rule):
        if any(fn is rule for fn, _why in contract.SKIP_RULES):
            monkeypatch.setattr(contract, "SKIP_RULES", [(fn, why) for fn, why in contract.SKIP_RULES if fn is not rule])
            return
        monkeypatch.setattr(contract, rule.__name__, lambda *a: set() if rule is contract.concurrent_overlap
                            else False)
    return off


def kinds(prog, variants):
    return sorted({f.kind for f in run_program(prog, variants).findings})


# ---- skips --------------------------------------------------------------------------------------
def test_raw_call_on_dma_domain():
    ex, rets = execute(CFG + "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n", "pt-fq:A")
    assert rets == [contract.DMA_ONLY]
    assert extents(ex) == []


def test_raw_call_on_a_domain_switched_to_dma_fq(without):
    """The rerun campaign's false DIVERGENCE on gather-correct:virtio: after iommu_dma_init_fq(d0) a raw
    iommu_iotlb_sync() of an empty gather kicks the queued lazy UNMAP on legacy (the oracle settles it) and not on
    robin-draft/v2 (still pending), so a raw iommu_map() over it is promised on one and unknown on the others."""
    prog = parse(CFG + ("iommu_dma_init_fq(d0)\n"
                        "iommu_attach_device(d0, sid=0)\n"
                        "dma_map(d0, paddr=0x0, size=0x1000, prot=RW)\n"
                        "dma_unmap(handle=0)\n"
                        "iommu_iotlb_sync(d0, gather=g0)\n"
                        "iommu_map(d0, iova=0x0, paddr=0x0, size=0x200000, prot=RW)\n"))
    res = run_program(prog, target("gather-correct:virtio"))
    assert not res.findings and {r.returns[4] for r in res.runs} == {r.returns[5] for r in res.runs} == {contract.DMA_ONLY}
    without(contract.raw_call_on_dma_domain)
    assert kinds(prog, target("gather-correct:virtio")) == ["DIVERGENCE"]


def test_sleeping_call_in_interrupt():
    prog = parse(CFG + "iommu_attach_device(d0, sid=0)\nirq0: iommu_attach_device(d1, sid=1)\n")
    res = run_program(prog, ["smmuv3"])
    assert res.runs[0].returns[1] == contract.IN_IRQ and not res.findings


def test_map_outside_aperture():
    text = CFG.replace("ias=48", "ias=32") + "iommu_map(d0, iova=0xfffff000, paddr=0x80000000, size=0x2000, prot=RW)\n"
    ex, rets = execute(text, "smmuv3")
    assert rets == [contract.OUTSIDE] and extents(ex) == []


def test_unmap_outside_aperture():
    text = CFG.replace("ias=48", "ias=32") + "iommu_unmap(d0, iova=0xfffff000, size=0x2000)\n"
    _ex, rets = execute(text, "smmuv3")
    assert rets == [contract.OUTSIDE]


def test_unmap_over_a_hole(without):
    """The false INVISIBLE_MAPPING on every virtio rule (issue 15): viommu_unmap_pages() dropped the node and
    returned 0. The unmap is not issued, on every variant alike, and replay notes it."""
    path = os.path.join(ROOT, "corpus", "regressions", "virtio", "unmap_past_a_hole_forgets_mappings.txt")
    prog, _ = load_program(path)
    runs = run_program(prog, VIRTIO).runs + run_program(prog, ["smmuv3"]).runs
    assert not any(r.finding for r in runs)
    assert {r.returns[1] for r in runs} == {contract.UNMAP_HOLE}
    without(contract.unmap_over_a_hole)
    assert kinds(prog, ["gather:robin-v2:virtio"]) == ["INVISIBLE_MAPPING"]


@pytest.mark.parametrize("unmap", [
    "iommu_unmap_fast(d0, iova=0x200000, size=0x100000, gather=g0)",       # the same, through a caller's gather
    "iommu_unmap(d0, iova=0x1ff000, size=0x2000)",                           # the hole comes first
])
def test_unmap_over_a_hole_other_shapes(unmap, without):
    prog = parse(CFG + "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n" + unmap
                 + "\niommu_attach_device(d0, sid=0)\n")
    res = run_program(prog, VIRTIO)
    assert not res.findings and {r.returns[1] for r in res.runs} == {contract.UNMAP_HOLE}


def test_unmap_of_a_range_not_yet_synced_is_a_hole():
    text = CFG + ("iommu_attach_device(d0, sid=0)\n"
                  "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                  "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\n"
                  "iommu_unmap(d0, iova=0x200000, size=0x2000)\n"
                  "iommu_iotlb_sync(d0, gather=g0)\n")
    ex, rets = execute(text, "smmuv3")
    assert rets[3] == contract.UNMAP_HOLE
    assert extents(ex) == [(0x201000, 0x1000, MAPPED)]       # the second page stays promised


def test_unmap_of_contiguous_maps_is_within_the_contract():
    """The kernel-doc lets one unmap aggregate contiguous maps, and unmap leaf by leaf what one map made."""
    text = CFG + ("iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                  "iommu_map(d0, iova=0x202000, paddr=0x90000000, size=0x1000, prot=RW)\n"
                  "iommu_unmap(d0, iova=0x201000, size=0x2000)\n")
    ex, rets = execute(text, "smmuv3")
    assert rets[2] == 0x2000 and extents(ex) == [(0x200000, 0x1000, MAPPED)]


def test_dma_unmap_over_a_hole():
    """A raw unmap took part of what dma_map mapped: the DMA API's own unmap of its range now has a hole."""
    text = CFG + ("dma_map(d0, paddr=0x80000000, size=0x2000, prot=RW)\n"
                  "iommu_unmap(d0, iova=0x100000, size=0x1000)\n"
                  "dma_unmap(handle=0)\n")
    ex, rets = execute(text, "smmuv3")
    assert rets[0] == 0x100000 and rets[1] == 0x1000 and rets[2] == contract.UNMAP_HOLE


def test_dma_unmap_of_no_mapping():
    text = CFG + "dma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)\ndma_unmap(handle=0)\ndma_unmap(handle=0)\n"
    _ex, rets = execute(text, "smmuv3")
    assert rets[2] == contract.NO_HANDLE


SHARED_G0 = CFG + ("iommu_attach_device(d0, sid=0)\n"
                   "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                   "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\n"
                   "iommu_iotlb_sync(d0, gather=g0)\n"
                   "preempt(after=2, to=cpu1)\n"
                   "cpu1: iommu_unmap_fast(d0, iova=0x201000, size=0x1000, gather=g0)\n"
                   "dev_dma(sid=0, iova=0x201000, write=0)\n")


@pytest.mark.parametrize("variant", ["invs:merged", "invs:v9:2smmu", "invs:merged:2smmu", "invs:merged:nest"])
def test_gather_of_another_context(variant, without):
    """The campaign's false alarm: cpu0's iommu_iotlb_sync(g0) is preempted after reading the gather, cpu1's
    iommu_unmap_fast() adds to the same g0, and the oracle promised cpu1's page at cpu0's sync. cpu1's op is not
    issued (the page stays mapped and promised, the DMA is fine); without the rule, MISSED_INVALIDATION."""
    prog = parse(SHARED_G0)
    res = run_program(prog, [variant])
    assert not res.findings and res.runs[0].trace.preemptions == 1
    assert res.runs[0].returns[4] == contract.SHARED_GATHER
    without(contract.gather_of_another_context)
    assert kinds(prog, [variant]) == ["MISSED_INVALIDATION"]


@pytest.mark.parametrize("text", [
    # one context: every op on g0 issued (no context switch)
    "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x3000, prot=RW)\n"
    "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\niommu_unmap_fast(d0, iova=0x201000, size=0x1000,"
    " gather=g0)\niommu_iotlb_sync(d0, gather=g0)\niommu_unmap_fast(d0, iova=0x202000, size=0x1000, gather=g0)\n"
    "iommu_iotlb_sync(d0, gather=g0)\n",
    # a gather synced is anyone's: cpu1 takes g0 after cpu0's sync returned; another domain's g0 is another gather
    "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
    "iommu_map(d1, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
    "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\niommu_iotlb_sync(d0, gather=g0)\n"
    "cpu1: iommu_unmap_fast(d0, iova=0x201000, size=0x1000, gather=g0)\ncpu1: iommu_iotlb_sync(d0, gather=g0)\n"
    "irq1: iommu_unmap_fast(d1, iova=0x200000, size=0x1000, gather=g0)\nirq1: iommu_iotlb_sync(d1, gather=g0)\n",
])
def test_a_gather_of_one_context_is_issued(text):
    ex, rets = execute(CFG + text, "smmuv3")
    assert not any(isinstance(r, str) for r in rets), rets
    assert ex.gather_owner == {} and extents(ex) == [] and extents(ex, 1) == []


def test_a_gather_used_by_two_contexts_before_a_sync():
    """Sequential too: cpu1 (or cpu0's interrupt) cannot add to, or sync, cpu0's unsynced g0; cpu0's sync settles its own."""
    text = CFG + ("iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                  "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\n"
                  "cpu1: iommu_unmap_fast(d0, iova=0x201000, size=0x1000, gather=g0)\n"
                  "irq0: iommu_iotlb_sync(d0, gather=g0)\n"
                  "iommu_iotlb_sync(d0, gather=g0)\n")
    ex, rets = execute(text, "smmuv3")
    assert rets[2:4] == [contract.SHARED_GATHER] * 2 and rets[4] is None
    assert extents(ex) == [(0x201000, 0x1000, MAPPED)]


def test_collisions_give_a_moved_gather_op_a_gather_of_its_own():
    """The fuzz target's collide search runs op i+1 on another context inside op i: the unmap_fast moved into cpu0's
    iotlb_sync(g0) takes g1 (contract.own_gather), a legal race (the campaign's false alarm shape, within the
    contract), instead of being skipped."""
    from smmufuzz.exec.exhaustive import explore_collisions
    seq = parse(CFG + ("iommu_attach_device(d0, sid=0)\n"
                       "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                       "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\n"
                       "iommu_iotlb_sync(d0, gather=g0)\n"
                       "iommu_unmap_fast(d0, iova=0x201000, size=0x1000, gather=g0)\n"
                       "iommu_iotlb_sync(d0, gather=g0)\n"))
    seen = []
    ex = explore_collisions(seq, "invs:merged", 1000, observe=seen.append)
    assert not ex.findings and seen
    moved = [p for p in seen if any(op.ctx and op.kind == "unmap_fast" for op in p.ops)]
    assert moved and all(op.args[-1] == 1 for p in moved for op in p.ops if op.ctx)
    assert all(op.args[-1] == 0 for p in seen for op in p.ops if not op.ctx and op.kind in ("unmap_fast", "sync"))


# ---- unknown ranges -----------------------------------------------------------------------------
def test_map_over_live():
    text = CFG + ("iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                  "iommu_map(d0, iova=0x1ff000, paddr=0x90000000, size=0x3000, prot=RW)\n")
    for variant in ("smmuv3", "gather:legacy:virtio"):
        ex, rets = execute(text, variant)
        assert extents(ex) == [(0x1ff000, 0x3000, UNKNOWN)], variant


def test_map_over_live_by_a_failed_dma_map(without):
    """The 30-minute campaign's false INVISIBLE_MAPPING (issue 15): dma_map's IOVA allocator, which knows nothing of
    the raw iommu_map() at 0x400000, hands out [0x400000, 0x800000); iommu_map() puts a 2M block over the raw map's
    table (arm_lpae_init_pte() frees it), hits the raw 4K leaves at 0x600000 (-EEXIST) and unmaps the block again.
    A map over a live range makes it unknown whether the map succeeds or fails."""
    prog = parse(CFG + ("iommu_attach_device(d0, sid=0)\n"
                        "iommu_map(d0, iova=0x400000, paddr=0x801fe000, size=0x202000, prot=RW)\n"
                        "dma_map(d0, paddr=0x0, size=0x202000, prot=RW)\n"))
    res = run_program(prog, ["smmuv3", "gather:robin-v2:arm-smmu-v3", "gather:robin-v2:msm"])
    assert not res.findings and {r.returns[2] for r in res.runs} == {-17}
    ex, _rets = execute(prog.text(), "smmuv3")
    assert extents(ex) == [(0x400000, 0x202000, UNKNOWN)]
    without(contract.map_over_live)
    assert kinds(prog, ["smmuv3"]) == ["INVISIBLE_MAPPING"]


def test_map_without_access():
    text = CFG + "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=NONE)\n"
    ex, rets = execute(text, "smmuv3")
    assert rets[0] != 0 and extents(ex) == []                # io-pgtable-arm refuses it: nothing there
    ex, rets = execute(text, "gather:legacy:sun50i")         # a format without permission bits maps it: unknown
    assert rets[0] == 0 and extents(ex) == [(0x200000, 0x1000, UNKNOWN)]


def test_unmap_cuts_a_leaf():
    text = CFG + ("iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x200000, prot=RW)\n"
                  "iommu_unmap(d0, iova=0x201000, size=0x1000)\n")
    ex, _rets = execute(text, "smmuv3")
    assert extents(ex) == [(0x200000, 0x200000, UNKNOWN)]


def test_unmap_over_unknown(without):
    """An overlapping map left two viommu nodes; the DMA API's unmap then removed both and told the host to UNMAP
    past the node it never reached: the intent may not take the returned size as the last word."""
    prog = parse(CFG + ("dma_map(d0, paddr=0x0, size=0x200c000, prot=RW)\n"
                        "iommu_map(d0, iova=0x4004000, paddr=0x0, size=0x10000, prot=RW)\n"
                        "dma_unmap(handle=0)\n"
                        "iommu_attach_device(d0, sid=0)\n"))
    assert kinds(prog, VIRTIO) == []
    ex, _rets = execute(prog.text(), "gather:legacy:virtio")
    assert [s for _b, _s, s in extents(ex)] == [UNKNOWN]
    without(contract.unmap_over_unknown)
    assert kinds(prog, ["gather:legacy:virtio"]) == ["MISSED_INVALIDATION"]


def test_unmap_cutting_an_overlap_is_unknown_up_to_where_it_stopped(monkeypatch):
    """Issue 15's virtio shape: after an overlapping map, an unmap cutting the unknown leaf removed both overlapping
    nodes and sent UNMAP for iova + the 0x3f8000 bytes the core counted, past the request, taking the host's mapping at
    0x40f000 with it. The unknown range runs to where the kernel says it stopped, not just to the request's end."""
    prog = parse(CFG + ("iommu_map(d0, iova=0x200000, paddr=0x0, size=0x1f8000, prot=RW)\n"
                        "iommu_map(d0, iova=0x40f000, paddr=0x0, size=0x1000, prot=RW)\n"
                        "iommu_map(d0, iova=0x204000, paddr=0x0, size=0x200000, prot=RW)\n"
                        "iommu_attach_device(d0, sid=0)\n"
                        "iommu_unmap(d0, iova=0x200000, size=0x1f9000)\n"))
    res = run_program(prog, VIRTIO)
    assert not res.findings and {r.returns[4] for r in res.runs} == {0x3f8000}
    ex, _rets = execute(prog.text(), "gather:legacy:virtio")
    assert extents(ex) == [(0x200000, 0x3f8000, UNKNOWN)]          # 0x40f000 included
    unmap_unknown = contract.unmap_unknown
    monkeypatch.setattr(contract, "unmap_unknown", lambda ds, iova, size, ret: unmap_unknown(ds, iova, size, 0))
    assert kinds(prog, ["gather:legacy:virtio"]) == ["INVISIBLE_MAPPING"]


def test_concurrent_overlap(without, monkeypatch):
    """cpu1 unmaps what cpu0's unmap, preempted after clearing the PTE, is still unmapping: both outcomes are
    unknown (whichever the kernel's return values claim)."""
    prog = parse(CFG + ("iommu_attach_device(d0, sid=0)\n"
                        "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                        "iommu_unmap(d0, iova=0x200000, size=0x1000)\n"
                        "preempt(after=4, to=cpu1)\n"
                        "cpu1: iommu_unmap(d0, iova=0x200000, size=0x1000)\n"))
    made = []
    setup = runner._setup
    monkeypatch.setattr(runner, "_setup", lambda *a: made.append(setup(*a)) or made[-1])
    res = run_program(prog, ["invs:merged"])
    assert not res.findings and res.runs[0].trace.preemptions == 1
    assert extents(made[-1][1]) == [(0x200000, 0x1000, UNKNOWN)]
    without(contract.concurrent_overlap)
    run_program(prog, ["invs:merged"])
    assert extents(made[-1][1]) == []


# ---- the module itself ----------------------------------------------------------------------------
RULES = [fn for fn, _why in contract.SKIP_RULES] + contract.UNKNOWN_RULES


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_every_rule_cites_a_kernel_function_in_one_line(rule):
    doc = rule.__doc__ or ""
    assert "\n" not in doc and re.search(r"\b\w+\(\)", doc), doc


@pytest.mark.parametrize("rule", RULES, ids=[r.__name__ for r in RULES])
def test_every_rule_has_a_test(rule):
    assert "test_" + rule.__name__ in globals()


def test_replay_notes_every_contract_skip(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(CFG + "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                    "iommu_unmap(d0, iova=0x200000, size=0x2000)\n"
                    "dma_unmap(handle=0)\n")
    p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "replay", str(path), "--target", "smmuv3"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert f"note: op(s) 1 skipped: {contract.UNMAP_HOLE.split(': ', 1)[1]}" in p.stdout
    assert f"note: op(s) 2 skipped: {contract.NO_HANDLE.split(': ', 1)[1]}" in p.stdout


def test_skip_reasons_are_documented_as_the_contract():
    src = inspect.getsource(contract)
    for why in (contract.DMA_ONLY, contract.IN_IRQ, contract.OUTSIDE, contract.UNMAP_HOLE, contract.NO_HANDLE,
                contract.SHARED_GATHER, contract.EMPTY_SG, contract.LONG_SG):
        assert why.startswith("skipped: ") and why.endswith(contract.CONTRACT_TAG)
    assert src.count("@_skip_rule(") == len(contract.SKIP_RULES)


def test_map_sg_with_an_empty_entry():
    """6.12's iommu_map_sg() maps nothing for [a+0x2000, a+0x2000 +0x0] (the closing pass re-reads the empty last
    entry as contiguous) and returns 0, where the model maps the run: such a list is outside the contract."""
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d0, sid=0)\n"
                 "iommu_map_sg(d0, iova=0x200000, sg=[0x80000000+0x2000, 0x80002000+0x0], prot=RW)\n"
                 "iommu_map_sg(d0, iova=0x400000, sg=[0x80000000+0x2000, 0x80002000+0x1000], prot=RW)\n")
    for v in ("smmuv3", "gather:legacy:virtio", "gather:legacy:mtk"):
        run = run_variant(prog, v)
        assert run.finding is None and run.returns[1] == contract.EMPTY_SG and run.returns[2] == 0x3000, run.returns


def test_map_sg_with_a_4g_entry():
    """A 5 GiB segment cannot exist (sg->length is 32 bits; the tree's C saw it as 1 GiB): skipped, while a
    segment under 4 GiB is mapped."""
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d1, sid=0)\n"
                 "iommu_map_sg(d1, iova=0x0, sg=[0x0+0x140000000], prot=RW)\n"
                 "iommu_map_sg(d1, iova=0x200000000, sg=[0x0+0x200000], prot=RW)\n")
    for v in ("smmuv3", "gather:legacy:virtio"):
        run = run_variant(prog, v)
        assert run.finding is None and run.returns[1] == contract.LONG_SG and run.returns[2] == 0x200000, \
            run.returns


def test_the_model_maps_an_sg_list_as_612s_loop_does():
    """Why the empty-entry rule exists: 6.12's iommu_map_sg() (and the model, called directly past the contract)
    returns 0 and maps nothing when an empty last entry continues the run before it."""
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d0, sid=0)\n")
    ex = _Exec(prog, "smmuv3", "max-cache", False)
    ex.step(0, prog.ops[0])
    assert ex.os.map_sg(0, 0x200000, [(0x80000000, 0x2000), (0x80002000, 0)], 3) == 0
    assert ex.os.iova_to_phys(0, 0x200000) == 0
    assert ex.os.map_sg(0, 0x400000, [(0x80000000, 0x2000), (0x90000000, 0)], 3) == 0x2000
    assert ex.os.map_sg(0, 0x600000, [(0x80000000, 0x2000), (0x80002000, 0x1000)], 3) == 0x3000
    assert ex.os.iova_to_phys(0, 0x602000) == 0x80002000


def test_reset_without_a_reset_path():
    """arm_smmu_device_reset() is issued only to SMMUv3 drivers: arm-smmu (v2) skips it, with no finding."""
    prog = parse(CFG + "iommu_attach_device(d0, sid=0)\narm_smmu_device_reset()\n")
    assert run_variant(prog, "gather:legacy:arm-smmu").returns[1] == contract.NO_RESET
    assert run_variant(prog, "smmuv3").returns[1] is None


def test_reset_under_other_calls():
    """A reset in an interrupt, or while another CPU's attach is in flight, is not issued."""
    base = (CFG + "iommu_attach_device(d0, sid=0)\n"
            "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n")
    assert run_variant(parse(base + "irq0: arm_smmu_device_reset()\n"), "smmuv3").returns[2] == contract.RESET_BUSY
    racing = parse(base + "iommu_attach_device(d0, sid=1)\npreempt(after=1, to=cpu1)\n"
                   "cpu1: arm_smmu_device_reset()\n")
    res = run_program(racing, ["smmuv3"])
    assert res.runs[0].returns[3] == contract.RESET_BUSY and not res.findings


def test_fault_the_variant_cannot_take():
    """fail_nth(pgtable) is not issued to a driver whose page table's allocation failure is not modelled."""
    prog = parse(CFG + "iommu_attach_device(d0, sid=0)\nfail_nth(pgtable, n=0)\nfail_nth(fq, n=0)\n")
    for v in ("gather:legacy:mtk", "gather:legacy:sun50i"):
        rets = run_variant(prog, v).returns
        assert rets[1] == contract.NO_FAULT, (v, rets)
    assert run_variant(prog, "smmuv3").returns[1:] == [None, None]


_SVA = (CFG + "iommu_attach_device(d0, sid=0)\niommu_sva_bind_device(sid=0, mm=0)\n"
        "set_ptes(mm=0, va=0x400000, paddr=0x80000000, size=0x3000, prot=RW)\n")


def test_sva_without_sva():
    """The SVA ops reach only variants whose driver models SVA: the invalidation-array driver skips them."""
    prog = parse(_SVA + "dev_dma_pasid(sid=0, pasid=1, iova=0x401000, write=1)\n")
    assert run_variant(prog, "invs:merged").returns[1:] == [contract.NO_SVA] * 3
    assert run_variant(prog, "smmuv3").returns[1:] == [1, None, None]


def test_unbind_of_no_handle():
    """iommu_sva_unbind_device() of a stream and mm never bound, or unbound as often as bound, is not issued."""
    prog = parse(_SVA + "iommu_sva_unbind_device(sid=1, mm=0)\niommu_sva_unbind_device(sid=0, mm=0)\n"
                 "iommu_sva_unbind_device(sid=0, mm=0)\n")
    assert run_variant(prog, "smmuv3").returns[3:] == [contract.NO_SVA_HANDLE, None, contract.NO_SVA_HANDLE]


def test_mm_range_outside():
    """Unaligned, empty or beyond-TASK_SIZE process ranges are skipped; flush_tlb_mm()'s [0, ULONG_MAX) is not."""
    prog = parse(_SVA + "ptep_get_and_clear(mm=0, va=0x400800, size=0x1000)\n"
                 "set_ptes(mm=0, va=0xfffffffff000, paddr=0x90000000, size=0x2000, prot=RW)\n"
                 "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x402000, end=0x402000)\n"
                 "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x0, end=0xffffffffffffffff)\n")
    assert run_variant(prog, "smmuv3").returns[3:] == [contract.MM_RANGE] * 3 + [None]


def test_mm_map_over_live():
    """set_ptes() over a present PTE, or one cleared and not yet flushed, is skipped; after the flush it is issued."""
    prog = parse(_SVA + "set_ptes(mm=0, va=0x402000, paddr=0x90000000, size=0x1000, prot=RW)\n"
                 "ptep_get_and_clear(mm=0, va=0x402000, size=0x1000)\n"
                 "set_ptes(mm=0, va=0x402000, paddr=0x90000000, size=0x1000, prot=RW)\n"
                 "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x402000, end=0x403000)\n"
                 "set_ptes(mm=0, va=0x402000, paddr=0x90000000, size=0x1000, prot=RW)\n")
    assert run_variant(prog, "smmuv3").returns[3:] == [contract.MM_OVER_LIVE, None, contract.MM_OVER_LIVE, None, None]
