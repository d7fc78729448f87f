"""io-pgtable-arm: the LPAE page-table code Linux uses for SMMUv3 (drivers/iommu/io-pgtable-arm.c)."""

from dataclasses import dataclass

from .gather import Gather, queued

IOMMU_READ, IOMMU_WRITE, IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_MMIO, IOMMU_PRIV = 1, 2, 4, 8, 0x10, 0x20
EINVAL, ENOMEM, ERANGE, EEXIST = 22, 12, 34, 17

MAX_LEVELS = 4
PTE_TYPE_MASK = 3
PTE_TYPE_BLOCK = 1
PTE_TYPE_TABLE = 3
PTE_TYPE_PAGE = 3
PTE_AF = 1 << 10
PTE_SH_IS = 3 << 8
PTE_NG = 1 << 11
PTE_AP_UNPRIV = 1 << 6
PTE_AP_RDONLY = 2 << 6
PTE_HAP_READ = 1 << 6
PTE_HAP_WRITE = 2 << 6
PTE_XN = 3 << 53
PTE_SW_SYNC = 1 << 55
PTE_ADDR_MASK = ((1 << 48) - 1) & ~0xFFF


@dataclass
class PgtableCfg:
    """struct io_pgtable_cfg (the fields this model uses)."""
    pg_shift: int = 12
    ias: int = 48
    oas: int = 48
    stage: int = 1
    coherent_walk: bool = True
    no_warn: bool = True
    pgsize_limit: int = 0           # the driver's own pgsize_bitmap, if it restricts the format's

    @property
    def pgsize_bitmap(self) -> int:
        """arm_lpae_restrict_pgsizes(): the page sizes of the granule (within the driver's)."""
        sizes = {12: (1 << 12) | (1 << 21) | (1 << 30), 14: (1 << 14) | (1 << 25),
                 16: (1 << 16) | (1 << 29)}[self.pg_shift]
        return sizes & self.pgsize_limit if self.pgsize_limit else sizes


