"""Compile a tree's io-pgtable files (plus patches) and our csrc/ glue into a shared library, cached.

csrc/gather.c (the core's gather helpers from the tree's include/linux/iommu.h) goes in when the header
has them in the shape it uses (cgather.check_header); else `Build.core_missing` says which one is not.
csrc/core.c (the core's map/unmap path, extracted from the tree's drivers/iommu/iommu.c by ccore.py
into the build directory's gen/iommu_core_gen.c) likewise; else `Build.ccore_missing` says why.
csrc/driver.c (arm-smmu-v3's invalidation path, extracted from the tree's arm-smmu-v3.c by cdriver.py into
gen/arm_smmu_v3_gen.c, compiled against the tree's arm-smmu-v3.h and bitfield.h) likewise; else
`Build.driver_missing` says why.

The cache key hashes everything that goes in: the tree files, the patches, csrc/, the compiler's
version and the flags. `instrument=True` builds the kernel files with clang
`-fsanitize=fuzzer-no-link` so libFuzzer counts their edges (glue stays uninstrumented).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from . import ccore, cdriver, cgather
from . import patch as P
from .extract import ExtractError
from .tree import Tree, cache_dir

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
KERNEL_UNITS = ("drivers/iommu/io-pgtable.c", "drivers/iommu/io-pgtable-arm.c")
TREE_HEADERS = ("include/linux/io-pgtable.h", "include/linux/iommu.h")   # used as they are; the rest is csrc
BUILT = set(KERNEL_UNITS) | set(TREE_HEADERS) | {"drivers/iommu/io-pgtable-arm.h", "drivers/iommu/iommu-pages.h",
                                                 ccore.SOURCE, cdriver.SOURCE, cdriver.HEADER, cdriver.BITFIELD}
CONFIG = ("CONFIG_IOMMU_API", "CONFIG_IOMMU_IO_PGTABLE_LPAE")
CFLAGS = ["-std=gnu11", "-O1", "-g", "-fPIC", "-fno-strict-aliasing", "-fno-common", "-w",
          "-D__KERNEL__"] + [f"-D{c}" for c in CONFIG]
CSRC_UNITS = ("glue.c", cgather.UNIT)     # ours (uninstrumented); gather.c is built where the tree allows


class BuildError(Exception):
    """The kernel files did not build (one line: the header the environment lacks, or the first error)."""


@dataclass
class Build:
    lib: str                      # the shared library
    tree: Tree
    patches: list                 # patch.Patch, in the order applied
    hunks: list = field(default_factory=list)   # patch.HunkResult
    features: dict = field(default_factory=dict)
    instrumented: bool = False
    core_missing: str | None = None   # why csrc/gather.c (the core's gather helpers) is not in the library
    ccore_missing: str | None = None  # why csrc/core.c (iommu.c's map/unmap path) is not in the library
    driver_missing: str | None = None  # why csrc/driver.c (arm-smmu-v3's invalidation path) is not in it

    @property
    def label(self) -> str:
        """Tree version and patches, as reproducer headers name them."""
        return f"linux {self.tree.version_text}" + "".join(f" + {p.name}" for p in self.patches)


def _compiler(instrument: bool) -> tuple[str, str]:
    cc = os.environ.get("SMMUFUZZ_CC") or ("clang" if instrument else "gcc")
    path = shutil.which(cc)
    if not path:
        raise BuildError(f"no C compiler {cc!r}: install it (apt-get install {'clang' if 'clang' in cc else 'gcc'})")
    ver = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return path, ver[0] if ver else cc


def _digest(tree: Tree, patches, cc_ver: str, flags: list[str]) -> str:
    h = hashlib.sha256()
    for f in sorted(tree.files()):
        h.update(f.encode() + b"\0")
        with open(os.path.join(tree.path, f), "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    for p in patches:
        h.update(b"patch\0" + p.digest_text.encode())
    for root, _dirs, files in sorted(os.walk(CSRC)):
        for f in sorted(files):
            full = os.path.join(root, f)
            h.update(os.path.relpath(full, CSRC).encode() + b"\0")
            with open(full, "rb") as fh:
                h.update(fh.read())
    for mod in (cgather.__file__, ccore.__file__, cdriver.__file__,
                os.path.join(os.path.dirname(cgather.__file__), "extract.py")):
        with open(mod, "rb") as fh:                  # they decide whether gather.c goes in
            h.update(fh.read())
    h.update(cc_ver.encode() + b"\0" + " ".join(flags).encode())
    return h.hexdigest()[:16]


def _features(header: str) -> dict:
    """What this tree's io-pgtable.h offers that the glue may use."""
    with open(header, encoding="utf-8", errors="replace") as f:
        text = f.read()
    ops = text[text.find("struct io_pgtable_ops {"):]
    ops = ops[:ops.find("};")]
    cfg = text[text.find("struct io_pgtable_cfg {"):]
    cfg = cfg[:cfg.find("\n};")]
    return {"defer_sync_pte": bool(re.search(r"\bbool\s+defer_sync_pte\s*;", cfg)),
            "ops_iotlb_sync_map": "(*iotlb_sync_map)" in ops}


def _compile_error(stderr: str, unit: str) -> str:
    m = re.search(r"fatal error: ([\w/.-]+\.h): No such file", stderr)
    if m:
        return (f"{unit} includes <{m.group(1)}>, which smmufuzz's kernel environment (smmufuzz/kernel/csrc) "
                f"lacks: add it there")
    for line in stderr.splitlines():
        if " error: " in line or line.startswith("error"):
            return f"{unit} does not build: {line.strip()}"
    return f"{unit} does not build: {stderr.strip().splitlines()[-1] if stderr.strip() else 'compiler failed'}"


