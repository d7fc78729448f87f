"""Port of arm_v7s_do_selftests() (drivers/iommu/io-pgtable-arm-v7s.c) to the Python v7s model, with the
emulator's v7s walker as iova_to_phys; plus the partial-large-IOPTE refusal and contiguous entries."""

import pytest

from smmufuzz.reference.formats import V7s
from smmufuzz.reference.smmu import HwConfig, Smmu
from smmufuzz.variants.io_pgtable_arm import IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE
from smmufuzz.variants.io_pgtable_arm_v7s import ArmV7sIoPgtable

SIZES = [1 << 12, 1 << 16, 1 << 20, 1 << 24]


class _Tlb:
    def __init__(self):
        self.calls = []

    def tlb_flush_all(self):
        self.calls.append(("all",))

    def tlb_flush_walk(self, iova, size, granule):
        self.calls.append(("walk", iova, size, granule))

    def tlb_add_page(self, gather, iova, granule):
        self.calls.append(("page", iova, granule))


def _new(coherent=True, no_perms=False):
    hw = Smmu(HwConfig(coherent=coherent))
    tlb = _Tlb()
    return hw, ArmV7sIoPgtable(hw, tlb, coherent=coherent, no_perms=no_perms, ns=True), tlb


def _phys(hw, pt, iova, no_perms=False):
    leaf, _ = V7s(no_perms=no_perms).walk(hw.mem, pt.pgd, 1, iova)
    return None if leaf is None else leaf.pa + (iova - leaf.va)


def test_selftest_sequence():
    hw, pt, _tlb = _new()
    prot = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE
    for iova in (42, 1 << 30, (2 << 30) + 42):
        assert _phys(hw, pt, iova) is None                    # empty page table
    iova = 0
    for size in SIZES:                                        # map every size, 16M apart
        assert pt.map_pages(iova, iova, size, 1, prot) == (0, size)
        assert pt.map_pages(iova, iova + size, size, 1, IOMMU_READ)[0] != 0   # overlap fails
        assert _phys(hw, pt, iova + 42) == iova + 42
        iova += 1 << 24
    iova = 0
    for size in SIZES:                                        # unmap with a NULL gather, then remap
        assert pt.unmap_pages(iova, size, 1, None) == size
        assert _phys(hw, pt, iova + 42) is None
        assert pt.map_pages(iova, iova, size, 1, prot) == (0, size)
        assert _phys(hw, pt, iova + 42) == iova + 42
        iova += 1 << 24


@pytest.mark.parametrize("size, lvl", [(1 << 16, 2), (1 << 24, 1)])
def test_contiguous_entries_are_sixteen_identical_ptes(size, lvl):
    hw, pt, _ = _new()
    assert pt.map_pages(size, 0x8000_0000, size, 1, IOMMU_READ | IOMMU_WRITE) == (0, size)
    if lvl == 1:
        base = pt.pgd + 4 * (size >> 20)
    else:
        base = (hw.mem.cpu_read(pt.pgd + 4 * (size >> 20)) & 0xFFFFFC00) + 4 * ((size >> 12) & 0xFF)
    ptes = {hw.mem.cpu_read(base + 4 * i) for i in range(16)}
    assert len(ptes) == 1 and ptes.pop()
    assert _phys(hw, pt, size + size - 1) == 0x8000_0000 + size - 1


@pytest.mark.parametrize("big, small", [(1 << 16, 1 << 12), (1 << 24, 1 << 20), (1 << 20, 1 << 12)])
def test_partial_unmap_of_a_large_iopte_is_refused(big, small):
    hw, pt, tlb = _new()
    assert pt.map_pages(0, 0x8000_0000, big, 1, IOMMU_READ)[0] == 0
    assert pt.unmap_pages(0, small, 1, None) == 0
    assert _phys(hw, pt, 0) == 0x8000_0000
    assert pt.unmap_pages(0, big, 1, None) == big
    pages = [c for c in tlb.calls if c[0] == "page"]
    # tlb_add_page once per entry: 16 for a contiguous entry, 1 for a section
    assert len(pages) == (16 if big in (1 << 16, 1 << 24) else 1)


def test_read_only_mapping_is_read_only_unless_no_perms():
    hw, pt, _ = _new()
    pt.map_pages(0, 0x8000_0000, 1 << 12, 1, IOMMU_READ)
    leaf, _ = V7s().walk(hw.mem, pt.pgd, 1, 0)
    assert leaf.perms == "r"
    hw, pt, _ = _new(no_perms=True)
    pt.map_pages(0, 0x8000_0000, 1 << 12, 1, IOMMU_READ)
    leaf, _ = V7s(no_perms=True).walk(hw.mem, pt.pgd, 1, 0)
    assert leaf.perms == "rw"


def test_non_coherent_walker_sees_cleaned_ptes_only():
    hw, pt, _ = _new(coherent=False)
    assert pt.map_pages(0x10_0000, 0x9000_0000, 1 << 12, 1, IOMMU_READ | IOMMU_WRITE)[0] == 0
    assert _phys(hw, pt, 0x10_0000) == 0x9000_0000             # leaf and table PTE were cleaned
    hw.mem.cpu_write(pt.pgd + 4 * 0x3, 0x8030_0002)             # a section written but not cleaned
    assert _phys(hw, pt, 0x30_0000) is None
