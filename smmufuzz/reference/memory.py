"""Physical memory seen by the CPU (through its cache) and by the SMMU (at the PoC), in 64-byte lines.

Models what dma_sync_single_for_device() / __arm_lpae_sync_pte() make visible to a
non-coherent table walker (smmu-reference §1.3, §1.8).
"""

import itertools

from .alloc_faults import AllocFaults
from .store_order import StoreBuffer

_VIEW_IDS = itertools.count(1)     # memory versions of partial views: negative, never reused

LINE = 64
CPU_PAGE = 4096
COHERENT_BASE = 0x2000_0000_0000   # dma_alloc_coherent()'s pool: below the page allocator, never freed here


class Memory:
    """Memory of 32- and 64-bit words (keyed by address) with a CPU view, a PoC view, dirty lines and a
    page allocator."""

    __slots__ = ("coherent", "faults", "cpu", "poc", "dirty", "cleans", "lines_cleaned",
                 "redundant_cleans", "writebacks", "page_gen", "page_free",
                 "_free_lists", "_next", "table_pages", "version", "_cpu_idx", "_poc_idx", "lines_touched",
                 "_next_coherent", "stores", "overlay", "_saved_version", "page_ver", "walk_memo")

    def __init__(self, coherent: bool, base: int = 0x4000_0000_0000, weak: bool = False):
        self.coherent = coherent
        # coherent walks under the weak memory model: the stores the SMMU may not observe yet (store_order.py)
        self.stores: StoreBuffer | None = StoreBuffer() if coherent and weak else None
        self.overlay: dict[int, int] | None = None   # a partial view walks read through (look_through)
        self._saved_version = 0
        self.faults = AllocFaults()        # allocations a program makes fail (alloc_faults.py)
        self.cpu: dict[int, int] = {}      # qword address -> value, CPU view (cache or memory)
        self.poc: dict[int, int] = {}      # qword address -> value, what a non-coherent walker reads
        self.dirty: set[int] = set()       # line addresses whose CPU copy differs from the PoC
        self.cleans = 0                    # CMO operations (calls to clean)
        self.lines_cleaned = 0             # lines written back by CMOs
        self.redundant_cleans = 0          # lines cleaned that were already clean
        self.writebacks = 0                # hardware (eviction) write-backs
        self.lines_touched: set[int] = set()  # distinct lines ever cleaned
        self.page_gen: dict[int, int] = {}  # 4K page -> allocation generation
        self.page_free: set[int] = set()   # 4K pages currently free (after having been allocated)
        self._free_lists: dict[int, list[int]] = {}
        self._next = base
        self.table_pages = 0
        self.version = 0                   # bumped whenever a table walk's view may have changed
        self._cpu_idx: dict[int, set[int]] = {}  # 4K page -> qword addresses holding non-zero values
        self._poc_idx: dict[int, set[int]] = {}
        self._next_coherent = COHERENT_BASE
        self.page_ver: dict[int, int] = {}  # 4K page -> bumped whenever a walk's read of it may change
        self.walk_memo: dict = {}          # what a table walker decoded from one table page (lpae.enumerate_tree)

    # --- CPU side ---------------------------------------------------------------------------
    def cpu_read(self, addr: int) -> int:
        return self.cpu.get(addr, 0)

    def cpu_write(self, addr: int, val: int) -> None:
        """A CPU store: lands in the cache; the PoC sees it only after a clean or write-back. With coherent
        walks, the SMMU observes it at the latest at the next completion (store_order.py)."""
        if self.stores is not None:
            old = self.cpu.get(addr, 0)
            if old != val:
                self.stores.record(addr, old, val)
        _store(self.cpu, self._cpu_idx, addr, val)
        if self.coherent:
            self.version += 1
            page = addr & ~(CPU_PAGE - 1)
            self.page_ver[page] = self.page_ver.get(page, 0) + 1
        else:
            self.dirty.add(addr & ~(LINE - 1))

    def clean(self, addr: int, size: int) -> int:
        """dma_sync_single_for_device(addr, size): clean every line overlapping the range."""
        self.cleans += 1
        lines = range(addr & ~(LINE - 1), addr + max(size, 1), LINE)
        self.lines_touched.update(lines)
        dirty = self.dirty
        hit = [ln for ln in lines if ln in dirty]
        self.lines_cleaned += len(lines)
        self.redundant_cleans += len(lines) - len(hit)
        if hit:
            self._write_back_lines(hit)
        return len(lines)

    def _write_back_lines(self, lines: list[int]) -> None:
        """Copy the CPU view of these dirty lines to the PoC, a page at a time: through the page's
        non-zero words when it has few, else probing every word of each line."""
        cpu, poc, idx, cidx = self.cpu, self.poc, self._poc_idx, self._cpu_idx
        self.dirty.difference_update(lines)
        self.version += len(lines)
        by_page: dict[int, list[int]] = {}
        for ln in lines:
            by_page.setdefault(ln & ~(CPU_PAGE - 1), []).append(ln)
        empty: set = set()
        pv = self.page_ver
        for page, lns in by_page.items():
            pv[page] = pv.get(page, 0) + 1
            cs, ps = cidx.get(page, empty), idx.get(page, empty)
            if len(cs) + len(ps) <= len(lns) * (LINE // 4):
                want = set(lns)
                words = [a for a in cs | ps if a & ~(LINE - 1) in want]
            else:                                            # 32-bit entries (v7s, sun50i, sprd) too
                words = [a for ln in lns for a in range(ln, ln + LINE, 4) if a in cpu or a in poc]
            for a in words:
                _store(poc, idx, a, cpu.get(a, 0))

    def writeback(self, line: int) -> None:
        """Hardware event: a dirty line is evicted from the CPU cache to the PoC."""
        if line in self.dirty:
            self.writebacks += 1
            self._write_back_lines([line])
            self.lines_cleaned += 1

    def coherent_write(self, addr: int, val: int) -> None:
        """A CPU store through a dma_alloc_coherent() mapping (non-cacheable when walks are not coherent):
        the CPU and the SMMU see it at once. `version` stays: no table walk reads this pool (its users, the
        stream table and CDs, are fetched as configuration and counted by their owner: Smmu.strtab_ver)."""
        _store(self.cpu, self._cpu_idx, addr, val)
        _store(self.poc, self._poc_idx, addr, val)
        page = addr & ~(CPU_PAGE - 1)
        self.page_ver[page] = self.page_ver.get(page, 0) + 1

    def alloc_coherent(self, size: int) -> int:
        """dma_alloc_coherent(): zeroed memory from its own pool (the page allocator's addresses are unchanged)."""
        size = max(size, 64)
        pa = (self._next_coherent + size - 1) & ~(size - 1)
        self._next_coherent = pa + size
        return pa

    def dma_wmb(self) -> None:
        """dma_wmb(): the SMMU observes the stores so far before any later one (store_order.py)."""
        if self.stores is not None:
            self.stores.dma_wmb()

    def wmb(self) -> None:
        """wmb(), or a command publication's barrier: every store so far is visible to the SMMU."""
        if self.stores is not None and self.stores.complete():
            self.version += 1              # the partial views are gone: what a walk may read changed

    # --- SMMU side --------------------------------------------------------------------------
    def smmu_read(self, addr: int) -> int:
        """A table-walk read: the CPU view when walks are coherent (through a partial view while one is
        looked at), the PoC otherwise."""
        if self.coherent:
            ov = self.overlay
            if ov is not None and addr in ov:
                return ov[addr]
            return self.cpu.get(addr, 0)
        return self.poc.get(addr, 0)

    @property
    def stores_pending(self) -> bool:
        """Are there CPU stores the SMMU may not observe yet?"""
        return self.stores is not None and bool(self.stores.stores)

    def partial_views(self) -> list[dict[int, int]]:
        """The views of memory the SMMU may have observed, with stores still on their way (store_order.py)."""
        return self.stores.views(self.cpu) if self.stores_pending else []

    def look_through(self, view: dict[int, int] | None) -> None:
        """Make table walks read through `view` (None: back to the CPU's view). `version` takes a value of
        its own per view, so nothing cached per memory version mixes the two."""
        if view is None:
            self.overlay = None
            self.version = self._saved_version
            return
        self._saved_version, self.overlay = self.version, view
        self.version = -next(_VIEW_IDS)

    def release(self) -> None:
        """End of a run (Smmu.release): drop both views, their indexes and what walks remembered."""
        for d in (self.cpu, self.poc, self._cpu_idx, self._poc_idx, self.walk_memo, self.page_ver):
            d.clear()
        self.dirty.clear()

    # --- page allocator (alloc_pages / free_pages) --------------------------------------------
    def alloc_pages(self, size: int) -> int:
        """alloc_pages(GFP_ZERO): naturally aligned, CPU view zeroed; freed pages are reused LIFO.

        A reused page keeps whatever the PoC held: a non-coherent user must clean it.
        """
        size = max(size, CPU_PAGE)
        size = 1 << (size - 1).bit_length()
        fl = self._free_lists.get(size)
        if fl:
            pa = fl.pop()
        else:
            pa = (self._next + size - 1) & ~(size - 1)
            self._next = pa + size
        stores = self.stores
        for p in range(pa, pa + size, CPU_PAGE):
            for a in list(self._cpu_idx.get(p, ())):
                if stores is not None:
                    stores.record(a, self.cpu[a], 0)
                _store(self.cpu, self._cpu_idx, a, 0)
            self.page_ver[p] = self.page_ver.get(p, 0) + 1
        self.version += 1
        if not self.coherent:
            # the CPU zeroed the page: every line is dirty in its cache until cleaned
            self.dirty.update(range(pa, pa + size, LINE))
        for p in range(pa, pa + size, CPU_PAGE):
            self.page_gen[p] = self.page_gen.get(p, 0) + 1
            self.page_free.discard(p)
        self.table_pages += 1
        return pa

    def free_pages(self, pa: int, size: int) -> None:
        """free_pages(): the page goes back to the allocator (contents left as they were)."""
        size = max(size, CPU_PAGE)
        size = 1 << (size - 1).bit_length()
        for p in range(pa, pa + size, CPU_PAGE):
            self.page_free.add(p)
            self.page_gen[p] = self.page_gen.get(p, 0) + 1
        self._free_lists.setdefault(size, []).append(pa)
        self.table_pages -= 1

    def page_token(self, pa: int) -> int:
        """Allocation generation of the 4K page holding pa (changes on every free and alloc)."""
        return self.page_gen.get(pa & ~(CPU_PAGE - 1), 0)

    def is_free(self, pa: int) -> bool:
        return (pa & ~(CPU_PAGE - 1)) in self.page_free

    def cpu_nonzero(self, page: int) -> bool:
        """Does the CPU's view of the 4K page at `page` hold a non-zero qword?"""
        return bool(self._cpu_idx.get(page & ~(CPU_PAGE - 1)))

    def dirty_lines(self) -> list[int]:
        return sorted(self.dirty)

    def walk_stamp(self, base: int, size: int):
        """What a table walk's reads of [base, base+size) hang on: the versions of its 4K pages; None while walks
        read through a partial view (look_through), where nothing decoded from memory may be reused."""
        if self.overlay is not None:
            return None
        pv = self.page_ver
        if size <= CPU_PAGE:
            return pv.get(base & ~(CPU_PAGE - 1), 0)
        return tuple(pv.get(p, 0) for p in range(base & ~(CPU_PAGE - 1), base + size, CPU_PAGE))

    def smmu_nonzero(self, base: int, size: int) -> list[int]:
        """Sorted qword addresses in [base, base+size) that a table walk would read as non-zero."""
        idx = self._cpu_idx if self.coherent else self._poc_idx
        out = []
        for p in range(base & ~(CPU_PAGE - 1), base + size, CPU_PAGE):
            s = idx.get(p)
            if s:
                out.extend(a for a in s if base <= a < base + size)
        ov = self.overlay if self.coherent else None
        if ov:
            inside = [a for a in ov if base <= a < base + size]
            if inside:
                out = sorted({a for a in out if ov.get(a, 1)} | {a for a in inside if ov[a]})
                return out
        out.sort()
        return out


def _store(view: dict, index: dict, addr: int, val: int) -> None:
    page = addr & ~(CPU_PAGE - 1)
    if val:
        view[addr] = val
        index.setdefault(page, set()).add(addr)
    elif addr in view:
        del view[addr]
        s = index.get(page)
        if s is not None:
            s.discard(addr)
