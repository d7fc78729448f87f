"""Seed 001: the generic IOMMU page table (drivers/iommu/generic_pt/iommu_pt.h) on the LPAE layout, with
its three gather_range_pages() versions, driven by a range-flush IOMMU driver (AMD/VT-d style)."""

from ..reference import cmdq as C
from .gather import Gather, add_range, is_disjoint, queued
from .io_pgtable_arm import (EINVAL, ERANGE, IOMMU_READ, IOMMU_WRITE, PTE_ADDR_MASK, PTE_TYPE_TABLE,
                             ArmLpaeIoPgtable, PgtableCfg)
from .lpae_drivers import ContextDriver
from .os_smmuv3 import SmmuV3Os

EADDRINUSE = 98


class PtIommu(ArmLpaeIoPgtable):
    """iommupt's map/unmap on the LPAE layout (tables and leaves as io-pgtable-arm writes them)."""

    version = "A"                 # gather_range_pages(): A (original), B (always add range), C (Robin)
    flush_range = True            # PT_FEAT_FLUSH_RANGE
    no_gaps = True                # PT_FEAT_FLUSH_RANGE_NO_GAPS (virtualised IOMMUs)
    STORE_BARRIERS = False        # its table install's ordering is not modelled: judged with stores in order

    def __init__(self, cfg, hw, tlb, core=None):
        super().__init__(cfg, hw, tlb)
        self.core = core
        self.domain = None

    # ---- gather --------------------------------------------------------------------------------
    def gather_range_pages(self, g: Gather, iova: int, length: int, free_list: list) -> None:
        """gather_range_pages(): the version under test."""
        v = self.version
        if v == "C" and queued(g):
            pass                                              # DMA-FQ flushes everything later
        elif self.no_gaps and is_disjoint(g, iova, length):
            self.core.iotlb_sync(self.domain, g)              # flushes + frees the old freelist
            if v == "B":
                add_range(g, iova, length)
        elif self.flush_range:
            add_range(g, iova, length)
        g.freelist.extend(free_list)

    # ---- map -------------------------------------------------------------------------------------
    def map_pages(self, iova: int, paddr: int, pgsize: int, pgcount: int, prot: int) -> tuple[int, int]:
        """DOMAIN_NS(map_pages)(): -EADDRINUSE over a leaf; empty tables replaced by a leaf through a
        local gather that is synced (freeing them) before returning."""
        if not prot & (IOMMU_READ | IOMMU_WRITE):
            return -EINVAL, 0
        if paddr >> self.cfg.oas or iova >> self.cfg.ias:
            return -ERANGE, 0
        g = Gather()
        pte_prot = self.prot_to_pte(prot)
        mapped = 0
        ret = 0
        for i in range(pgcount):
            ret = self._map_one(iova + i * pgsize, paddr + i * pgsize, pgsize, pte_prot, g)
            if ret:
                break
            mapped += pgsize
        if g.freelist:
            self.core.iotlb_sync(self.domain, g)
        return ret, mapped

    def _map_one(self, iova, paddr, size, pte_prot, g) -> int:
        self.hw.tick()
        tbl, lvl = self.pgd, self.start_level
        while self.block_size(lvl) != size:
            ptep = tbl + 8 * self.lvl_idx(iova, lvl)
            pte = self.rd(ptep)
            if not pte:
                new = self._alloc_pages(self.granule)
                self.mem.cpu_write(ptep, (new & PTE_ADDR_MASK) | PTE_TYPE_TABLE)
                self._sync_leaves(ptep, 1)
                pte = self.rd(ptep)
            elif not self.iopte_table(pte, lvl):
                return -EADDRINUSE
            tbl, lvl = pte & PTE_ADDR_MASK, lvl + 1
        ptep = tbl + 8 * self.lvl_idx(iova, lvl)
        pte = self.rd(ptep)
        if pte:
            if not self.iopte_table(pte, lvl):
                return -EADDRINUSE
            free_list: list = []
            if not self._collect_empty(lvl + 1, pte & PTE_ADDR_MASK, free_list):
                return -EADDRINUSE                             # clear_contig(): a leaf below
            self._clear_pte(ptep, 1)
            self.gather_range_pages(g, iova, size, free_list)
        self._init_pte_leaves(paddr, pte_prot, lvl, 1, ptep)
        return 0

    def _collect_empty(self, lvl, table, out) -> bool:
        """True if no leaf lives below `table`; its table pages are appended to `out`."""
        size = self.granule
        for off in range(0, size, 8):
            pte = self.rd(table + off)
            if not pte:
                continue
            if lvl < 3 and self.iopte_table(pte, lvl):
                if not self._collect_empty(lvl + 1, pte & PTE_ADDR_MASK, out):
                    return False
            else:
                return False
        out.append(table)
        return True

    # ---- unmap -----------------------------------------------------------------------------------
    def unmap_pages(self, iova: int, pgsize: int, pgcount: int, gather) -> int:
        """DOMAIN_NS(unmap_pages)(): stop at the first hole, a whole leaf goes (maybe past the end), a
        table the range fully covers goes on the freelist; then gather_range_pages(unmapped)."""
        length = pgsize * pgcount
        if not length or iova >> self.cfg.ias:
            return 0
        free_list: list = []
        st = {"unmapped": 0, "stop": False}
        self._unmap_range(self.start_level, self.pgd, 0, iova, iova + length, free_list, st)
        unmapped = st["unmapped"]
        if gather is not None and (unmapped or free_list):
            self.gather_range_pages(gather, iova, unmapped, free_list)
        return unmapped

    def _unmap_range(self, lvl, tbl, tbl_va, lo, hi, free_list, st) -> None:
        self.hw.tick()
        shift = self.lvl_shift(lvl)
        span = 1 << shift
        first = True
        va = max(lo, tbl_va) & ~(span - 1)
        end_tbl = tbl_va + (span << (self.bpl + self.pgd_idx(lvl)))
        while va < min(hi, end_tbl) and not st["stop"]:
            ptep = tbl + 8 * self.lvl_idx(va, lvl)
            pte = self.rd(ptep)
            if not pte:
                st["stop"] = True                               # unmap ends at the first hole
                return
            if self.iopte_table(pte, lvl):
                sub = pte & PTE_ADDR_MASK
                self._unmap_range(lvl + 1, sub, va, max(lo, va), hi, free_list, st)
                if not st["stop"] and lo <= va and va + span <= hi:
                    self._collect_empty(lvl + 1, sub, free_list)   # the (now empty) subtree
                    self._clear_pte(ptep, 1)
            else:
                if first and va < lo:
                    st["stop"] = True                           # starts inside a large leaf: -EINVAL
                    return
                self._clear_pte(ptep, 1)
                st["unmapped"] += span
            first = False
            va += span


