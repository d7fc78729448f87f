"""VariantCaps: what a variant's driver supports and how it must be driven, as one typed value.

Variants state these facts as class attributes next to the kernel code they model (e.g. PGSIZE_BITMAP for
domain->pgsize_bitmap, OAS for the IOMMU's output address size); the harness reads them only
through caps(factory), never by attribute name.
"""

from dataclasses import dataclass, field

PGSIZE_BITMAPS = {12: (1 << 12) | (1 << 21) | (1 << 30), 14: (1 << 14) | (1 << 25), 16: (1 << 16) | (1 << 29)}


@dataclass(frozen=True)
class VariantCaps:
    config: dict = field(default_factory=dict)     # program config the driver forces (e.g. 4K only, IAS 32)
    hw: dict = field(default_factory=dict)         # SMMU features of the driver's hardware (coherent, walk_cache)
    pgsize_bitmap: int | None = None               # domain->pgsize_bitmap (None: io-pgtable-arm's for the granule)
    no_perms: bool = False                         # a format without permission bits
    oas: int = 48                                  # the IOMMU's output address size
    pa_min: int = 0                                # lowest mappable physical address
    chunk_extents: bool = False                    # a later unmap removes a whole map_pages() call, not a page
    fq_default: bool = False                       # an IOMMU_DOMAIN_DMA_FQ domain from the start
    concurrent: bool = False                       # runs step by step under the scheduler (seed-002 variants)
    store_barriers: bool = False                   # its page-table code has the kernel's dma_wmb()/wmb(): the
    #                                                SMMU observes its stores weakly ordered (reference/store_order.py)

    def bitmap(self, pg_shift: int) -> int:
        return self.pgsize_bitmap if self.pgsize_bitmap is not None else PGSIZE_BITMAPS[pg_shift]


def caps(factory) -> VariantCaps:
    """The capabilities a variant class declares (read each time: some classes are made at run time)."""
    g = getattr
    return VariantCaps(
        config=dict(g(factory, "CONFIG", {})), hw=dict(g(factory, "HW_OVERRIDES", {})),
        pgsize_bitmap=g(factory, "PGSIZE_BITMAP", None), no_perms=g(factory, "NO_PERMS", False),
        oas=g(factory, "OAS", 48), pa_min=g(factory, "PA_MIN", 0),
        chunk_extents=g(factory, "MAPPING_UNIT", "page") == "chunk", fq_default=g(factory, "FQ_DEFAULT", False),
        concurrent=g(factory, "CONCURRENT", False),
        store_barriers=_store_barriers(g(factory, "driver_cls", None)))


def _store_barriers(driver) -> bool:
    """Does the driver's page-table code have the kernel's barriers? A driver with its own table format says so
    itself; else its io-pgtable class does."""
    if hasattr(driver, "STORE_BARRIERS"):
        return driver.STORE_BARRIERS
    return getattr(getattr(driver, "pgtable_cls", None), "STORE_BARRIERS", False)