class ArmLpaeIoPgtable:
    """struct arm_lpae_io_pgtable with its map_pages / unmap_pages / iova_to_phys ops."""

    def __init__(self, cfg: PgtableCfg, hw, tlb):
        self.cfg = cfg
        self.hw = hw                   # the machine: memory (cpu_read/cpu_write/clean/alloc/free)
        self.mem = hw.mem
        self.tlb = tlb                 # iommu_flush_ops: tlb_flush_all / tlb_flush_walk / tlb_add_page
        self.bpl = cfg.pg_shift - 3
        va_bits = cfg.ias - cfg.pg_shift
        levels = -(-va_bits // self.bpl)
        self.start_level = MAX_LEVELS - levels
        self.pgd_bits = va_bits - self.bpl * (levels - 1)
        if cfg.stage == 2 and self.start_level == 0 and (1 << self.pgd_bits) <= 16:
            # arm_64_lpae_alloc_pgtable_s2(): concatenate PGDs at level 1
            self.pgd_bits += self.bpl
            self.start_level += 1
        self.pgd = self._alloc_pages(self.pgd_size)

    # ---- geometry macros -----------------------------------------------------------------
    @property
    def granule(self) -> int:
        return 1 << self.cfg.pg_shift

    @property
    def pgd_size(self) -> int:
        return 8 << self.pgd_bits

    @property
    def ptes_per_table(self) -> int:
        return self.granule >> 3

    def lvl_shift(self, lvl: int) -> int:
        return (MAX_LEVELS - lvl) * self.bpl + 3

    def block_size(self, lvl: int) -> int:
        return 1 << self.lvl_shift(lvl)

    def pgd_idx(self, lvl: int) -> int:
        """ARM_LPAE_PGD_IDX(): extra index bits of the first level (negative when the PGD is small)."""
        return self.pgd_bits - self.bpl if lvl == self.start_level else 0

    def lvl_idx(self, iova: int, lvl: int) -> int:
        return (iova >> self.lvl_shift(lvl)) & ((1 << (self.bpl + self.pgd_idx(lvl))) - 1)

    def max_entries(self, i: int) -> int:
        """arm_lpae_max_entries(): entries left in this table page (idx may point into a concatenated PGD)."""
        n = self.ptes_per_table
        return n - (i & (n - 1))

    def iopte_leaf(self, pte: int, lvl: int) -> bool:
        if lvl == MAX_LEVELS - 1:
            return pte & PTE_TYPE_MASK == PTE_TYPE_PAGE
        return pte & PTE_TYPE_MASK == PTE_TYPE_BLOCK

    def iopte_table(self, pte: int, lvl: int) -> bool:
        return lvl < MAX_LEVELS - 1 and pte & PTE_TYPE_MASK == PTE_TYPE_TABLE

    # ---- memory helpers --------------------------------------------------------------------
    def _alloc_pages(self, size: int) -> int:
        """__arm_lpae_alloc_pages(): zeroed pages, cleaned to the PoC for a non-coherent walker."""
        pa = self.mem.alloc_pages(size)
        if not self.cfg.coherent_walk:
            self.mem.clean(pa, size)
        return pa

    def _free_pages(self, pa: int, size: int) -> None:
        """__arm_lpae_free_pages()."""
        self.mem.free_pages(pa, size)

    def _sync_pte(self, ptep: int, num: int) -> None:
        """__arm_lpae_sync_pte(): dma_sync_single_for_device() over num PTEs."""
        self.mem.clean(ptep, 8 * num)

    def _clear_pte(self, ptep: int, num: int) -> None:
        """__arm_lpae_clear_pte()."""
        for i in range(num):
            self.mem.cpu_write(ptep + 8 * i, 0)
        if not self.cfg.coherent_walk and num:
            self._sync_pte(ptep, num)

    def rd(self, ptep: int) -> int:
        return self.mem.cpu_read(ptep)

    # ---- PTE construction -----------------------------------------------------------------
    def prot_to_pte(self, prot: int) -> int:
        """arm_lpae_prot_to_pte() (memory attributes other than permissions left out)."""
        if self.cfg.stage == 1:
            pte = PTE_NG
            if not prot & IOMMU_WRITE and prot & IOMMU_READ:
                pte |= PTE_AP_RDONLY
            if not prot & IOMMU_PRIV:
                pte |= PTE_AP_UNPRIV
        else:
            pte = 0
            if prot & IOMMU_READ:
                pte |= PTE_HAP_READ
            if prot & IOMMU_WRITE:
                pte |= PTE_HAP_WRITE
        if prot & IOMMU_NOEXEC:
            pte |= PTE_XN
        return pte | PTE_AF | PTE_SH_IS

    def _init_pte_leaves(self, paddr: int, prot: int, lvl: int, num: int, ptep: int) -> None:
        """__arm_lpae_init_pte(): write num leaves, then clean them if the walk is not coherent."""
        pte = prot | (PTE_TYPE_PAGE if lvl == MAX_LEVELS - 1 else PTE_TYPE_BLOCK)
        sz = self.block_size(lvl)
        for i in range(num):
            self.mem.cpu_write(ptep + 8 * i, pte | ((paddr + i * sz) & PTE_ADDR_MASK))
        self._sync_leaves(ptep, num)

    def _sync_leaves(self, ptep: int, num: int) -> None:
        """The tail of __arm_lpae_init_pte(): `if (!cfg->coherent_walk) __arm_lpae_sync_pte(...)`."""
        if not self.cfg.coherent_walk:
            self._sync_pte(ptep, num)

    def _init_pte(self, iova: int, paddr: int, prot: int, lvl: int, num: int, ptep: int) -> int:
        """arm_lpae_init_pte(): refuse over a leaf, replace a (now unused) table by the block."""
        for i in range(num):
            pte = self.rd(ptep + 8 * i)
            if self.iopte_leaf(pte, lvl):
                return -EEXIST
            if self.iopte_table(pte, lvl):
                sz = self.block_size(lvl)
                tblp = ptep - 8 * self.lvl_idx(iova, lvl)
                if self._unmap(None, iova + i * sz, sz, 1, lvl, tblp) != sz:
                    return -EINVAL
        self._init_pte_leaves(paddr, prot, lvl, num, ptep)
        return 0

    def _install_table(self, table: int, ptep: int, curr: int) -> int:
        """arm_lpae_install_table(): cmpxchg the table PTE in, clean it once (ARM_LPAE_PTE_SW_SYNC)."""
        new = (table & PTE_ADDR_MASK) | PTE_TYPE_TABLE
        old = self.rd(ptep)
        if old == curr:
            self.mem.cpu_write(ptep, new)
        if self.cfg.coherent_walk or old & PTE_SW_SYNC:
            return old
        self._sync_pte(ptep, 1)
        if old == curr:
            self.mem.cpu_write(ptep, new | PTE_SW_SYNC)
        return old

    # ---- map ---------------------------------------------------------------------------------
    def _map(self, iova: int, paddr: int, size: int, pgcount: int, prot: int, lvl: int, tbl: int,
             mapped: list) -> int:
        """__arm_lpae_map()."""
        self.hw.tick()
        map_idx = self.lvl_idx(iova, lvl)
        ptep = tbl + 8 * map_idx
        if size == self.block_size(lvl):
            num = min(pgcount, self.max_entries(map_idx))
            ret = self._init_pte(iova, paddr, prot, lvl, num, ptep)
            if ret == 0:
                mapped[0] += num * size
            return ret
        if lvl >= MAX_LEVELS - 1:
            return -EINVAL
        pte = self.rd(ptep)
        if not pte:
            cptep = self._alloc_pages(self.granule)
            pte = self._install_table(cptep, ptep, 0)
            if pte:
                self._free_pages(cptep, self.granule)
            else:
                pte = self.rd(ptep)
        elif not self.cfg.coherent_walk and not pte & PTE_SW_SYNC:
            self._sync_pte(ptep, 1)
        if pte and not self.iopte_leaf(pte, lvl):
            return self._map(iova, paddr, size, pgcount, prot, lvl + 1, pte & PTE_ADDR_MASK, mapped)
        return -EEXIST

    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        """arm_lpae_map_pages(): returns (ret, mapped bytes)."""
        cfg = self.cfg
        if not pgsize or (pgsize & cfg.pgsize_bitmap) != pgsize or pgsize & (pgsize - 1):
            return -EINVAL, 0
        if iova >> cfg.ias or paddr >> cfg.oas:
            return -ERANGE, 0
        if not prot & (IOMMU_READ | IOMMU_WRITE):
            return -EINVAL, 0
        mapped = [0]
        ret = self._map(iova, paddr, pgsize, pgcount, self.prot_to_pte(prot), self.start_level, self.pgd, mapped)
        return ret, mapped[0]

    # ---- unmap -------------------------------------------------------------------------------
    def _free_pgtable(self, lvl: int, table: int) -> None:
        """__arm_lpae_free_pgtable(): free a table and every table below it."""
        size = self.pgd_size if lvl == self.start_level else self.granule
        if lvl < MAX_LEVELS - 1:
            for off in range(0, size, 8):
                pte = self.rd(table + off)
                if pte and not self.iopte_leaf(pte, lvl):
                    self._free_pgtable(lvl + 1, pte & PTE_ADDR_MASK)
        self._free_pages(table, size)

    def _unmap(self, gather: Gather | None, iova: int, size: int, pgcount: int, lvl: int, tbl: int) -> int:
        """__arm_lpae_unmap()."""
        self.hw.tick()
        if lvl == MAX_LEVELS:
            return 0
        unmap_idx = self.lvl_idx(iova, lvl)
        ptep = tbl + 8 * unmap_idx
        pte = self.rd(ptep)
        if not pte:
            return 0
        if size == self.block_size(lvl):
            num = min(pgcount, self.max_entries(unmap_idx))
            i = 0
            while i < num:
                pte = self.rd(ptep + 8 * i)
                if not pte:
                    break
                if not self.iopte_leaf(pte, lvl):
                    self._clear_pte(ptep + 8 * i, 1)
                    # Also flush any partial walks
                    self._tlb_flush_walk(iova + i * size, size, self.granule)
                    self._free_pgtable(lvl + 1, pte & PTE_ADDR_MASK)
                i += 1
            self._clear_pte(ptep, i)
            if gather is not None and not queued(gather):
                self._gather_unmapped(gather, iova, i, size)
            return i * size
        if self.iopte_leaf(pte, lvl):
            # "Unmap of a partial large IOPTE is not allowed" (WARN_ONCE since 33729a5fc0ca)
            return 0
        return self._unmap(gather, iova, size, pgcount, lvl + 1, pte & PTE_ADDR_MASK)

    def _gather_unmapped(self, gather: Gather, iova: int, n: int, size: int) -> None:
        """The tail of __arm_lpae_unmap()'s leaf branch: one io_pgtable_tlb_add_page() per entry."""
        for j in range(n):
            self._tlb_add_page(gather, iova + j * size, size)

    def _tlb_add_page(self, gather: Gather, iova: int, size: int) -> None:
        """io_pgtable_tlb_add_page(): a no-op without cfg->tlb or its tlb_add_page."""
        fn = getattr(self.tlb, "tlb_add_page", None) if self.tlb is not None else None
        if fn is not None:
            fn(gather, iova, size)

    def _tlb_flush_walk(self, iova: int, size: int, granule: int) -> None:
        """io_pgtable_tlb_flush_walk()."""
        fn = getattr(self.tlb, "tlb_flush_walk", None) if self.tlb is not None else None
        if fn is not None:
            fn(iova, size, granule)

    def unmap_pages(self, iova: int, pgsize: int, pgcount: int, gather: Gather | None) -> int:
        """arm_lpae_unmap_pages()."""
        cfg = self.cfg
        if not pgsize or (pgsize & cfg.pgsize_bitmap) != pgsize or not pgcount:
            return 0
        if iova >> cfg.ias:
            return 0
        return self._unmap(gather, iova, pgsize, pgcount, self.start_level, self.pgd)

    def iova_to_phys(self, iova: int) -> int:
        """arm_lpae_iova_to_phys()."""
        ptep = self.pgd
        lvl = self.start_level
        while lvl < MAX_LEVELS:
            pte = self.rd(ptep + 8 * self.lvl_idx(iova, lvl))
            if not pte:
                return 0
            if self.iopte_leaf(pte, lvl):
                return (pte & PTE_ADDR_MASK & ~(self.block_size(lvl) - 1)) | (iova & (self.block_size(lvl) - 1))
            if not self.iopte_table(pte, lvl):
                return 0
            ptep = pte & PTE_ADDR_MASK
            lvl += 1
        return 0

    def free(self) -> None:
        """arm_lpae_free_pgtable()."""
        self._free_pgtable(self.start_level, self.pgd)
