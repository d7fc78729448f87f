"""The OS intent: what the iommu API calls of a program promised, per domain (smmu-reference §2.1).

Tracked from the calls and their documented contracts only (iommu_map / iommu_unmap /
iommu_unmap_fast + iommu_iotlb_sync / iommu_flush_iotlb_all / attach), never from a
variant's data structures. Mappings are kept as the leaf extents iommu_pgsize() splits a
map call into, because that is the unit a later unmap may remove whole.
"""

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

M64 = (1 << 64) - 1
MAPPED, PENDING, UNKNOWN = "mapped", "pending", "unknown"
IOMMU_READ, IOMMU_WRITE = 1, 2


def iommu_pgsize(bitmap: int, iova: int, paddr: int, size: int) -> tuple[int, int]:
    """iommu_pgsize() (drivers/iommu/iommu.c): the page size and count for the next map/unmap chunk."""
    merge = paddr | iova
    cand = bitmap & ((2 << (size.bit_length() - 1)) - 1)
    if merge:
        cand &= (2 << ((merge & -merge).bit_length() - 1)) - 1
    if not cand:
        raise ValueError("iommu_pgsize: no page size fits")
    idx = cand.bit_length() - 1
    pgsize = 1 << idx
    bigger = bitmap & ~((2 << idx) - 1)
    if bigger:
        nsz = bigger & -bigger
        if ((iova ^ paddr) & (nsz - 1)) == 0:
            off = nsz - (merge & (nsz - 1))
            if off + nsz <= M64 and off + nsz <= size:
                size = off
    return pgsize, size >> idx


def hw_perms(prot: int, stage: int) -> str:
    """The permissions a leaf can express for an IOMMU_READ/IOMMU_WRITE prot (stage 0: a format with no
    permission bits, e.g. sprd or v7s with IO_PGTABLE_QUIRK_NO_PERMS)."""
    if stage == 0:
        return "rw"
    if stage == 1:
        return "rw" if prot & IOMMU_WRITE else "r"
    return ("r" if prot & IOMMU_READ else "") + ("w" if prot & IOMMU_WRITE else "")


@dataclass(slots=True)
class Extent:
    base: int
    span: int
    pa: int
    perms: str
    state: str
    op: int          # index of the op that created it


