"""arm_smmu_device_reset() as a program op (issue 18 item 7): another owner's cache entries (reference/handover.py)
are removed by the reset's CFGI_ALL, TLBI_EL2_ALL and TLBI_NSNH_ALL; each planted reset that forgets one is
caught, the one without TLBI_EL2_ALL only where the kernel runs at EL2 (e2h=1)."""

import pytest

from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.reference.handover import FOREIGN_PA, leave_foreign_entries
from tests.test_emulator_commands import Tables, attach, rig

PROG = """config(granule=4K, ias=48, stage={stage}, e2h={e2h})
iommu_attach_device(d0, sid=0)
iommu_attach_device(d1, sid=1)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
iommu_map(d1, iova=0x400000, paddr=0x90000000, size=0x200000, prot=RW)
arm_smmu_device_reset()
iommu_unmap(d0, iova=0x200000, size=0x1000)
dev_dma(sid=0, iova=0x200000, write=0)
"""
CONFIGS = [(1, 0), (1, 1), (2, 0)]


def _kinds(variant, stage, e2h):
    return [f.kind for f in run_program(parse(PROG.format(stage=stage, e2h=e2h)), [variant]).findings]


def test_another_owner_leaves_stes_and_translations_under_our_tags():
    smmu = rig()
    attach(smmu, 0, Tables(smmu).map(0x1000))
    smmu.fill_all()
    leave_foreign_entries(smmu)
    assert len(smmu.configs(0)) == 2
    assert {k[3] for k in smmu.tlb} == {0x8000_1000, 0x8000_1000 ^ FOREIGN_PA}
    assert {k[0] for k in smmu.tlb} == {s.tag for s in smmu.configs(0)}


@pytest.mark.parametrize("stage,e2h", CONFIGS)
@pytest.mark.parametrize("variant", ["smmuv3", "invs:merged", "invs:v9", "invs:merged:2smmu"])
def test_correct_resets_leave_nothing_behind(variant, stage, e2h):
    assert _kinds(variant, stage, e2h) == []


@pytest.mark.parametrize("stage,e2h", CONFIGS)
def test_a_reset_without_cfgi_all_keeps_the_other_owners_ste(stage, e2h):
    assert _kinds("smmuv3:reset-no-cfgi", stage, e2h) == ["MISSED_INVALIDATION"]


@pytest.mark.parametrize("stage,e2h,found", [(1, 0, False), (1, 1, True), (2, 0, False)])
def test_a_reset_without_tlbi_el2_all_matters_only_at_el2(stage, e2h, found):
    assert _kinds("smmuv3:reset-no-el2", stage, e2h) == (["WRONG_PA"] if found else [])


@pytest.mark.parametrize("variant", ["smmuv3", "invs:merged", "pte-sync:eager"])
def test_no_ats_answer_comes_from_the_other_owners_entries(variant):
    """The SMMU stays disabled (SMMUEN=0) from the handover until the reset enables it: nothing is filled, so an
    ATS endpoint's ATC never holds the other owner's translations (a campaign found our first model did)."""
    prog = parse("config(granule=4K, ias=48, stage=1, ats=1)\niommu_attach_device(d0, sid=3)\npci_ats(sid=3, on=1)\n"
                 "iommu_map_sg(d0, iova=0x0, sg=[0x14000b000+0x203000], prot=RW)\ncpu1: arm_smmu_device_reset()\n"
                 "ats_translate(sid=3, iova=0x0)\ndev_dma(sid=3, iova=0x1000, write=1)\n")
    assert not run_program(prog, [variant]).findings
