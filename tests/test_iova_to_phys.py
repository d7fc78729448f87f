"""iommu_iova_to_phys, the op added to show that a new op kind is one line of the op table (ops.py), one op
model (op_models.py) and its kernel models (each page table's iova_to_phys): it prints, parses, encodes,
runs on every driver family, and a wrong answer is a finding."""

import pytest

from smmufuzz.prog.codec import FORMAT_MAGIC, decode, encode
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_variant
from smmufuzz.variants.os_smmuv3 import SmmuV3Os

PROG = """config(granule={g}, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size={size}, prot=RW)
iommu_iova_to_phys(d0, iova=0x200123)
iommu_iova_to_phys(d0, iova={far})
iommu_unmap(d0, iova=0x200000, size={size})
iommu_iova_to_phys(d0, iova=0x200123)
"""


@pytest.mark.parametrize("variant, g, size", [
    ("smmuv3", "4K", 0x1000), ("smmuv3", "4K", 0x200000), ("gather:legacy:mtk", "4K", 0x10000),
    ("gather:legacy:msm", "4K", 0x100000), ("gather:legacy:sun50i", "4K", 0x1000), ("gather:legacy:sprd", "4K", 0x1000),
    ("gather:legacy:dart", "16K", 0x4000), ("gather:legacy:virtio", "4K", 0x1000), ("gather:legacy:ipmmu", "4K", 0x1000),
])
def test_every_driver_family_answers_from_its_table(variant, g, size):
    prog = parse(PROG.format(g=g, size=hex(size), far=hex(0x200000 + 4 * size)))
    assert parse(prog.text()) == prog and decode(encode(prog)) == prog
    assert encode(prog)[0] == FORMAT_MAGIC
    run = run_variant(prog, variant)
    assert run.finding is None, run.finding.text()
    # sprd_iommu_iova_to_phys() reads the entry without a validity check: an unmapped page gives its offset
    gone = 0x123 if "sprd" in variant else 0
    assert run.returns[2:] == [0x80000123, 0, size, gone], run.returns


def test_a_wrong_answer_is_a_finding(monkeypatch):
    prog = parse(PROG.format(g="4K", size="0x1000", far="0x300000"))
    monkeypatch.setattr(SmmuV3Os, "iova_to_phys", lambda self, dom, iova: 0x90000123)
    run = run_variant(prog, "smmuv3")
    assert run.finding is not None and run.finding.kind == "WRONG_PA" and run.finding.op_index == 2
    assert "returned 0x90000123" in run.finding.message and "mapped to 0x80000123" in run.finding.message


def test_format_1_inputs_keep_their_meaning():
    """An input without the version byte is read with the 18 kinds of format 1: opcode 39 is still
    iommu_dma_init_fq there (in format 2 the table has 41 opcodes, and 40 is iommu_iova_to_phys)."""
    assert decode(bytes([0, 4, 39, 0])).ops[0].kind == "dma_enable_fq"
    assert decode(bytes([FORMAT_MAGIC, 2, 0, 4, 40, 0, 0])).ops[0].kind == "iova_to_phys"
