"""arm-smmu-v3's invalidation path (drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c), extracted from the tree by name.

`generate()` reads the (patched) tree's arm-smmu-v3.c, checks that every function of `NEEDS` is there in the
shape csrc/driver.c calls it, adds the file's own helpers those functions call (command building, batching,
arm_smmu_tlb_inv_asid, ...), and writes them, in the file's order and with `#line` markers back to
arm-smmu-v3.c, into the generated `arm_smmu_v3_gen.c` that csrc/driver.c includes. The queue itself is not
taken: `REPLACED` (arm_smmu_cmdq_issue_cmdlist, which writes the commands into the hardware queue and polls
for the CMD_SYNC) is csrc/driver.c's, which hands the commands the C built to the emulator; its shape is
checked all the same, so a tree where it changed is a one-line ExtractError naming it. The tree's
arm-smmu-v3.h is compiled as it is (with csrc/driver_env.h for what it needs beyond kernel_env.h).
"""

import os
import re

from .extract import ExtractError, Source, check_shapes, closure, generate_unit

SOURCE = "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c"
HEADER = "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h"
BITFIELD = "include/linux/bitfield.h"
GENERATED = "arm_smmu_v3_gen.c"
UNIT = "driver.c"
_E, _S, _D, _G = ("struct arm_smmu_cmdq_ent *", "struct arm_smmu_device *", "struct arm_smmu_domain *",
                  "struct iommu_iotlb_gather *")
_M, _STE = "struct arm_smmu_master *", "struct arm_smmu_ste *"
# what csrc/driver.c calls, with the parameter types they have in 6.12
NEEDS = {
    "arm_smmu_cmdq_build_cmd": ("u64 *", _E),
    "arm_smmu_cmdq_build_sync_cmd": ("u64 *", _S, "struct arm_smmu_cmdq *", "u32"),
    "__arm_smmu_tlb_inv_range": (_E, "unsigned long", "size_t", "size_t", _D),
    "arm_smmu_tlb_inv_range_domain": ("unsigned long", "size_t", "size_t", "bool", _D),
    "arm_smmu_atc_inv_to_cmd": ("int", "unsigned long", "size_t", _E),
    "arm_smmu_atc_inv_master": ("struct arm_smmu_master *", "ioasid_t"),
    "arm_smmu_atc_inv_domain": (_D, "unsigned long", "size_t"),
    "arm_smmu_tlb_inv_context": ("void *",),
    "arm_smmu_iotlb_sync": ("struct iommu_domain *", _G),
    "arm_smmu_flush_iotlb_all": ("struct iommu_domain *",),
    "arm_smmu_tlb_inv_page_nosync": (_G, "unsigned long", "size_t", "void *"),
    "arm_smmu_tlb_inv_walk": ("unsigned long", "size_t", "size_t", "void *"),
    # what the io-pgtable is asked for (coherent_walk, and seed 003's defer_sync_pte)
    "arm_smmu_domain_finalise": (_D, _S, "u32"),
    # the STE writer (arm_smmu_write_entry and its ops come with it) and the STEs attach asks for
    "arm_smmu_write_ste": (_M, "u32", _STE, "const struct arm_smmu_ste *"),
    "arm_smmu_make_abort_ste": (_STE,),
    "arm_smmu_make_bypass_ste": (_S, _STE),
    "arm_smmu_make_cdtable_ste": (_STE, _M, "bool", "unsigned int"),
    "arm_smmu_make_s2_domain_ste": (_STE, _M, _D, "bool"),
}
_CD = "struct arm_smmu_cd *"
OPTIONAL = {"arm_smmu_tlb_inv_range_asid": ("unsigned long", "size_t", "int", "size_t", "bool", _D),
            "arm_smmu_tlb_inv_asid": (_S, "u16"),
            # the CD writer (6.10 on; before it the CD stays the model's)
            "arm_smmu_make_s1_cd": (_CD, _M, _D),
            "arm_smmu_write_cd_entry": (_M, "int", _CD, "const struct arm_smmu_cd *")}