class DomainSpec:
    """The intended IOVA -> PA map of one domain, as leaf extents."""

    def __init__(self, bitmap: int, ias: int, oas: int, stage: int, chunk_extents: bool = False):
        self.bitmap = bitmap
        self.chunk_extents = chunk_extents     # the unit a later unmap removes whole: a map_pages() call
        self.ias = ias
        self.oas = oas
        self.stage = stage
        self.min_pg = bitmap & -bitmap
        self.bases: list[int] = []
        self.ext: dict[int, Extent] = {}
        self.removed: list[tuple[int, int, int]] = []   # (lo, hi, op) of every promised removal
        self.version = 0                                 # bumped by every change of an extent
        # incremental checking: translations (va, span, pa, perms) found allowed by this intent, kept until an
        # extent they overlap changes (the changed ranges wait in _dirty until the next lookup)
        self._clean: set = set()
        self._dirty: list[tuple[int, int]] = []
        self._views: dict = {}                           # version-keyed derived lists (mapped, unsettled)

    # ---- queries ---------------------------------------------------------------------------
    def overlapping(self, lo: int, hi: int) -> list[Extent]:
        bases = self.bases
        i = bisect_left(bases, lo)
        if i > 0:
            i -= 1
        out = []
        ext = self.ext
        while i < len(bases) and bases[i] < hi:
            e = ext[bases[i]]
            if e.base + e.span > lo:
                out.append(e)
            i += 1
        return out

    def mapped(self) -> list[Extent]:
        v = self._views.get("mapped")
        if v is None or v[0] != self.version:
            v = self._views["mapped"] = (self.version, [self.ext[b] for b in self.bases
                                                        if self.ext[b].state == MAPPED])
        return v[1]

    def unsettled(self) -> list[tuple[int, int]]:
        """[lo, hi) of every extent not MAPPED (pending a sync, or unknown): where a translation may still
        legally differ between two correct kernels."""
        v = self._views.get("unsettled")
        if v is None or v[0] != self.version:
            v = self._views["unsettled"] = (self.version, [(e.base, e.base + e.span) for e in self.ext.values()
                                                           if e.state != MAPPED])
        return v[1]

    def known_clean(self, key: tuple) -> bool:
        """Was translation key = (va, span, pa, perms) found allowed, with no overlapping extent changed since?"""
        if self._dirty:
            self._purge()
        return key in self._clean

    def note_clean(self, key: tuple) -> None:
        if len(self._clean) > 65536:
            self._clean.clear()
        self._clean.add(key)

    def _purge(self) -> None:
        """Forget the clean translations that overlap a changed range."""
        dirty = sorted(self._dirty)
        self._dirty = []
        if not self._clean:
            return
        merged: list[list[int]] = []
        for lo, hi in dirty:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        if len(merged) == 1:
            lo, hi = merged[0]
            self._clean = {k for k in self._clean if k[0] >= hi or k[0] + k[1] <= lo}
            return
        los = [m[0] for m in merged]
        keep = set()
        for k in self._clean:
            i = bisect_right(los, k[0] + k[1] - 1) - 1
            if i < 0 or merged[i][1] <= k[0]:
                keep.add(k)
        self._clean = keep

    def ever_removed(self, lo: int, hi: int) -> int | None:
        for a, b, op in reversed(self.removed):
            if a < hi and lo < b:
                return op
        return None

    # ---- updates ---------------------------------------------------------------------------
    def _add(self, e: Extent) -> None:
        self.version += 1
        self._dirty.append((e.base, e.base + e.span))
        self.ext[e.base] = e
        insort(self.bases, e.base)

    def _del(self, e: Extent) -> None:
        self.version += 1
        self._dirty.append((e.base, e.base + e.span))
        del self.ext[e.base]
        self.bases.pop(bisect_left(self.bases, e.base))

    def mark_unknown(self, lo: int, hi: int, op: int) -> None:
        """A call outside the caller contract (prog/contract.py) touched [lo, hi): nothing is promised there,
        nor in the extents it overlaps."""
        for e in self.overlapping(lo, hi):
            lo, hi = min(lo, e.base), max(hi, e.base + e.span)
            self._del(e)
        self._add(Extent(lo, hi - lo, 0, "", UNKNOWN, op))

    def map(self, iova: int, pa: int, size: int, prot: int, op: int) -> bool:
        """iommu_map() returned 0, within the caller contract: the leaf extents iommu_pgsize() splits it into
        (all or nothing: a misaligned or out-of-range call maps nothing). Returns whether it maps."""
        if (iova | pa | size) & (self.min_pg - 1) or size == 0:
            return size == 0 and not (iova | pa) & (self.min_pg - 1)
        if iova >> self.ias or pa >> self.oas:
            return False            # -ERANGE on the first chunk: nothing mapped
        perms = hw_perms(prot, self.stage)
        cur, p, left = iova, pa, size
        while left:
            pgsize, count = iommu_pgsize(self.bitmap, cur, p, left)
            if self.chunk_extents:
                pgsize, count = pgsize * count, 1
            for _ in range(count):
                self._add(Extent(cur, pgsize, p, perms, MAPPED, op))
                cur += pgsize
                p += pgsize
                left -= pgsize
        return True

    def unmap(self, iova: int, size: int, returned: int, op: int, state_after: str | None) -> list[Extent]:
        """iommu_unmap()/iommu_unmap_fast() returned `returned` bytes, within the caller contract: the extents in
        [iova, iova + min(returned, size)) are gone (state_after None) or pending until their gather is synced
        (state_after PENDING)."""
        if (iova | size) & (self.min_pg - 1) or size == 0:
            return []
        done = iova + min(returned, size)
        gone = [e for e in self.overlapping(iova, done) if e.base >= iova and e.base + e.span <= done]
        for e in gone:
            if state_after is None:
                self._del(e)
            else:
                e.state = state_after
                self.version += 1
                self._dirty.append((e.base, e.base + e.span))
        if state_after is None and gone:
            self.removed.append((iova, done, op))
        return gone

    def settle(self, extents: list[Extent], op: int) -> None:
        """The gather holding these pending extents was synced: they are now promised gone."""
        for e in extents:
            if self.ext.get(e.base) is e and e.state == PENDING:
                self._del(e)
                self.removed.append((e.base, e.base + e.span, op))

    def pending(self) -> list[Extent]:
        """The removals not yet promised (unmapped into a gather or a flush queue)."""
        return [e for e in self.ext.values() if e.state == PENDING]


class Spec:
    """OS intent for a whole program: domains, gathers and stream attachments."""

    def __init__(self):
        self.domains: dict[int, DomainSpec] = {}
        self.attached: dict[int, int] = {}     # sid -> domain id
        self.ats: dict[int, bool] = {}          # sid -> ATS requested by the OS
        self.gathers: dict[tuple[int, int], list[Extent]] = {}   # (dom, gather) -> pending extents
        self.fq: set[int] = set()                                 # DMA-FQ domains
        self.fq_pending: dict[int, list[tuple[int, list[Extent], int]]] = {}   # dom -> (hw seq, extents, op)
        self.mms: dict[int, DomainSpec] = {}    # mm -> the process's page table: mapped, or pending a TLB flush
        self.bound: dict[tuple[int, int], int] = {}   # (sid, PASID) -> mm, while an SVA bond holds it
