"""Port of drivers/iommu/io-pgtable-arm-selftests.c (arm_lpae_run_tests / arm_lpae_do_selftests,
the "current" version of kernel-semantics.md §4.5) to the Python model ArmLpaeIoPgtable.

Kernel loops: pgsize sets {4K|2M|1G, 16K|32M, 64K|512M} x oas in {32,36,40,42,44,48} x ias <= oas
("Don't use ias > oas as it is not valid for stage-2"), fmts ARM_64_LPAE_S1 and _S2, coherent walk.

The kernel does not skip any size or iova for small IAS: with ias = 32 the biggest iova it touches
is 2G + 42 (empty check) and 2G + 1G - 1 (the third 4K-granule size, 1G, mapped at iova 2G), all
below 2^32.  The overlap test maps to paddr = iova + size, at most 3G < 2^32 = smallest oas.  We
assert these facts instead of silently skipping, so a change of the parameters cannot hide cases.
"""

import pytest

from smmufuzz.reference.lpae import geometry_for, walk
from smmufuzz.reference.smmu import HwConfig, Smmu
from smmufuzz.variants.io_pgtable_arm import (IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_READ, IOMMU_WRITE,
                                              PTE_SW_SYNC, ArmLpaeIoPgtable, PgtableCfg)

SZ_1G = 1 << 30
SZ_2G = 2 << 30
ADDRESS_SIZES = (32, 36, 40, 42, 44, 48)
# arm_lpae_do_selftests(): pgsize[] (the model derives the bitmap from the granule shift)
PGSIZES = {12: (1 << 12) | (1 << 21) | (1 << 30), 14: (1 << 14) | (1 << 25), 16: (1 << 16) | (1 << 29)}

RWX_CACHE = IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC | IOMMU_CACHE


class DummyTlb:
    """dummy_tlb_ops: WARN_ON(!(size & cfg->pgsize_bitmap)) on every flush, and record the calls."""

    def __init__(self, pgsize_bitmap: int):
        self.bitmap = pgsize_bitmap
        self.calls = []

    def tlb_flush_all(self):
        self.calls.append(("all",))

    def tlb_flush_walk(self, iova, size, granule):
        assert size & self.bitmap, f"tlb_flush_walk size {size:#x} not in bitmap {self.bitmap:#x}"
        self.calls.append(("walk", iova, size, granule))

    def tlb_add_page(self, gather, iova, granule):
        assert granule & self.bitmap, f"tlb_add_page granule {granule:#x} not in bitmap"
        self.calls.append(("page", iova, granule))


def set_bits(x: int):
    """for_each_set_bit()"""
    j = 0
    while x >> j:
        if (x >> j) & 1:
            yield j
        j += 1


def make_pgtable(pg_shift, ias, oas, stage, coherent=True):
    hw = Smmu(HwConfig(coherent=coherent))
    cfg = PgtableCfg(pg_shift=pg_shift, ias=ias, oas=oas, stage=stage, coherent_walk=coherent)
    tlb = DummyTlb(cfg.pgsize_bitmap)
    return hw, ArmLpaeIoPgtable(cfg, hw, tlb), tlb


CASES = [(pg_shift, ias, oas, stage)
         for pg_shift in (12, 14, 16)
         for j, oas in enumerate(ADDRESS_SIZES)
         for ias in ADDRESS_SIZES[:j + 1]
         for stage in (1, 2)]


def test_case_count_matches_kernel():
    # 3 pgsize sets x (6*7/2 = 21 (ias, oas) pairs with ias <= oas) x 2 formats
    assert len(CASES) == 3 * 21 * 2


@pytest.mark.parametrize("pg_shift", (12, 14, 16))
def test_model_pgsize_bitmap_matches_selftest_sets(pg_shift):
    assert PgtableCfg(pg_shift=pg_shift).pgsize_bitmap == PGSIZES[pg_shift]


@pytest.mark.parametrize("pg_shift,ias,oas,stage", CASES,
                         ids=[f"{1 << (p - 10)}K-ias{i}-oas{o}-s{s}" for p, i, o, s in CASES])
