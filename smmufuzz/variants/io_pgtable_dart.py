"""io-pgtable-dart: Apple DART page tables, DART2 encoding, 16K pages, two levels under the TTBR
(drivers/iommu/io-pgtable-dart.c). No cfg->tlb: apple-dart gets no TLB callbacks."""

from .gather import add_range, queued
from .io_pgtable_arm import EEXIST, EINVAL, ERANGE, IOMMU_READ, IOMMU_WRITE

PG_SHIFT = 14
BPL = 11
PTE_VALID = 1
PTE_NO_CACHE, PTE_NO_WRITE, PTE_NO_READ = 1 << 1, 1 << 2, 1 << 3
PTE_SUBPAGE_END = 0xFFF << 40


def paddr_to_iopte(pa: int) -> int:
    """DART2: PA[41:14] in pte[37:10]."""
    return (pa >> 4) & (((1 << 28) - 1) << 10)


def iopte_to_paddr(pte: int) -> int:
    return ((pte >> 10) & ((1 << 28) - 1)) << 14


class DartIoPgtable:
    """struct dart_io_pgtable with dart_map_pages / dart_unmap_pages."""

    def __init__(self, hw, ias: int = 36, oas: int = 42):
        self.hw, self.mem = hw, hw.mem
        self.ias, self.oas = ias, oas
        self.pgsize_bitmap = 1 << PG_SHIFT
        self.ptes_per_table = 1 << BPL
        self.pgd = self.mem.alloc_pages(8 << BPL)
        self.jason = 0

    @staticmethod
    def index(iova: int, lvl: int) -> int:
        """dart_get_index(): level 1 = the table under the TTBR, level 2 = leaves."""
        return (iova >> (PG_SHIFT + (2 - lvl) * BPL)) & ((1 << BPL) - 1)

    def rd(self, p: int) -> int:
        return self.mem.cpu_read(p)

    def prot_to_pte(self, prot: int) -> int:
        """dart_prot_to_pte() (DART2)."""
        pte = 0
        if not prot & IOMMU_WRITE:
            pte |= PTE_NO_WRITE
        if not prot & IOMMU_READ:
            pte |= PTE_NO_READ
        return pte

    def _leaf_table(self, iova: int, alloc: bool) -> int | None:
        """dart_get_last() / the allocating walk of dart_map_pages(); an IOVA above the IAS selects no
        TTBR (the `tbl >= (1 << tbl_bits)` check)."""
        if iova >> self.ias:
            return None
        p = self.pgd + 8 * self.index(iova, 1)
        pte = self.rd(p)
        if not pte:
            if not alloc:
                return None
            t = self.mem.alloc_pages(8 << BPL)
            self.mem.cpu_write(p, paddr_to_iopte(t) | PTE_VALID)
            pte = self.rd(p)
        return iopte_to_paddr(pte)

    def iova_to_phys(self, iova: int) -> int:
        """dart_iova_to_phys(): the leaf's address plus the offset into the page; 0 without a leaf."""
        tbl = self._leaf_table(iova, False)
        pte = self.rd(tbl + 8 * self.index(iova, 2)) if tbl is not None else 0
        return iopte_to_paddr(pte) | (iova & ((1 << PG_SHIFT) - 1)) if pte else 0

    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        """dart_map_pages(): at most to the end of the leaf table."""
        if pgsize != self.pgsize_bitmap:
            return -EINVAL, 0
        if paddr >> self.oas or iova >> self.ias:
            return -ERANGE, 0
        if not prot & (IOMMU_READ | IOMMU_WRITE):
            return -EINVAL, 0
        self.hw.tick()
        tbl = self._leaf_table(iova, True)
        idx = self.index(iova, 2)
        n = min(pgcount, self.ptes_per_table - idx)
        p = tbl + 8 * idx
        if any(self.rd(p + 8 * i) & PTE_VALID for i in range(n)):
            return -EEXIST, 0
        pte = self.prot_to_pte(prot) | PTE_SUBPAGE_END | PTE_VALID
        for i in range(n):
            self.mem.cpu_write(p + 8 * i, pte | paddr_to_iopte(paddr + i * pgsize))
        return 0, n * pgsize

    def unmap_pages(self, iova: int, pgsize: int, pgcount: int, gather) -> int:
        """dart_unmap_pages(): clears up to the end of the leaf table, stops at a hole; tables stay."""
        if pgsize != self.pgsize_bitmap or not pgcount:
            return 0
        self.hw.tick()
        tbl = self._leaf_table(iova, False)
        if tbl is None:
            return 0
        idx = self.index(iova, 2)
        n = min(pgcount, self.ptes_per_table - idx)
        p = tbl + 8 * idx
        i = 0
        while i < n:
            if not self.rd(p + 8 * i):
                break
            self.mem.cpu_write(p + 8 * i, 0)
            i += 1          # io_pgtable_tlb_add_page(): no cfg->tlb, nothing
        if self.jason and i and not queued(gather):      # Jason v1/v2 hunk
            add_range(gather, iova, i * pgsize)
        return i * pgsize