CD_WRITER = {"arm_smmu_make_s1_cd", "arm_smmu_write_cd_entry"}
# the tree's functions csrc/driver.c defines itself (same name and shape): the hardware queue, and
# arm_smmu_domain_finalise()'s ASID and VMID allocators (the model's ASID/VMID)
REPLACED = {"arm_smmu_cmdq_issue_cmdlist": (_S, "struct arm_smmu_cmdq *", "u64 *", "int", "bool"),
            "arm_smmu_domain_finalise_s1": (_S, _D),
            "arm_smmu_domain_finalise_s2": (_S, _D)}
# iommu_domain_ops members the core calls that arm-smmu-v3 may set (seed 003 PATCH 2/2 adds iotlb_sync_map):
# the function the file assigns is extracted where there is one, and csrc/driver.c calls it as KC_DRV_<OP>
DOMAIN_OPS = {"iotlb_sync_map": ("struct iommu_domain *", "unsigned long", "size_t")}
# the header's structs csrc/driver.c fills from the Python state
STRUCTS = {
    "arm_smmu_device": ("features", "options", "cmdq", "impl_ops"),
    "arm_smmu_domain": ("smmu", "nr_ats_masters", "stage", "cd", "s2_cfg", "domain", "devices", "pgtbl_ops"),
    "arm_smmu_master": ("smmu", "streams", "num_streams", "ats_enabled", "cd_table", "stall_enabled"),
    "arm_smmu_ctx_desc_cfg": ("cdtab_dma", "s1fmt", "s1cdmax"),
    "arm_smmu_ste": ("data",),
    "arm_smmu_master_domain": ("devices_elm", "master", "ssid"),
    "arm_smmu_stream": ("id",),
}
MAX_HELPERS = 24
CONFIG = ("CONFIG_IOMMU_API", "CONFIG_ARM_SMMU_V3")


def check_header(path: str) -> str | None:
    """None if the tree's arm-smmu-v3.h has the structs csrc/driver.c fills, in that shape; else one line."""
    return check_shapes(path, HEADER, CONFIG, STRUCTS, {})


def domain_ops(src: Source) -> dict:
    """DOMAIN_OPS member -> the function of the file its `.member = fn` initialisers assign (shape-checked), for
    the members one is assigned; a member given two different functions is a one-line ExtractError."""
    out = {}
    for op, params in DOMAIN_OPS.items():
        names = sorted(set(re.findall(rf"\.{op}\s*=\s*([A-Za-z_]\w*)\s*[,}}]", src.code)))
        if len(names) > 1:
            raise ExtractError(f"{src.path}: .{op} is set to {' and '.join(names)}: smmufuzz calls one")
        if names:
            src.require_function(names[0], params)
            out[op] = names[0]
    return out


def select(src: Source) -> list:
    """The Definitions to extract (NEEDS, the DOMAIN_OPS functions, OPTIONAL where present, their helpers in the
    file but not REPLACED), after checking that REPLACED still has the shape csrc/driver.c gives it."""
    for n, p in REPLACED.items():
        src.require_function(n, p)
    ops = {fn: DOMAIN_OPS[op] for op, fn in domain_ops(src).items()}
    return closure(src, {**NEEDS, **ops}, OPTIONAL, MAX_HELPERS, REPLACED)


def generate(tree_dir: str, out_dir: str) -> list[str]:
    """Write out_dir/arm_smmu_v3_gen.c from tree_dir's arm-smmu-v3.c; returns the function names it holds.
    Raises ExtractError (one line) when the tree lacks a file, a function, or one changed shape."""
    for f in (SOURCE, HEADER, BITFIELD):
        if not os.path.exists(os.path.join(tree_dir, f)):
            raise ExtractError(f"{f}: not in the tree (arm-smmu-v3's invalidation path is built from it)")
    err = check_header(os.path.join(tree_dir, HEADER))
    if err:
        raise ExtractError(err)
    names = generate_unit(tree_dir, out_dir, SOURCE, CONFIG, select, GENERATED, "kernel/cdriver.py")
    with open(os.path.join(tree_dir, SOURCE), encoding="utf-8", errors="replace") as f:
        ops = domain_ops(Source(f.read(), SOURCE, CONFIG))
    with open(os.path.join(out_dir, GENERATED), "a") as f:
        f.writelines(f"#define KC_DRV_{op.upper()} {fn}\n" for op, fn in ops.items())
    return names
