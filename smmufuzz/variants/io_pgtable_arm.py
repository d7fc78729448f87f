"""io-pgtable-arm: the LPAE page-table code Linux uses for SMMUv3 (drivers/iommu/io-pgtable-arm.c).

Where the kernel's behaviour changed between versions, `PgtableCfg.kernel` (an `LpaeKernelBehaviour`,
chosen with `LpaeKernelBehaviour.for_version((6, 12))`) says which version's code the model follows;
the default is mainline's (see `for_version(None)` for its one exception).  The model writes every PTE bit the kernel writes, cleans the same ranges
(`_sync_pte`, `_alloc_pages`) and calls the same flush ops with the same arguments in the same order
(`_tlb_flush_walk`, `_tlb_add_page`); `warns` lists the WARN_ON()s the kernel would have hit.
"""

from dataclasses import dataclass, field

from .gather import Gather, queued

IOMMU_READ, IOMMU_WRITE, IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_MMIO, IOMMU_PRIV = 1, 2, 4, 8, 0x10, 0x20
EINVAL, ENOMEM, ERANGE, EEXIST = 22, 12, 34, 17

# struct io_pgtable_cfg.quirks (include/linux/io-pgtable.h) that the LPAE format looks at
IO_PGTABLE_QUIRK_ARM_NS = 1 << 0          # NS in leaves, NSTABLE in table entries (stage 1 only)
IO_PGTABLE_QUIRK_ARM_TTBR1 = 1 << 5       # the table covers the top of the address space
IO_PGTABLE_QUIRK_ARM_OUTER_WBWA = 1 << 6  # TCR only: no effect on PTEs
IO_PGTABLE_QUIRK_ARM_HD = 1 << 7          # DBM in writable stage-1 leaves
IO_PGTABLE_QUIRK_NO_WARN = 1 << 9         # since 3318f7b5cefb (v6.16): quiet the EEXIST / empty-PTE WARNs

MAX_LEVELS = 4
S2_MAX_CONCAT_PAGES = 16
PTE_TYPE_MASK = 3
PTE_TYPE_BLOCK = 1
PTE_TYPE_TABLE = 3
PTE_TYPE_PAGE = 3
PTE_NSTABLE = 1 << 63
PTE_XN = 3 << 53
PTE_DBM = 1 << 51
PTE_AF = 1 << 10
PTE_SH_OS = 2 << 8
PTE_SH_IS = 3 << 8
PTE_NS = 1 << 5
PTE_SW_SYNC = 1 << 55                     # software bit: this table entry has been cleaned once
PTE_ATTR_MASK = (0x3FF << 2) | PTE_XN | PTE_DBM   # iopte_prot(): what a split block passes to its pages
# stage 1
PTE_NG = 1 << 11
PTE_AP_UNPRIV = 1 << 6
PTE_AP_RDONLY = 1 << 7
PTE_ATTRINDX_SHIFT = 2
MAIR_ATTR_IDX_NC, MAIR_ATTR_IDX_CACHE, MAIR_ATTR_IDX_DEV = 0, 1, 2   # the MAIR io-pgtable-arm programs
# stage 2
PTE_HAP_READ = 1 << 6
PTE_HAP_WRITE = 2 << 6
PTE_MEMATTR_OIWB = 0xF << 2
PTE_MEMATTR_NC = 0x5 << 2
PTE_MEMATTR_DEV = 0x1 << 2
PTE_ADDR_MASK = ((1 << 48) - 1) & ~0xFFF  # GENMASK_ULL(47, 12)
U64 = (1 << 64) - 1


