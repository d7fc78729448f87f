"""Failing allocations as part of a program (issue 18 item 1): fail_nth(kind, n) makes the n-th allocation of a
kind fail; iommu_map() unwinds a map whose table page could not be allocated (6.12 __iommu_map()), a planted core
that does not is caught, and a flush queue that cannot be allocated leaves the domain strict."""

import pytest

from smmufuzz.prog import contract
from smmufuzz.prog.codec import KIND_CODE, decode, encode
from smmufuzz.prog.ops import ALLOC_KINDS
from smmufuzz.prog.program import ProgramSyntaxError, parse
from smmufuzz.exec.runner import _fault_taken_apart, run_program, run_variant
from smmufuzz.reference.alloc_faults import AllocFaults
from smmufuzz.reference.smmu import HwConfig, Smmu
from smmufuzz.variants.os_smmuv3 import SmmuV3Os
from smmufuzz.variants.registry import VARIANTS

CFG = "config(granule=4K, ias=48, stage=1)\niommu_attach_device(d0, sid=0)\n"
# a fresh 4K domain maps 0x1ff000 through three new tables (levels 1-3); 0x200000 needs a fourth
CROSSING = "iommu_map(d0, iova=0x1ff000, paddr=0x80000000, size=0x2000, prot=RW)\n"


def test_the_nth_allocation_of_a_kind_fails_once():
    f = AllocFaults()
    f.arm("pgtable", 2)
    assert [f.fails("fq")] + [f.fails("pgtable") for _ in range(4)] == [False, False, False, True, False]


def test_fail_nth_round_trips_and_rejects_bad_values():
    prog = parse(CFG + "fail_nth(fq, n=7)\nfail_nth(pgtable, n=0)\n")
    assert "fail_nth(fq, n=7)" in prog.text() and decode(encode(prog)) == prog
    with pytest.raises(ProgramSyntaxError, match="n must be 0..7"):
        parse(CFG + "fail_nth(pgtable, n=8)\n")
    with pytest.raises(ProgramSyntaxError, match="expected one of pgtable, fq|unexpected argument"):
        parse(CFG + "fail_nth(slab, n=1)\n")


@pytest.mark.parametrize("n,ret", [(0, -12), (2, -12), (3, -12), (4, 0)])
@pytest.mark.parametrize("variant", ["smmuv3", "invs:merged", "gather:legacy:arm-smmu", "pte-sync:eager"])
def test_a_map_that_runs_out_of_table_pages_leaves_nothing_mapped(variant, n, ret):
    prog = parse(CFG + f"fail_nth(pgtable, n={n})\n" + CROSSING + "dev_dma(sid=0, iova=0x1ff000, write=0)\n")
    res = run_program(prog, [variant])
    assert res.runs[0].returns[2] == ret and not res.findings


def test_a_core_that_does_not_unwind_leaves_the_first_page_mapped():
    prog = parse(CFG + "fail_nth(pgtable, n=3)\n" + CROSSING)
    found = run_program(prog, ["smmuv3:map-no-unwind"]).findings
    assert [f.kind for f in found] == ["WRONG_PA"] and "0x1ff000" in found[0].message
    assert not run_program(parse(CFG + CROSSING), ["smmuv3:map-no-unwind"]).findings


@pytest.mark.parametrize("fail,ret", [(False, None), (True, -12)])
def test_a_flush_queue_that_cannot_be_allocated_leaves_the_domain_strict(fail, ret):
    prog = parse(CFG + "dma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)\n" + ("fail_nth(fq, n=0)\n" if fail else "")
                 + "iommu_dma_init_fq(d0)\ndma_unmap(handle=0)\ndma_map(d0, paddr=0x90000000, size=0x1000, prot=RW)\n")
    run = run_variant(prog, "smmuv3")
    rets = run.returns[1:]
    assert run.finding is None and rets[-3] == ret
    # strict: the unmapped IOVA is free at once and handed out again; DMA-FQ keeps it in the queue
    assert (rets[-1] == rets[0]) == fail


