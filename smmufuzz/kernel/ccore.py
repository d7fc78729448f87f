"""The iommu core's map/unmap path (drivers/iommu/iommu.c), extracted from the tree by function name.

`generate()` reads the (patched) tree's iommu.c, checks that every function of `NEEDS` is there in the
shape csrc/core.c calls it (and the `OPTIONAL` ones, where the tree has them), adds the file's own
helpers those functions call, and writes them, in the file's order and with `#line` markers back to
iommu.c, into the generated `iommu_core_gen.c` that csrc/core.c includes. Nothing of iommu.c is kept in
this repository: the text comes from the user's tree at build time, into the build directory. A missing
or reshaped function is a one-line ExtractError naming it.
"""

import os

from .extract import ExtractError, Source, check_shapes, closure, generate_unit

SOURCE = "drivers/iommu/iommu.c"
HEADER = "include/linux/iommu.h"
GENERATED = "iommu_core_gen.c"
UNIT = "core.c"
_D, _G = "struct iommu_domain *", "struct iommu_iotlb_gather *"
# what csrc/core.c calls (the kernel API), and the loop under it, with the parameter types it has in 6.12
NEEDS = {
    "iommu_pgsize": (_D, "unsigned long", "phys_addr_t", "size_t", "size_t *"),
    "__iommu_map": (_D, "unsigned long", "phys_addr_t", "size_t", "int", "gfp_t"),
    "iommu_map": (_D, "unsigned long", "phys_addr_t", "size_t", "int", "gfp_t"),
    "__iommu_unmap": (_D, "unsigned long", "size_t", _G),
    "iommu_unmap": (_D, "unsigned long", "size_t"),
    "iommu_unmap_fast": (_D, "unsigned long", "size_t", _G),
    "iommu_map_sg": (_D, "unsigned long", "struct scatterlist *", "unsigned int", "int", "gfp_t"),
}
# later mainline splits iommu_map() (iommu_map_nosync + iommu_sync_map): taken, and checked, where present
OPTIONAL = {
    "iommu_map_nosync": (_D, "unsigned long", "phys_addr_t", "size_t", "int", "gfp_t"),
    "iommu_sync_map": (_D, "unsigned long", "size_t"),
}
# the header's side of the interface core.c builds a domain with (the driver's ops and the gather)
STRUCTS = {
    "iommu_domain": ("type", "ops", "pgsize_bitmap"),
    "iommu_domain_ops": ("map_pages", "unmap_pages", "iotlb_sync", "iotlb_sync_map", "flush_iotlb_all"),
    "iommu_iotlb_gather": ("start", "end", "pgsize", "freelist", "queued"),
}
HEADER_FUNCTIONS = {"iommu_iotlb_sync": (_D, _G), "iommu_flush_iotlb_all": (_D,),
                    "iommu_iotlb_gather_init": (_G,),
                    "iommu_iotlb_gather_add_page": (_D, _G, "unsigned long", "size_t")}   # arm-smmu-v3's helper
MAX_HELPERS = 16                   # iommu.c helpers pulled in by the closure (a tree that needs more changed shape)
CONFIG = ("CONFIG_IOMMU_API",)


def select(src: Source) -> list:
    """The Definitions to extract: NEEDS (shape-checked), OPTIONAL where present, and the iommu.c
    functions they call, transitively. Raises ExtractError (one line) for a missing or reshaped one."""
    return closure(src, NEEDS, OPTIONAL, MAX_HELPERS)


def check_header(path: str) -> str | None:
    """None if the tree's iommu.h has the structs and inlines core.c uses, in that shape; else one line."""
    return check_shapes(path, HEADER, CONFIG, STRUCTS, HEADER_FUNCTIONS)


def generate(tree_dir: str, out_dir: str) -> list[str]:
    """Write out_dir/iommu_core_gen.c from tree_dir's iommu.c; returns the function names it holds.
    Raises ExtractError (one line) when the tree lacks one of them or it changed shape."""
    path = os.path.join(tree_dir, SOURCE)
    if not os.path.exists(path):
        raise ExtractError(f"{SOURCE}: not in the tree (the core's map/unmap path is extracted from it)")
    err = check_header(os.path.join(tree_dir, HEADER))
    if err:
        raise ExtractError(err)
    return generate_unit(tree_dir, out_dir, SOURCE, CONFIG, select, GENERATED, "kernel/ccore.py")