@dataclass(frozen=True)
class LpaeKernelBehaviour:
    """What io-pgtable-arm.c does where kernel versions differ (each switch names the commit).

    `for_version((6, 12))` is what Debian's 6.12 tree compiles to, `for_version((6, 16))` and later
    mainline.  `for_version(None)`, the default of `PgtableCfg.kernel`, is the behaviour the project
    has always modelled: mainline, except that stage-2 PGDs are still concatenated by the pre-v6.14
    rule (the harness's OAS is 48, so mainline would start 4K stage-2 walks of IAS 40-43 at level 0
    with a 2-16 entry PGD; seed 003's regression b14_c is a bug in a concatenated level-1 PGD).
    """

    version: tuple[int, ...] | None = None
    # Before 33729a5fc0ca "iommu/io-pgtable-arm: Remove split on unmap behavior" (v6.13), unmapping
    # part of a block calls arm_lpae_split_blk_unmap(): a new table holding the rest of the block
    # replaces it and only the unmapped part goes to the gather.  Since then: WARN_ONCE, return 0.
    split_blk_unmap: bool = False
    # 4dcac8407fe1 "iommu/io-pgtable-arm: Fix stage-2 concatenation with 16K" (v6.14): a stage-2 PGD is
    # concatenated only where the architecture requires it (arm_lpae_concat_mandatory()); before, any
    # level-0 start with at most 16 entries was folded into a concatenated level-1 PGD.
    s2_concat_mandatory_only: bool = True
    # 3318f7b5cefb "iommu/io-pgtable-arm: Add quirk to quiet WARN_ON()" (v6.16): IO_PGTABLE_QUIRK_NO_WARN
    # silences the WARN on map over a leaf and on unmap of an empty PTE (before: always WARN).
    no_warn_quirk: bool = True

    @classmethod
    def for_version(cls, version: tuple[int, ...] | None = None) -> "LpaeKernelBehaviour":
        """The behaviour of the kernel `version` (e.g. (6, 12) or (6, 12, 118)); None: mainline."""
        if version is None:
            return MODEL_DEFAULT
        v = tuple(version)
        return cls(version=v, split_blk_unmap=v < (6, 13), s2_concat_mandatory_only=v >= (6, 14),
                   no_warn_quirk=v >= (6, 16))

    @property
    def name(self) -> str:
        return "model default" if self.version is None else ".".join(map(str, self.version))


MODEL_DEFAULT = LpaeKernelBehaviour(s2_concat_mandatory_only=False)


@dataclass
class PgtableCfg:
    """struct io_pgtable_cfg (the fields this model uses)."""
    pg_shift: int = 12
    ias: int = 48
    oas: int = 48
    stage: int = 1
    coherent_walk: bool = True
    quirks: int = 0
    defer_sync_pte: bool = False     # seed 003 PATCH 1/2: PTE cleaning left to ops->iotlb_sync_map()
    pgsize_limit: int = 0           # the driver's own pgsize_bitmap, if it restricts the format's
    kernel: LpaeKernelBehaviour = field(default=MODEL_DEFAULT)

    @property
    def pgsize_bitmap(self) -> int:
        """arm_lpae_restrict_pgsizes(): the page sizes of the granule (within the driver's)."""
        sizes = {12: (1 << 12) | (1 << 21) | (1 << 30), 14: (1 << 14) | (1 << 25),
                 16: (1 << 16) | (1 << 29)}[self.pg_shift]
        if self.pg_shift == 16 and self.oas > 48:
            sizes |= 1 << 42                           # 4TB level-1 blocks with a 52-bit OA
        return sizes & self.pgsize_limit if self.pgsize_limit else sizes


class PgtableAllocError(ValueError):
    """alloc_io_pgtable_ops() would return NULL for this configuration."""