def test_kernel_c_variants_and_their_models_skip_it():
    for attrs in ({"KERNEL_BUILD": "base"}, {"KERNEL_TREE": True}):
        os_ = type("X", (SmmuV3Os,), attrs)(Smmu(HwConfig()), 12, 48, 48, 1)
        assert not os_.alloc_can_fail("pgtable") and not os_.alloc_can_fail("fq")
    assert SmmuV3Os(Smmu(HwConfig()), 12, 48, 48, 1).alloc_can_fail("pgtable")
    assert contract.NO_FAULT.startswith("skipped")


# ---- the invalidation array's allocations (seed 002) and IOVA exhaustion ------------------------------------------

ATTACH_SECOND = ("iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                 "fail_nth(invs, n=0)\niommu_attach_device(d0, sid=1)\n"
                 "iommu_unmap(d0, iova=0x200000, size=0x1000)\ndev_dma(sid=0, iova=0x200000, write=0)\n")
# two ATS streams on d0 ([ASID, ATS sid0, ATS sid1]): detaching sid 0 leaves trash mid-array, for the purge
PURGE = ("config(granule=4K, ias=48, stage=1, ats=1)\npci_ats(sid=0, on=1)\npci_ats(sid=1, on=1)\n"
         "iommu_attach_device(d0, sid=0)\niommu_attach_device(d0, sid=1)\n"
         "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
         "fail_nth(invs, n=0)\niommu_detach_device(sid=0)\n"
         "iommu_unmap(d0, iova=0x200000, size=0x1000)\ndev_dma(sid=1, iova=0x200000, write=0)\n")
CORRECT_INVS = ["invs:v9", "invs:merged", "invs:merged-refcount", "invs:v9:2smmu", "invs:merged:2smmu"]


def test_new_kinds_round_trip_and_old_inputs_keep_their_kind():
    prog = parse(CFG + "fail_nth(invs, n=1)\nfail_nth(iova, n=0)\n")
    assert "fail_nth(invs, n=1)" in prog.text() and decode(encode(prog)) == prog
    data = encode(parse(CFG + "fail_nth(fq, n=0)\n"))
    kind_at = data.index(bytes([KIND_CODE["fail_alloc"]]), 5) + 1
    for byte in range(256):       # a format-6 input chose among the first two kinds; format 7 among all four
        raw = bytearray(data)
        raw[kind_at] = byte
        assert decode(bytes(raw)).ops[-1].args[0] == ALLOC_KINDS[byte % 4]
        raw[1] = 6
        assert decode(bytes(raw)).ops[-1].args[0] == ALLOC_KINDS[byte % 2]


def _arrays(prog, variant) -> list:
    """After each op: each domain's published array (its object and entries) and each master's domain."""
    seen = []

    def probe(ex, i, op, ret):
        drivers = getattr(ex.os, "drivers", [ex.os.driver])
        seen.append(({d: (id(dom.priv.invs), dom.priv.invs.text(), dom.priv.invs.num_trashes)
                      for d, dom in ex.os.domains.items()},
                     {m.sid: m.domain.asid for drv in drivers for m in drv.masters.values() if m.domain}))
    return run_variant(prog, variant, probe=probe), seen


@pytest.mark.parametrize("variant", CORRECT_INVS)
def test_a_merge_that_cannot_allocate_fails_the_attach_and_changes_nothing(variant):
    run, seen = _arrays(parse(CFG + ATTACH_SECOND), variant)
    assert run.finding is None and run.returns[3] == -12 and run.returns[4] == 0x1000
    assert seen[3] == seen[2] and "users 1" in seen[3][0][0][1]


@pytest.mark.parametrize("variant", CORRECT_INVS)
def test_a_failed_attach_leaves_the_stream_on_its_old_domain(variant):
    """The core re-attaches the group's domain (err_revert): the old domain's unmaps still reach the stream."""
    prog = parse("config(granule=4K, ias=48, stage=1)\niommu_attach_device(d1, sid=1)\n"
                 "iommu_map(d1, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                 "iommu_attach_device(d0, sid=0)\nfail_nth(invs, n=0)\niommu_attach_device(d0, sid=1)\n"
                 "dev_dma(sid=1, iova=0x200000, write=0)\niommu_unmap(d1, iova=0x200000, size=0x1000)\n"
                 "dev_dma(sid=1, iova=0x200000, write=0)\n")
    run = run_variant(prog, variant)
    assert run.finding is None and run.returns[4] == -12 and run.returns[6] == 0x1000


