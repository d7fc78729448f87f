"""Op-level minimisation keeps the finding's signature and removes what does not matter."""

import os

import tests.broken_variants  # noqa: F401
from smmufuzz.prog.load import load_program
from smmufuzz.fuzz.minimize import minimize
from smmufuzz.prog.program import parse

HERE = os.path.dirname(__file__)


def test_noise_ops_are_removed_and_the_signature_kept():
    prog = parse("""config(granule=16K, ias=40, stage=2, coherent=1, range_inv=1, ats=1, e2h=0)
iommu_attach_device(d1, sid=3)
iommu_map(d1, iova=0x4000000, paddr=0x90000000, size=0x8000, prot=RW)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x4000, prot=RW)
hw_writeback(all)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_unmap(d1, iova=0x4000000, size=0x8000)
iommu_unmap(d0, iova=0x200000, size=0x4000)
""")
    small, finding = minimize(prog, ["test-no-iotlb-sync"])
    assert finding.kind == "MISSED_INVALIDATION"
    assert [op.kind for op in small.ops] == ["attach", "map", "unmap"]
    assert small.config.stage == 1 and not small.config.range_inv and not small.config.ats


def test_program_without_finding_is_refused():
    prog, _ = load_program(os.path.join(HERE, "programs", "missed_invalidation.txt"))
    try:
        minimize(prog, ["smmuv3"])
    except ValueError:
        return
    raise AssertionError("minimize accepted a clean program")