class ArmLpaeIoPgtable:
    """struct arm_lpae_io_pgtable with its map_pages / unmap_pages / iova_to_phys ops."""

    STORE_BARRIERS = True      # the dma_wmb() and wmb() of io-pgtable-arm.c (_table_visible_before_pte, map_pages)

    def __init__(self, cfg: PgtableCfg, hw, tlb):
        self.cfg = cfg
        self.kernel = cfg.kernel
        self.hw = hw                   # the machine: memory (cpu_read/cpu_write/clean/alloc/free)
        self.mem = hw.mem
        self.tlb = tlb                 # iommu_flush_ops: tlb_flush_all / tlb_flush_walk / tlb_add_page
        self.warns: list[str] = []     # the WARN_ON()s the kernel would have hit, in order
        self._check_quirks()
        # arm_lpae_restrict_pgsizes() caps the address sizes in the cfg itself
        max_bits = 52 if cfg.pg_shift == 16 else 48
        cfg.ias, cfg.oas = min(cfg.ias, max_bits), min(cfg.oas, max_bits)
        self.bpl = cfg.pg_shift - 3
        va_bits = cfg.ias - cfg.pg_shift
        levels = -(-va_bits // self.bpl)
        self.start_level = MAX_LEVELS - levels
        self.pgd_bits = va_bits - self.bpl * (levels - 1)
        if cfg.stage == 2:
            self._s2_concatenate()
        self.pgd = self._alloc_pages(self.pgd_size)

    def _check_quirks(self) -> None:
        """The quirk checks of arm_64_lpae_alloc_pgtable_s1() / _s2()."""
        cfg = self.cfg
        quiet = IO_PGTABLE_QUIRK_NO_WARN if self.kernel.no_warn_quirk else 0
        allowed = (IO_PGTABLE_QUIRK_ARM_NS | IO_PGTABLE_QUIRK_ARM_TTBR1 | IO_PGTABLE_QUIRK_ARM_OUTER_WBWA
                   | IO_PGTABLE_QUIRK_ARM_HD) if cfg.stage == 1 else 0
        if cfg.quirks & ~(allowed | quiet):
            raise PgtableAllocError(f"stage {cfg.stage} does not take quirks {cfg.quirks:#x}")
        if cfg.stage == 1 and cfg.coherent_walk and cfg.quirks & IO_PGTABLE_QUIRK_ARM_OUTER_WBWA:
            raise PgtableAllocError("IO_PGTABLE_QUIRK_ARM_OUTER_WBWA on a coherent walk")

    def _s2_concatenate(self) -> None:
        """arm_64_lpae_alloc_pgtable_s2(): fold a small level-0 PGD into concatenated level-1 tables."""
        if not self.kernel.s2_concat_mandatory_only:
            if self.start_level == 0 and (1 << self.pgd_bits) <= S2_MAX_CONCAT_PAGES:
                self.pgd_bits += self.bpl
                self.start_level += 1
            return
        if not self._concat_mandatory():
            return
        if (1 << self.pgd_bits) > S2_MAX_CONCAT_PAGES:
            self._warn("arm_64_lpae_alloc_pgtable_s2: too many tables to concatenate")
            raise PgtableAllocError("stage-2 concatenation needed but more than 16 tables")
        self.pgd_bits += self.bpl
        self.start_level += 1

    def _concat_mandatory(self) -> bool:
        """arm_lpae_concat_mandatory(): the cases Arm DDI0487 (R_DXBSH, R_SRKBC) requires concatenation."""
        g, lvl, ias, oas = self.granule, self.start_level, self.cfg.ias, self.cfg.oas
        if g == 1 << 14 and lvl == 0:
            return oas == 48 or ias == 48
        if g == 1 << 12 and lvl == 0:
            return oas in (40, 42)
        return g == 1 << 14 and lvl == 1 and oas == 40

    # ---- WARN accounting -------------------------------------------------------------------
    def _warn(self, site: str) -> None:
        """A WARN_ON() that fired: `site` is the kernel function and what it found."""
        self.warns.append(site)

    def _warn_unless_quiet(self, site: str) -> None:
        """The WARNs that IO_PGTABLE_QUIRK_NO_WARN silences (since 3318f7b5cefb); 6.12's always fire."""
        if not (self.kernel.no_warn_quirk and self.cfg.quirks & IO_PGTABLE_QUIRK_NO_WARN):
            self._warn(site)

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
        return ((iova & U64) >> self.lvl_shift(lvl)) & ((1 << (self.bpl + self.pgd_idx(lvl))) - 1)

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

    def paddr_to_iopte(self, paddr: int) -> int:
        """paddr_to_iopte(): a 52-bit address keeps bits 51:48 in PTE bits 15:12 (64K granule)."""
        return (paddr | (paddr >> 36)) & PTE_ADDR_MASK

    def iopte_to_paddr(self, pte: int) -> int:
        """iopte_to_paddr(): the output address of a PTE (the block's low bits are not masked)."""
        pa = pte & PTE_ADDR_MASK
        if self.granule < 1 << 16:
            return pa
        return (pa | (pa << 36)) & (PTE_ADDR_MASK << 4)

    def _iaext(self, iova: int) -> int:
        """`(s64)iova >> cfg->ias`, inverted for TTBR1 tables: non-zero when iova is out of range."""
        iova &= U64
        ext = (iova - (1 << 64) if iova >> 63 else iova) >> self.cfg.ias
        return ~ext if self.cfg.quirks & IO_PGTABLE_QUIRK_ARM_TTBR1 else ext

    # ---- memory helpers --------------------------------------------------------------------
    def _alloc_pages(self, size: int) -> int:
        """__arm_lpae_alloc_pages(): zeroed pages; dma_map_single(size) (a clean) on a non-coherent walk."""
        pa = self.mem.alloc_pages(size)
        if not self.cfg.coherent_walk:
            self.mem.clean(pa, size)
        return pa

    def _free_pages(self, pa: int, size: int) -> None:
        """__arm_lpae_free_pages() (dma_unmap_single(DMA_TO_DEVICE) does no cache maintenance)."""
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
        """arm_lpae_prot_to_pte(): permissions, memory type, shareability, XN, NS and AF."""
        cfg = self.cfg
        if cfg.stage == 1:
            pte = PTE_NG
            if prot & IOMMU_READ and not prot & IOMMU_WRITE:
                pte |= PTE_AP_RDONLY
            elif cfg.quirks & IO_PGTABLE_QUIRK_ARM_HD:
                pte |= PTE_DBM
            if not prot & IOMMU_PRIV:
                pte |= PTE_AP_UNPRIV
            # memory type: an index into the MAIR (0, Normal non-cacheable, when neither is asked)
            if prot & IOMMU_MMIO:
                pte |= MAIR_ATTR_IDX_DEV << PTE_ATTRINDX_SHIFT
            elif prot & IOMMU_CACHE:
                pte |= MAIR_ATTR_IDX_CACHE << PTE_ATTRINDX_SHIFT
        else:
            pte = 0
            if prot & IOMMU_READ:
                pte |= PTE_HAP_READ
            if prot & IOMMU_WRITE:
                pte |= PTE_HAP_WRITE
            if prot & IOMMU_MMIO:
                pte |= PTE_MEMATTR_DEV
            elif prot & IOMMU_CACHE:
                pte |= PTE_MEMATTR_OIWB
            else:
                pte |= PTE_MEMATTR_NC
        pte |= PTE_SH_IS if prot & IOMMU_CACHE else PTE_SH_OS
        if prot & IOMMU_NOEXEC:
            pte |= PTE_XN
        if cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS:
            pte |= PTE_NS
        return pte | PTE_AF

    def _init_pte_leaves(self, paddr: int, prot: int, lvl: int, num: int, ptep: int) -> None:
        """__arm_lpae_init_pte(): write num leaves, then clean them if the walk is not coherent."""
        pte = prot | (PTE_TYPE_PAGE if lvl == MAX_LEVELS - 1 else PTE_TYPE_BLOCK)
        sz = self.block_size(lvl)
        for i in range(num):
            self.mem.cpu_write(ptep + 8 * i, pte | self.paddr_to_iopte(paddr + i * sz))
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
                self._warn_unless_quiet("arm_lpae_init_pte: map over a leaf (-EEXIST)")
                return -EEXIST
            if self.iopte_table(pte, lvl):
                sz = self.block_size(lvl)
                tblp = ptep - 8 * self.lvl_idx(iova, lvl)
                if self._unmap(None, iova + i * sz, sz, 1, lvl, tblp) != sz:
                    self._warn("arm_lpae_init_pte: table not unmapped (-EINVAL)")
                    return -EINVAL
        self._init_pte_leaves(paddr, prot, lvl, num, ptep)
        return 0

    def _table_visible_before_pte(self) -> None:
        """arm_lpae_install_table()'s dma_wmb(): "Ensure the table itself is visible before its PTE can be"."""
        self.mem.dma_wmb()

    def _install_table(self, table: int, ptep: int, curr: int) -> int:
        """arm_lpae_install_table(): cmpxchg the table PTE in, clean it once (ARM_LPAE_PTE_SW_SYNC)."""
        new = self.paddr_to_iopte(table) | PTE_TYPE_TABLE
        if self.cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS:
            new |= PTE_NSTABLE
        self._table_visible_before_pte()
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
            self._warn("__arm_lpae_map: no table below the last level (-EINVAL)")
            return -EINVAL
        pte = self.rd(ptep)
        cptep = 0
        if not pte:
            if self.mem.faults.fails("pgtable"):
                return -ENOMEM                    # __arm_lpae_alloc_pages() returned NULL
            cptep = self._alloc_pages(self.granule)
            pte = self._install_table(cptep, ptep, 0)
            if pte:
                self._free_pages(cptep, self.granule)
        elif not self.cfg.coherent_walk and not pte & PTE_SW_SYNC:
            self._sync_pte(ptep, 1)
        if pte and not self.iopte_leaf(pte, lvl):
            cptep = self.iopte_to_paddr(pte)
        elif pte:
            self._warn_unless_quiet("__arm_lpae_map: map over a leaf (-EEXIST)")
            return -EEXIST
        return self._map(iova, paddr, size, pgcount, prot, lvl + 1, cptep, mapped)

    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        """arm_lpae_map_pages(): returns (ret, mapped bytes)."""
        cfg = self.cfg
        if not pgsize or (pgsize & cfg.pgsize_bitmap) != pgsize:
            self._warn("arm_lpae_map_pages: pgsize not in pgsize_bitmap (-EINVAL)")
            return -EINVAL, 0
        if self._iaext(iova) or paddr >> cfg.oas:
            self._warn("arm_lpae_map_pages: iova or paddr out of range (-ERANGE)")
            return -ERANGE, 0
        if not prot & (IOMMU_READ | IOMMU_WRITE):
            return -EINVAL, 0
        mapped = [0]
        ret = self._map(iova, paddr, pgsize, pgcount, self.prot_to_pte(prot), self.start_level, self.pgd, mapped)
        self.mem.wmb()       # "Synchronise all PTE updates for the new mapping before ... a table walk"
        return ret, mapped[0]

    # ---- unmap -------------------------------------------------------------------------------
    def _free_pgtable(self, lvl: int, table: int) -> None:
        """__arm_lpae_free_pgtable(): free a table and every table below it."""
        size = self.pgd_size if lvl == self.start_level else self.granule
        if lvl < MAX_LEVELS - 1:
            for off in range(0, size, 8):
                pte = self.rd(table + off)
                if pte and not self.iopte_leaf(pte, lvl):
                    self._free_pgtable(lvl + 1, self.iopte_to_paddr(pte))
        self._free_pages(table, size)

    def _unmap(self, gather: Gather | None, iova: int, size: int, pgcount: int, lvl: int, tbl: int) -> int:
        """__arm_lpae_unmap()."""
        self.hw.tick()
        if lvl == MAX_LEVELS:
            self._warn("__arm_lpae_unmap: ran out of levels")
            return 0
        unmap_idx = self.lvl_idx(iova, lvl)
        ptep = tbl + 8 * unmap_idx
        pte = self.rd(ptep)
        if not pte:
            self._warn_unless_quiet("__arm_lpae_unmap: empty PTE")
            return 0
        if size == self.block_size(lvl):
            num = min(pgcount, self.max_entries(unmap_idx))
            i = 0
            while i < num:
                pte = self.rd(ptep + 8 * i)
                if not pte:
                    self._warn_unless_quiet("__arm_lpae_unmap: empty PTE in the range")
                    break
                if not self.iopte_leaf(pte, lvl):
                    self._clear_pte(ptep + 8 * i, 1)
                    # Also flush any partial walks
                    self._tlb_flush_walk(iova + i * size, size, self.granule)
                    self._free_pgtable(lvl + 1, self.iopte_to_paddr(pte))
                i += 1
            self._clear_pte(ptep, i)
            if gather is not None and not queued(gather):
                self._gather_unmapped(gather, iova, i, size)
            return i * size
        if self.iopte_leaf(pte, lvl):
            if self.kernel.split_blk_unmap:
                return self._split_blk_unmap(gather, iova, size, pte, lvl + 1, ptep, pgcount)
            # 33729a5fc0ca: WARN_ONCE(true, "Unmap of a partial large IOPTE is not allowed")
            self._warn("__arm_lpae_unmap: partial unmap of a large IOPTE (WARN_ONCE)")
            return 0
        return self._unmap(gather, iova, size, pgcount, lvl + 1, self.iopte_to_paddr(pte))

    def _split_blk_unmap(self, gather: Gather | None, iova: int, size: int, blk_pte: int, lvl: int,
                         ptep: int, pgcount: int) -> int:
        """arm_lpae_split_blk_unmap() (before 33729a5fc0ca): replace the block at `ptep` by a table of
        level `lvl` holding the block's mapping minus [iova, iova + n * size) when size is that level's
        block size (those pages go to the gather, with no queued-gather check), else the whole block,
        and carry on unmapping in the new table (splitting again).  The pages are written and cleaned
        one PTE at a time; the block's TLB entries are left to the gather's invalidation."""
        if lvl == MAX_LEVELS:
            self._warn("arm_lpae_split_blk_unmap: ran out of levels")
            return 0
        tablep = self._alloc_pages(self.granule)
        split_sz = self.block_size(lvl)
        first, num = -1, 0
        if size == split_sz:
            first = self.lvl_idx(iova, lvl)
            num = min(pgcount, self.max_entries(first))
        blk_paddr = self.iopte_to_paddr(blk_pte)
        prot = blk_pte & PTE_ATTR_MASK
        for i in range(self.ptes_per_table):
            if first <= i < first + num:
                continue                                           # Unmap!
            self._init_pte_leaves(blk_paddr + i * split_sz, prot, lvl, 1, tablep + 8 * i)
        self.hw.tick()                    # another CPU may replace the block before the cmpxchg
        pte = self._install_table(tablep, ptep, blk_pte)
        if pte != blk_pte:
            # lost a race: someone else replaced the block (only a table is expected)
            self._free_pages(tablep, self.granule)
            if pte & PTE_TYPE_MASK != PTE_TYPE_TABLE:
                return 0
            tablep = self.iopte_to_paddr(pte)
        elif first >= 0:
            for i in range(num):
                self._tlb_add_page(gather, iova + i * size, size)
            return num * size
        return self._unmap(gather, iova, size, pgcount, lvl, tablep)

    def _gather_unmapped(self, gather: Gather, iova: int, n: int, size: int) -> None:
        """The tail of __arm_lpae_unmap()'s leaf branch: one io_pgtable_tlb_add_page() per entry."""
        for j in range(n):
            self._tlb_add_page(gather, iova + j * size, size)

    def _tlb_add_page(self, gather: Gather | None, iova: int, size: int) -> None:
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
            self._warn("arm_lpae_unmap_pages: bad pgsize or pgcount")
            return 0
        if self._iaext(iova):
            self._warn("arm_lpae_unmap_pages: iova out of range")
            return 0
        return self._unmap(gather, iova, pgsize, pgcount, self.start_level, self.pgd)

    def iova_to_phys(self, iova: int) -> int:
        """arm_lpae_iova_to_phys(): the leaf's address ORed with the offset into its block."""
        ptep = self.pgd
        lvl = self.start_level
        while lvl < MAX_LEVELS:
            pte = self.rd(ptep + 8 * self.lvl_idx(iova, lvl))
            if not pte:
                return 0
            if self.iopte_leaf(pte, lvl):
                return self.iopte_to_paddr(pte) | (iova & (self.block_size(lvl) - 1))
            if not self.iopte_table(pte, lvl):
                return 0
            ptep = self.iopte_to_paddr(pte)
            lvl += 1
        return 0

    def free(self) -> None:
        """arm_lpae_free_pgtable()."""
        self._free_pgtable(self.start_level, self.pgd)