class _RangeFlushOps:
    """No io-pgtable callbacks: iommupt drivers invalidate from the gather."""
    domain = None


class PtIommuDriver(ContextDriver):
    """A range-flush IOMMU driver over iommupt (amd/intel style): iotlb_sync invalidates
    [start, end] including the walk caches, then frees the gather's freelist."""

    pgtable_cls = PtIommu        # pt_variant() sets the gather_range_pages version on a subclass

    def make_pgtable(self, d, stage):
        cfg = PgtableCfg(**{**self.pgcfg.__dict__, "stage": stage, "coherent_walk": self.hw.cfg.coherent})
        return self.pgtable_cls(cfg, self.hw, _RangeFlushOps(), self.core)

    def iotlb_sync(self, domain, g) -> None:
        d = domain.priv
        d.pgtbl.domain = domain
        if g.start <= g.end:
            self.hw.tlbi(C.CMD_TLBI_NH_VA, asid=d.asid, addr=g.start & ~0xFFF, end=g.end + 1, leaf=False)
            self.hw.tlb_sync()
        for page in g.freelist:
            self.hw.mem.free_pages(page, d.pgtbl.granule)     # iommu_put_pages_list() after the flush
        g.freelist = []

    def flush_iotlb_all(self, domain) -> None:
        d = domain.priv
        self.hw.tlbi(C.CMD_TLBI_NH_ASID, asid=d.asid)
        self.hw.tlb_sync()


class PtIommuOs(SmmuV3Os):
    driver_cls = PtIommuDriver
    CONFIG = {"pg_shift": 12, "stage": 1}

    def domain(self, dom):
        d = super().domain(dom)
        d.priv.pgtbl.domain = d
        return d


def pt_variant(version: str, fq: bool) -> type:
    """iommupt with gather_range_pages() version A/B/C, FLUSH_RANGE + NO_GAPS; strict or DMA-FQ domains.
    The core is the one of the seed-001 era (February 2026): before 90c5def10bea and Robin's fill,
    which would otherwise paper over version A's dropped range."""
    from .gather_rules import LegacyCore
    pt = type(f"PtIommu{version}", (PtIommu,), {"version": version})
    drv = type(f"PtIommuDriver{version}", (PtIommuDriver,), {"pgtable_cls": pt})
    return type(f"PtIommu{version}{'Fq' if fq else ''}Os", (PtIommuOs,),
                {"driver_cls": drv, "FQ_DEFAULT": fq, "core_cls": LegacyCore,
                 "__doc__": f"iommupt gather_range_pages version {version}, {'DMA-FQ' if fq else 'strict'} domains"})
