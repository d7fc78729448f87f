"""struct iommu_iotlb_gather and its helpers (include/linux/iommu.h)."""

ULONG_MAX = (1 << 64) - 1


class Gather:
    """struct iommu_iotlb_gather: start/end (inclusive), pgsize hint, freelist, queued."""
    __slots__ = ("start", "end", "pgsize", "freelist", "queued")

    def __init__(self):
        gather_init(self)

    def empty(self) -> bool:
        return self.start >= self.end

    def __repr__(self) -> str:
        return f"Gather(start={self.start:#x}, end={self.end:#x}, pgsize={self.pgsize:#x})"


def gather_init(g: Gather) -> None:
    """iommu_iotlb_gather_init()."""
    g.start = ULONG_MAX
    g.end = 0
    g.pgsize = 0
    g.freelist = []
    g.queued = False


def add_range(g: Gather, iova: int, size: int) -> None:
    """iommu_iotlb_gather_add_range(): grow [start, end] to cover the range (end inclusive, wraps)."""
    last = (iova + size - 1) & ULONG_MAX
    if g.start > iova:
        g.start = iova
    if g.end < last:
        g.end = last


def is_disjoint(g: Gather, iova: int, size: int) -> bool:
    """iommu_iotlb_gather_is_disjoint(): a non-empty gather that the range neither overlaps nor touches."""
    start = iova
    end = (iova + size - 1) & ULONG_MAX
    return g.end != 0 and (((end + 1) & ULONG_MAX) < g.start or start > ((g.end + 1) & ULONG_MAX))


def add_page(core, domain, g: Gather, iova: int, size: int) -> None:
    """iommu_iotlb_gather_add_page(): sync first if the page size changes or the range is disjoint."""
    if (g.pgsize and g.pgsize != size) or is_disjoint(g, iova, size):
        core.iotlb_sync(domain, g)
    g.pgsize = size
    add_range(g, iova, size)


def queued(g: Gather | None) -> bool:
    """iommu_iotlb_gather_queued()."""
    return g is not None and g.queued


def add_range_pgsize(core, domain, g: Gather, iova: int, size: int, pgsize: int) -> None:
    """iommu_iotlb_gather_add_range_pgsize() (Jason Gunthorpe's seed-000 v2): add_page's rules with the
    page size kept apart from the range size."""
    if (g.pgsize and g.pgsize != pgsize) or is_disjoint(g, iova, size):
        core.iotlb_sync(domain, g)
    g.pgsize = pgsize
    add_range(g, iova, size)
