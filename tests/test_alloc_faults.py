"""Failing allocations as part of a program (issue 18 item 1): fail_nth(kind, n) makes the n-th allocation of a
kind fail; iommu_map() unwinds a map whose table page could not be allocated (6.12 __iommu_map()), a planted core
that does not is caught, and a flush queue that cannot be allocated leaves the domain strict."""

import pytest

from smmufuzz.harness import contract
from smmufuzz.harness.codec import decode, encode
from smmufuzz.harness.program import ProgramSyntaxError, parse
from smmufuzz.harness.runner import run_program, run_variant
from smmufuzz.reference.alloc_faults import AllocFaults
from smmufuzz.reference.smmu import HwConfig, Smmu
from smmufuzz.variants.os_smmuv3 import SmmuV3Os

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
