"""io-pgtable-arm-v7s: the ARMv7 short-descriptor page table (drivers/iommu/io-pgtable-arm-v7s.c)."""

from .gather import queued
from .io_pgtable_arm import EEXIST, EINVAL, ERANGE, IOMMU_CACHE, IOMMU_MMIO, IOMMU_NOEXEC, IOMMU_PRIV, IOMMU_READ, \
    IOMMU_WRITE

PTE_TYPE_TABLE = 0x1
PTE_TYPE_PAGE = 0x2
PTE_TYPE_CONT_PAGE = 0x1
ATTR_NG, ATTR_S, ATTR_AP_RDONLY, ATTR_AP_UNPRIV, ATTR_AF = 1 << 7, 1 << 6, 1 << 5, 1 << 1, 1 << 0
ATTR_TEX_1 = 1 << 2
PTE_B, PTE_C = 1 << 2, 1 << 3
CONT_SECTION = 1 << 18
NS_SECTION, NS_TABLE = 1 << 19, 1 << 3
CONT_PAGES = 16


class ArmV7sIoPgtable:
    """struct arm_v7s_io_pgtable with map_pages / unmap_pages (two levels: 1M/16M, 4K/64K)."""

    def __init__(self, hw, tlb, ias: int = 32, oas: int = 32, coherent: bool = True, no_perms: bool = False,
                 ns: bool = False):
        self.hw, self.mem, self.tlb = hw, hw.mem, tlb
        self.ias, self.oas, self.coherent, self.no_perms, self.ns = ias, oas, coherent, no_perms, ns
        self.pgsize_bitmap = (1 << 12) | (1 << 16) | (1 << 20) | (1 << 24)
        self.pgd = self._alloc(4 << (ias - 20))

    # ---- geometry -------------------------------------------------------------------------------
    @staticmethod
    def lvl_shift(lvl: int) -> int:
        return 20 if lvl == 1 else 12

    def lvl_idx(self, iova: int, lvl: int) -> int:
        bits = self.ias - 20 if lvl == 1 else 8
        return (iova >> self.lvl_shift(lvl)) & ((1 << bits) - 1)

    def block_size(self, lvl: int) -> int:
        return 1 << self.lvl_shift(lvl)

    @staticmethod
    def is_table(pte: int, lvl: int) -> bool:
        return lvl == 1 and pte & 3 == PTE_TYPE_TABLE

    @staticmethod
    def is_cont(pte: int, lvl: int) -> bool:
        if lvl == 1:
            return not ArmV7sIoPgtable.is_table(pte, 1) and bool(pte & CONT_SECTION)
        return not pte & PTE_TYPE_PAGE

    # ---- memory ---------------------------------------------------------------------------------
    def _alloc(self, size: int) -> int:
        pa = self.mem.alloc_pages(size)
        if not self.coherent:
            self.mem.clean(pa, size)
        return pa

    def _pte_sync(self, ptep: int, n: int) -> None:
        """__arm_v7s_pte_sync()."""
        if not self.coherent:
            self.mem.clean(ptep, 4 * n)

    def _set_pte(self, ptep: int, pte: int, n: int) -> None:
        """__arm_v7s_set_pte()."""
        for i in range(n):
            self.mem.cpu_write(ptep + 4 * i, pte)
        self._pte_sync(ptep, n)

    def rd(self, ptep: int) -> int:
        return self.mem.cpu_read(ptep)

    # ---- PTEs -----------------------------------------------------------------------------------
    def prot_to_pte(self, prot: int, lvl: int) -> int:
        """arm_v7s_prot_to_pte()."""
        ap = not self.no_perms
        pte = ATTR_NG | ATTR_S
        if not prot & IOMMU_MMIO:
            pte |= ATTR_TEX_1
        if ap:
            pte |= ATTR_AF
            if not prot & IOMMU_PRIV:
                pte |= ATTR_AP_UNPRIV
            if not prot & IOMMU_WRITE:
                pte |= ATTR_AP_RDONLY
        pte <<= 10 if lvl == 1 else 4
        if prot & IOMMU_NOEXEC and ap:
            pte |= 1 << 4 if lvl == 1 else 1
        if prot & IOMMU_MMIO:
            pte |= PTE_B
        elif prot & IOMMU_CACHE:
            pte |= PTE_B | PTE_C
        pte |= PTE_TYPE_PAGE
        if lvl == 1 and self.ns:
            pte |= NS_SECTION
        return pte

    @staticmethod
    def pte_to_cont(pte: int, lvl: int) -> int:
        """arm_v7s_pte_to_cont(): supersection bit, or the large-page type with XN/TEX moved."""
        if lvl == 1:
            return pte | CONT_SECTION
        xn, tex = pte & 1, pte & (7 << 6)
        pte ^= xn | tex | PTE_TYPE_PAGE
        return pte | (xn << 15) | (tex << 6) | PTE_TYPE_CONT_PAGE

    # ---- map ------------------------------------------------------------------------------------
    def _init_pte(self, iova: int, paddr: int, prot: int, lvl: int, n: int, ptep: int) -> int:
        """arm_v7s_init_pte()."""
        sz = self.block_size(lvl)
        for i in range(n):
            pte = self.rd(ptep + 4 * i)
            if self.is_table(pte, lvl):
                tblp = ptep - 4 * self.lvl_idx(iova, lvl)
                if self._unmap(None, iova + i * sz, sz, lvl, tblp) != sz:
                    return -EINVAL
            elif pte:
                return -EEXIST
        pte = self.prot_to_pte(prot, lvl)
        if n > 1:
            pte = self.pte_to_cont(pte, lvl)
        pte |= paddr & (0xFFF00000 if lvl == 1 else 0xFFFFF000)
        self._set_pte(ptep, pte, n)
        return 0

    def _map(self, iova: int, paddr: int, size: int, prot: int, lvl: int, tbl: int) -> int:
        """__arm_v7s_map()."""
        self.hw.tick()
        ptep = tbl + 4 * self.lvl_idx(iova, lvl)
        n = size >> self.lvl_shift(lvl)
        if n:
            return self._init_pte(iova, paddr, prot, lvl, n, ptep)
        if lvl == 2:
            return -EINVAL
        pte = self.rd(ptep)
        if not pte:
            cptep = self._alloc(1024)
            new = cptep | PTE_TYPE_TABLE | (NS_TABLE if self.ns else 0)
            if self.rd(ptep) == 0:
                self.mem.cpu_write(ptep, new)
                self._pte_sync(ptep, 1)
                pte = new
            else:
                self.mem.free_pages(cptep, 1024)
                pte = self.rd(ptep)
        else:
            self._pte_sync(ptep, 1)
        if self.is_table(pte, lvl):
            return self._map(iova, paddr, size, prot, lvl + 1, pte & 0xFFFFFC00)
        return -EEXIST

    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        """arm_v7s_map_pages()."""
        if iova >> self.ias or paddr >> self.oas:
            return -ERANGE, 0
        if not prot & (IOMMU_READ | IOMMU_WRITE):
            return -EINVAL, 0
        mapped = 0
        ret = 0
        while pgcount:
            ret = self._map(iova, paddr, pgsize, prot, 1, self.pgd)
            if ret:
                break
            iova += pgsize
            paddr += pgsize
            mapped += pgsize
            pgcount -= 1
        return ret, mapped

    # ---- unmap ----------------------------------------------------------------------------------
    def _gather_unmapped(self, gather, iova: int, n: int, blk: int) -> None:
        """Right after the entries are zeroed: nothing in mainline (Jason's v2 hunk goes here)."""

    def iova_to_phys(self, iova: int) -> int:
        """arm_v7s_iova_to_phys(): the entry's address (of the 16-entry run for a contiguous one) ORed with the
        offset into it; 0 for an invalid entry."""
        lvl, tbl = 1, self.pgd
        pte = self.rd(tbl + 4 * self.lvl_idx(iova, 1))
        if self.is_table(pte, 1):
            lvl, pte = 2, self.rd((pte & 0xFFFFFC00) + 4 * self.lvl_idx(iova, 2))
        if not pte & 3:
            return 0
        size = self.block_size(lvl) * (16 if self.is_cont(pte, lvl) else 1)
        return (pte & ~(size - 1) & 0xFFFFFFFF) | (iova & (size - 1))

    def _unmap(self, gather, iova: int, size: int, lvl: int, tbl: int) -> int:
        """__arm_v7s_unmap()."""
        self.hw.tick()
        if lvl > 2:
            return 0
        idx = self.lvl_idx(iova, lvl)
        ptep = tbl + 4 * idx
        n = size >> self.lvl_shift(lvl)
        ptes = [self.rd(ptep + 4 * i) for i in range(max(n, 1))]
        if any(not p for p in ptes):
            return 0
        if n <= 1 and self.is_cont(ptes[0], lvl):
            return 0                                  # "Unmap of a partial large IOPTE is not allowed"
        if n:
            blk = self.block_size(lvl)
            self._set_pte(ptep, 0, n)
            self._gather_unmapped(gather, iova, n, blk)
            for i in range(n):
                if self.is_table(ptes[i], lvl):
                    self._tlb("tlb_flush_walk", iova, blk, self.block_size(lvl + 1))
                    self.mem.free_pages(ptes[i] & 0xFFFFFC00, 1024)
                elif not queued(gather):
                    self._tlb("tlb_add_page", gather, iova, blk)
                iova += blk
            return size
        if lvl == 1 and not self.is_table(ptes[0], lvl):
            return 0
        return self._unmap(gather, iova, size, 2, ptes[0] & 0xFFFFFC00)

    def _tlb(self, name: str, *args) -> None:
        """io_pgtable_tlb_*(): nothing when cfg->tlb or the callback is NULL (MTK has no cfg->tlb)."""
        fn = getattr(self.tlb, name, None) if self.tlb is not None else None
        if fn is not None:
            fn(*args)

    def unmap_pages(self, iova: int, pgsize: int, pgcount: int, gather) -> int:
        """arm_v7s_unmap_pages()."""
        if iova >> self.ias:
            return 0
        unmapped = 0
        while pgcount:
            if not self._unmap(gather, iova, pgsize, 1, self.pgd):
                break
            unmapped += pgsize
            iova += pgsize
            pgcount -= 1
        return unmapped