def test_an_error_path_that_unrefs_what_the_merge_never_took_misses_an_invalidation():
    found = run_program(parse(CFG + ATTACH_SECOND), ["invs:merge-fail-unref"]).findings
    assert [f.kind for f in found] == ["MISSED_INVALIDATION"] and "sid 0" in found[0].message
    assert not run_program(parse(CFG + ATTACH_SECOND.replace("fail_nth(invs, n=0)\n", "")),
                           ["invs:merge-fail-unref"]).findings


@pytest.mark.parametrize("variant", ["invs:v9", "invs:merged", "invs:merged-refcount", "invs:merge-fail-unref"])
def test_a_purge_that_cannot_allocate_keeps_the_old_array(variant):
    run, seen = _arrays(parse(PURGE), variant)
    assert run.finding is None and run.returns[-2] == 0x1000
    before, (after, masters) = seen[5][0][0], seen[6]            # d0's array before and after the detach
    assert after[0][0] == before[0] and after[0][2] == 1 and "ATS 0 ssid 0 users 0, smmu0 ATS 1 ssid 0 users 1" in after[0][1]
    assert 0 not in masters and masters[1] == 1
    _, clean = _arrays(parse(PURGE.replace("fail_nth(invs, n=0)\n", "")), variant)
    assert clean[5][0][0][0] != clean[4][0][0][0] and clean[5][0][0][2] == 0    # without the fault: a new array


def test_v9_as_posted_publishes_the_purge_error_pointer():
    run = run_variant(parse(PURGE), "invs:v9-purge-errptr")
    assert run.finding.kind == "CRASH" and "ERR_PTR(-12)" in run.finding.message
    assert run_variant(parse(PURGE.replace("fail_nth(invs, n=0)\n", "")), "invs:v9-purge-errptr").finding is None


def test_the_invs_target_compares_up_to_a_fault_only_some_variants_model():
    prog = parse(CFG + ATTACH_SECOND)
    res = run_program(prog, ["smmuv3", "invs:v9", "invs:merged", "invs:merged-refcount"])
    assert res.runs[0].returns[2] == contract.NO_FAULT and res.runs[1].returns[3] == -12 and not res.findings
    assert _fault_taken_apart(res.runs) == 2 and _fault_taken_apart(res.runs[1:]) == len(prog.ops)


DMA_REUSE = (CFG + "iommu_dma_init_fq(d0)\ndma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)\n"
             "dev_dma(sid=0, iova=0x100000, write=0)\ndma_unmap(handle=0)\nfail_nth(iova, n=0)\n"
             "dma_map(d0, paddr=0x90000000, size=0x1000, prot=RW)\ndev_dma(sid=0, iova=0x100000, write=0)\n")


@pytest.mark.parametrize("variant", ["smmuv3", "invs:merged", "pt-fq:B"])
def test_an_exhausted_iova_space_fails_the_map_with_nothing_mapped(variant):
    run = run_variant(parse(DMA_REUSE), variant)
    assert run.finding is None and run.returns[-2] == -12


def test_reclaiming_queued_iovas_before_their_flush_reuses_a_stale_iova():
    found = run_program(parse(DMA_REUSE), ["smmuv3:iova-reclaim-unflushed"]).findings
    assert [f.kind for f in found] == ["IOVA_REUSE"]
    assert not run_program(parse(DMA_REUSE.replace("fail_nth(iova, n=0)\n", "")),
                           ["smmuv3:iova-reclaim-unflushed"]).findings


def test_only_the_array_variants_take_invs_faults():
    hw = Smmu(HwConfig())
    assert not SmmuV3Os(hw, 12, 48, 48, 1).alloc_can_fail("invs") and SmmuV3Os(hw, 12, 48, 48, 1).alloc_can_fail("iova")
    assert VARIANTS["invs:merged"].factory(Smmu(HwConfig()), 12, 48, 48, 1).alloc_can_fail("invs")