def test_arm_lpae_run_tests(pg_shift, ias, oas, stage):
    _hw, ops, tlb = make_pgtable(pg_shift, ias, oas, stage)
    bitmap = ops.cfg.pgsize_bitmap

    # Initial sanity checks: empty page tables shouldn't provide any translations.
    assert ops.iova_to_phys(42) == 0
    assert ops.iova_to_phys(SZ_1G + 42) == 0
    assert ops.iova_to_phys(SZ_2G + 42) == 0

    # Distinct mappings of different granule sizes.
    iova = 0
    for j in set_bits(bitmap):
        size = 1 << j
        assert iova + size <= 1 << ias and iova + 2 * size <= 1 << oas   # see module docstring
        ret, mapped = ops.map_pages(iova, iova, size, 1, RWX_CACHE)
        assert ret == 0, f"map of size {size:#x} at {iova:#x} failed with {ret}"
        assert mapped == size
        # Overlapping mappings must fail (and map nothing)
        ret, mapped = ops.map_pages(iova, iova + size, size, 1, IOMMU_READ | IOMMU_NOEXEC)
        assert ret != 0, f"overlapping map of size {size:#x} at {iova:#x} succeeded"
        assert mapped == 0
        assert ops.iova_to_phys(iova + 42) == iova + 42
        iova += SZ_1G

    # Full unmap
    iova = 0
    for j in set_bits(bitmap):
        size = 1 << j
        assert ops.unmap_pages(iova, size, 1, None) == size
        assert ops.iova_to_phys(iova + 42) == 0
        # Remap full block
        ret, mapped = ops.map_pages(iova, iova, size, 1, IOMMU_WRITE)
        assert ret == 0 and mapped == size
        assert ops.iova_to_phys(iova + 42) == iova + 42
        iova += SZ_1G

    # Map/unmap the last largest supported page of the IAS (concatenated-PGD corner cases).
    size = 1 << (bitmap.bit_length() - 1)          # 1UL << __fls(pgsize_bitmap)
    iova = (1 << ias) - size
    ret, mapped = ops.map_pages(iova, iova, size, 1, RWX_CACHE)
    assert ret == 0
    assert mapped == size
    assert ops.iova_to_phys(iova + 42) == iova + 42
    assert ops.unmap_pages(iova, size, 1, None) == size
    assert ops.iova_to_phys(iova + 42) == 0

    # No table was ever replaced (no flush_walk) and a NULL gather never reaches tlb_add_page.
    assert tlb.calls == []
    ops.free()


@pytest.mark.parametrize("pg_shift,ias,stage", [(12, 48, 1), (12, 40, 2), (14, 48, 2), (16, 42, 1)])
def test_start_level_matches_reference_geometry(pg_shift, ias, stage):
    """The walker geometry used by the SMMU (STE side) is the one io-pgtable programs."""
    _hw, ops, _tlb = make_pgtable(pg_shift, ias, 48, stage)
    geo = geometry_for(pg_shift, ias, stage)
    assert geo.start_level == ops.start_level
    assert geo.pgd_bits == ops.pgd_bits


def test_s2_concatenation_hand_computed():
    # 4K, ias 40: va_bits 28 -> 4 levels, pgd_bits 1 (2 entries <= 16) -> S2 concatenates at level 1
    # with 2 * 512 entries (pgd_bits 10).  S1 keeps the level-0 start.
    _hw, s1, _ = make_pgtable(12, 40, 48, 1)
    _hw, s2, _ = make_pgtable(12, 40, 48, 2)
    assert (s1.start_level, s1.pgd_bits) == (0, 1)
    assert (s2.start_level, s2.pgd_bits) == (1, 10)
    # 4K, ias 44: pgd_bits 5 -> 32 entries > 16 -> no concatenation
    _hw, s2, _ = make_pgtable(12, 44, 48, 2)
    assert (s2.start_level, s2.pgd_bits) == (0, 5)


def test_replacing_table_by_block_flushes_walk():
    """arm_lpae_init_pte(): a block over a (leaf-free) table frees it after a synchronous flush_walk."""
    _hw, ops, tlb = make_pgtable(12, 48, 48, 1)
    assert ops.map_pages(0x200000, 0x200000, 0x1000, 1, IOMMU_READ)[0] == 0
    assert ops.unmap_pages(0x200000, 0x1000, 1, None) == 0x1000
    ret, mapped = ops.map_pages(0x200000, 0x40000000, 0x200000, 1, IOMMU_READ)
    assert (ret, mapped) == (0, 0x200000)
    assert tlb.calls == [("walk", 0x200000, 0x200000, 0x1000)]
    assert ops.iova_to_phys(0x200000 + 0x1234) == 0x40000000 + 0x1234