def build(tree: Tree, patches=(), instrument: bool = False, log=None) -> Build:
    """The library for tree + patches, from the cache or built now (atomically, so workers may race)."""
    patches = list(patches)
    cc, cc_ver = _compiler(instrument)
    flags = CFLAGS + (["-fsanitize=fuzzer-no-link"] if instrument else [])
    key = _digest(tree, patches, cc_ver, flags)
    out = os.path.join(cache_dir(), "builds", f"{tree.version_text}-{key}")
    lib = os.path.join(out, "libkc.so")
    meta_path = os.path.join(out, "build.json")
    if os.path.exists(lib) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        return Build(lib, tree, patches, [P.HunkResult(*h) for h in meta["hunks"]], meta["features"], instrument,
                     meta.get("core_missing"), meta.get("ccore_missing"), meta.get("driver_missing"))
    tmp = f"{out}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    src = os.path.join(tmp, "src")
    for f in tree.files():
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copyfile(os.path.join(tree.path, f), os.path.join(src, f))
    hunks = []
    try:
        for p in patches:
            hunks += P.apply(p, src, BUILT)
        kinc = os.path.join(tmp, "kinc", "linux")
        os.makedirs(kinc)
        for h in TREE_HEADERS:
            shutil.copyfile(os.path.join(src, h), os.path.join(kinc, os.path.basename(h)))
        feats = _features(os.path.join(src, "include/linux/io-pgtable.h"))
        defs = ["-DKC_HAVE_DEFER_SYNC_PTE"] * feats["defer_sync_pte"] + ["-DKC_HAVE_OPS_SYNC_MAP"] * feats[
            "ops_iotlb_sync_map"]
        gen = os.path.join(tmp, "gen")
        inc = ["-include", os.path.join(CSRC, "kernel_env.h"), "-I", os.path.join(tmp, "kinc"),
               "-I", os.path.join(CSRC, "include"), "-I", gen]
        objs = []

        def compile_unit(unit, more=()):
            ours = CSRC_UNITS + (ccore.UNIT, cdriver.UNIT)
            path = os.path.join(CSRC, unit) if unit in ours else os.path.join(src, unit)
            obj = os.path.join(tmp, os.path.basename(unit) + ".o")
            extra = ["-D_GNU_SOURCE"] if unit in CSRC_UNITS else (["-fsanitize=fuzzer-no-link"] if instrument else [])
            r = subprocess.run([cc] + CFLAGS + extra + defs + inc + list(more) + ["-c", path, "-o", obj],
                               capture_output=True, text=True)
            if r.returncode:
                return _compile_error(r.stderr, unit)
            objs.append(obj)
            return None
        for unit in KERNEL_UNITS + ("glue.c",):
            err = compile_unit(unit)
            if err:
                raise BuildError(err)
        # the core's gather helpers: optional, so a tree whose iommu.h changed keeps its io-pgtable variants
        core_missing = cgather.check_header(os.path.join(src, cgather.HEADER), CONFIG) or compile_unit(cgather.UNIT)
        # the core's map/unmap path (kernel code: instrumented like io-pgtable), optional for the same reason
        try:
            ccore.generate(src, gen)
            ccore_missing = compile_unit(ccore.UNIT)
        except ExtractError as e:
            ccore_missing = str(e)
        driver_missing = _driver_unit(src, gen, tmp, compile_unit)
        r = subprocess.run([cc, "-shared", "-o", os.path.join(tmp, "libkc.so")] + objs, capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"linking libkc.so failed: {r.stderr.strip().splitlines()[-1:]}")
        with open(os.path.join(tmp, "build.json"), "w") as f:
            json.dump({"tree": tree.path, "version": tree.version_text, "patches": [p.source for p in patches],
                       "hunks": [[h.path, h.header, h.status] for h in hunks], "features": feats,
                       "core_missing": core_missing, "ccore_missing": ccore_missing, "driver_missing": driver_missing,
                       "instrumented": instrument, "compiler": cc_ver}, f, indent=1)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            os.replace(tmp, out)
        except OSError:                    # another process built the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if log:
        log(f"built {lib} ({Build(lib, tree, patches).label}{', instrumented' if instrument else ''})")
    return Build(lib, tree, patches, hunks, feats, instrument, core_missing, ccore_missing, driver_missing)


def _driver_unit(src: str, gen: str, tmp: str, compile_unit) -> str | None:
    """Extract and compile arm-smmu-v3's invalidation path (optional, like the core): None, or why not. The
    tree's bitfield.h is seen by this unit only (the io-pgtable units build as they always did)."""
    try:
        names = cdriver.generate(src, gen)
    except ExtractError as e:
        return str(e)
    own = os.path.join(tmp, "dinc", "linux")
    os.makedirs(own, exist_ok=True)
    shutil.copyfile(os.path.join(src, cdriver.BITFIELD), os.path.join(own, "bitfield.h"))
    sva = {"arm_smmu_tlb_inv_range_asid", "arm_smmu_tlb_inv_asid"} <= set(names)    # SVA's entries (csrc/driver.c)
    cd = cdriver.CD_WRITER <= set(names)                                            # the CD writer
    return compile_unit(cdriver.UNIT, ["-I", os.path.dirname(own),
                                       "-I", os.path.join(src, os.path.dirname(cdriver.HEADER))]
                        + ["-DKC_HAVE_SVA_INV"] * sva + ["-DKC_HAVE_CD_WRITER"] * cd)
