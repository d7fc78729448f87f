"""A process's page table in the stage-1 format an SVA PASID walks, tables freed after their flush (tlb_finish_mmu())."""

from .lpae import ADDR_MASK_48, PTE_AF, PTE_TYPE_TABLE_OR_PAGE, PTE_VALID, S1_AP_RDONLY, Geometry

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MM_GEOMETRY = Geometry(PAGE_SHIFT, 48, 0)
IOMMU_WRITE = 2


class ProcessMm:
    """One mm_struct's page table in emulator memory (CPU stores: the SMMU sees them as the memory model says)."""

    def __init__(self, mem):
        self.mem = mem
        self.geo = MM_GEOMETRY
        self.pgd = mem.alloc_pages(PAGE_SIZE)
        self.to_free: list[tuple[int, int, int]] = []     # (table, lo, hi): unlinked, freed after a flush of [lo, hi)

    def _slot(self, table: int, lvl: int, va: int) -> int:
        return table + 8 * ((va >> self.geo.lvl_shift(lvl)) & ((1 << self.geo.idx_bits(lvl)) - 1))

    def set_pte(self, va: int, pa: int, prot: int) -> None:
        """set_pte_at() for one page, allocating the tables on the way (__pte_alloc())."""
        table = self.pgd
        for lvl in range(self.geo.start_level, 3):
            addr = self._slot(table, lvl, va)
            desc = self.mem.cpu_read(addr)
            if not desc & PTE_VALID:
                nxt = self.mem.alloc_pages(PAGE_SIZE)
                self.mem.dma_wmb()          # pmd_install()'s smp_wmb(): the zeroed table before the entry
                self.mem.cpu_write(addr, nxt | PTE_TYPE_TABLE_OR_PAGE)
                desc = nxt | PTE_TYPE_TABLE_OR_PAGE
            table = desc & ADDR_MASK_48
        rdonly = 0 if prot & IOMMU_WRITE else S1_AP_RDONLY
        self.mem.cpu_write(self._slot(table, 3, va), (pa & ADDR_MASK_48) | PTE_AF | rdonly | PTE_TYPE_TABLE_OR_PAGE)

    def clear_pte(self, va: int) -> None:
        """ptep_get_and_clear() for one page; a table left empty is unlinked (free_pgtables()) and queued for
        freeing after the flush of the range it translated."""
        path = []
        table = self.pgd
        for lvl in range(self.geo.start_level, 3):
            addr = self._slot(table, lvl, va)
            desc = self.mem.cpu_read(addr)
            if not desc & PTE_VALID:
                return
            path.append((lvl, addr))
            table = desc & ADDR_MASK_48
        self.mem.cpu_write(self._slot(table, 3, va), 0)
        for lvl, addr in reversed(path):
            if self.mem.cpu_nonzero(table):
                return
            self.mem.cpu_write(addr, 0)
            shift = self.geo.lvl_shift(lvl)
            lo = va >> shift << shift
            self.to_free.append((table, lo, lo + (1 << shift)))
            table = addr - addr % PAGE_SIZE

    def flushed(self, start: int, end: int) -> None:
        """The TLB flush of [start, end) is done: free the tables queued for a range inside it (tlb_finish_mmu())."""
        keep = []
        for table, lo, hi in self.to_free:
            if start <= lo and hi <= end:
                self.mem.free_pages(table, PAGE_SIZE)
            else:
                keep.append((table, lo, hi))
        self.to_free = keep
