"""The DMA API layer over the iommu core (drivers/iommu/dma-iommu.c): an IOVA allocator, strict and
flush-queue (DMA-FQ) domains, the flush queue's start/finish counters and reap rule, flush on a full
ring, the timer flush, and the live strict -> FQ switch."""

from .gather import Gather

FQ_SIZE = 4            # IOVA_DEFAULT_FQ_SIZE is 256; a short ring reaches "ring full" in short programs
IOVA_BASE = 0x10_0000


class IovaAllocator:
    """alloc_iova_fast()/free_iova_fast(): size-aligned, lowest free address first, so freed IOVAs are
    reused at once (the property the flush queue must protect)."""

    def __init__(self, limit: int, granule: int):
        self.limit, self.granule = limit, granule
        self.used: dict[int, int] = {}      # iova -> size

    def alloc(self, size: int) -> int | None:
        size = max(self.granule, 1 << (size - 1).bit_length())
        iova = max(IOVA_BASE, size)
        for start, sz in sorted(self.used.items()):
            if iova + size <= start:
                break
            iova = max(iova, (start + sz + size - 1) & ~(size - 1))
        if iova + size > self.limit:
            return None
        self.used[iova] = size
        return iova

    def free(self, iova: int) -> None:
        self.used.pop(iova, None)


class FlushQueue:
    """struct iova_fq + the cookie's fq_flush_start_cnt / fq_flush_finish_cnt."""

    def __init__(self):
        self.entries: list[tuple[int, int, list, int]] = []    # (iova, size, freelist, counter)
        self.start_cnt = 0
        self.finish_cnt = 0
        self.timer_armed = False


class DmaIommu:
    """One DMA domain's cookie and the dma-iommu paths that matter for invalidation."""

    def __init__(self, core, domain, limit: int, granule: int, free_table_pages, faults=None):
        self.core, self.domain = core, domain
        self.faults = faults                        # reference/alloc_faults.py (None: nothing fails)
        self.iovad = IovaAllocator(limit, granule)
        self.granule = granule
        self.fq: FlushQueue | None = None          # cookie->fq_domain
        self.free_table_pages = free_table_pages
        self.tried: tuple[int, int] | None = None    # the IOVA range the last map() allocated (for the harness)

    def _fails(self, kind: str) -> bool:
        return self.faults is not None and self.faults.fails(kind)

    def enable_fq(self, fallible: bool = True) -> bool:
        """iommu_dma_init_fq(): a live strict domain becomes DMA-FQ (fq_domain published last); if the queue's
        allocation fails (iommu_dma_init_fq_percpu() -ENOMEM, "iova flush queue initialization failed") the
        domain stays strict (iommu_dma_init_domain() sets IOMMU_DOMAIN_DMA)."""
        if self.fq is None:
            if fallible and self._fails("fq"):
                return False
            self.fq = FlushQueue()
        return True

    def map(self, paddr: int, size: int, prot: int) -> int:
        """__iommu_dma_map(): allocate an IOVA, iommu_map(); on failure free the IOVA."""
        off = paddr & (self.granule - 1)
        size = (size + off + self.granule - 1) & ~(self.granule - 1)
        iova = self.alloc_iova(size)
        self.tried = None if iova is None else (iova, size)
        if iova is None:
            return -12
        ret = self.core.iommu_map(self.domain, iova, paddr - off, size, prot)
        if ret:
            self.iovad.free(iova)
            return ret
        return iova + off

    def alloc_iova(self, size: int) -> int | None:
        """iommu_dma_alloc_iova(): alloc_iova_fast() with flush_rcache (the rcaches hold only IOVAs already
        flushed: here they are simply free); None (0) once the space is exhausted, as fail_nth("iova") makes it."""
        if self._fails("iova"):
            return None
        return self.iovad.alloc(size)

    def unmap(self, dma_addr: int, size: int) -> int:
        """__iommu_dma_unmap(): unmap_fast into a gather marked queued in FQ mode; strict syncs now."""
        off = dma_addr & (self.granule - 1)
        iova = dma_addr - off
        size = (size + off + self.granule - 1) & ~(self.granule - 1)
        g = Gather()
        g.queued = self.fq is not None
        got = self.core.iommu_unmap_fast(self.domain, iova, size, g)
        if not g.queued:
            self.core.iotlb_sync(self.domain, g)
        self.free_iova(iova, size, g)
        return got

    def free_iova(self, iova: int, size: int, g: Gather) -> None:
        """iommu_dma_free_iova(): queued -> flush queue; strict -> reusable now."""
        if g.queued:
            self.queue_iova(iova, size, g.freelist)
        else:
            self.iovad.free(iova)

    # ---- flush queue ------------------------------------------------------------------------------
    def fq_flush_iotlb(self) -> None:
        """fq_flush_iotlb(): start, flush everything, finish."""
        self.fq.start_cnt += 1
        self.core.flush_iotlb_all(self.domain)
        self.fq.finish_cnt += 1

    def fq_ring_free(self) -> None:
        """fq_ring_free_locked(): reap the entries whose flush has finished."""
        fq = self.fq
        while fq.entries and fq.entries[0][3] < fq.finish_cnt:
            iova, _size, freelist, _cnt = fq.entries.pop(0)
            self.free_table_pages(freelist)
            self.iovad.free(iova)

    def queue_iova(self, iova: int, size: int, freelist: list) -> None:
        """queue_iova(): reap, flush if the ring is full, append with the current start counter."""
        fq = self.fq
        self.fq_ring_free()
        if len(fq.entries) >= FQ_SIZE:
            self.fq_flush_iotlb()
            self.fq_ring_free()
        fq.entries.append((iova, size, list(freelist), fq.start_cnt))
        freelist.clear()
        fq.timer_armed = True

    def fq_timeout(self) -> None:
        """fq_flush_timeout(): the timer fired."""
        if self.fq is None or not self.fq.timer_armed:
            return
        self.fq.timer_armed = False
        self.fq_flush_iotlb()
        self.fq_ring_free()


class EagerFreeDmaIommu(DmaIommu):
    """Test-only: FQ mode that frees IOVAs and table pages at once, without waiting for any flush."""

    def queue_iova(self, iova: int, size: int, freelist: list) -> None:
        self.free_table_pages(list(freelist))
        freelist.clear()
        self.iovad.free(iova)
        self.fq.timer_armed = True