# ---- non-coherent walks: the SMMU must see each PTE once map_pages returns ---------------------

NC_CASES = [(12, 48, 1), (12, 40, 2), (14, 36, 1), (14, 48, 2), (16, 42, 2), (16, 32, 1)]


@pytest.mark.parametrize("pg_shift,ias,stage", NC_CASES)
def test_noncoherent_map_visible_to_smmu(pg_shift, ias, stage):
    hw, ops, _tlb = make_pgtable(pg_shift, ias, 48, stage, coherent=False)
    geo = geometry_for(pg_shift, ias, stage)
    read = hw.mem.smmu_read
    iova = 0
    expected = []
    for j in set_bits(ops.cfg.pgsize_bitmap):
        size = 1 << j
        pa = 0x8000_0000 + iova                     # distinct from iova so a wrong PA shows
        ret, mapped = ops.map_pages(iova, pa, size, 1, IOMMU_READ | IOMMU_WRITE)
        assert (ret, mapped) == (0, size)
        expected.append((iova, size, pa))
        iova += SZ_1G
    for iova, size, pa in expected:
        leaf, _steps = walk(read, geo, ops.pgd, stage, iova + 42)
        assert leaf is not None, f"SMMU cannot see the PTE for {iova:#x} (size {size:#x})"
        assert (leaf.va, leaf.span, leaf.pa, leaf.perms) == (iova, size, pa, "rw")
    # after unmap the SMMU's view no longer holds the leaf (the clear is cleaned too)
    for iova, size, _pa in expected:
        assert ops.unmap_pages(iova, size, 1, None) == size
        assert walk(read, geo, ops.pgd, stage, iova + 42)[0] is None
    # Whatever is still dirty in the CPU cache may differ from the PoC only by the software bit
    # ARM_LPAE_PTE_SW_SYNC, set after the table PTE was cleaned (arm_lpae_install_table()).
    mem = hw.mem
    for line in mem.dirty_lines():
        for a in range(line, line + 64, 8):
            assert mem.cpu_read(a) ^ mem.poc.get(a, 0) in (0, PTE_SW_SYNC), f"uncleaned PTE at {a:#x}"


def test_noncoherent_memory_hides_uncleaned_ptes():
    """Control for the test above: with a walker that really does not snoop and a page table that
    believes it is coherent (no cleans), the SMMU view must NOT see the mapping."""
    hw = Smmu(HwConfig(coherent=False))
    cfg = PgtableCfg(pg_shift=12, ias=48, oas=48, stage=1, coherent_walk=True)
    ops = ArmLpaeIoPgtable(cfg, hw, DummyTlb(cfg.pgsize_bitmap))
    assert ops.map_pages(0x1000, 0x8000_1000, 0x1000, 1, IOMMU_READ) == (0, 0x1000)
    assert ops.iova_to_phys(0x1000) == 0x8000_1000          # the CPU view has it
    assert walk(hw.mem.smmu_read, geometry_for(12, 48, 1), ops.pgd, 1, 0x1000)[0] is None
    assert hw.mem.dirty_lines()                               # and it is sitting in dirty lines


def test_partial_unmap_of_block_is_refused():
    """Since 33729a5fc0ca __arm_lpae_unmap() does `WARN_ONCE(true, "Unmap of a partial large IOPTE is
    not allowed"); return 0;` (the selftests' old "partial unmap" case was deleted with it).  NB:
    kernel-semantics.md §4.3 says the whole block is removed and its size returned; the kernel
    source (and the model) return 0 and leave the block in place."""
    _hw, ops, tlb = make_pgtable(12, 48, 48, 1)
    assert ops.map_pages(0x200000, 0x200000, 0x200000, 1, IOMMU_READ) == (0, 0x200000)
    assert ops.unmap_pages(0x201000, 0x1000, 1, None) == 0
    assert ops.iova_to_phys(0x201000) == 0x201000
    assert tlb.calls == []
