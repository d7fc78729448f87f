"""Which kernel tree and patches this process runs, from the command line or the environment.

The CLI sets SMMUFUZZ_KERNEL_TREE / SMMUFUZZ_KERNEL_PATCHES (patch specs one per line, each
`FILE` or `FILE:skip=PATH[,PATH]`) / SMMUFUZZ_KERNEL_INSTRUMENT, so fuzz workers inherit them;
`prepare()` builds what the chosen variants need up front (one-line errors), and variants get their
library from `library()`.
"""

import os

from . import build as B
from . import clib
from . import patch as P
from .extract import ExtractError
from .tree import TreeError, find

ENV_TREE, ENV_PATCHES, ENV_INSTRUMENT = "SMMUFUZZ_KERNEL_TREE", "SMMUFUZZ_KERNEL_PATCHES", "SMMUFUZZ_KERNEL_INSTRUMENT"
ENV_WORKERS_INSTRUMENT = "SMMUFUZZ_KERNEL_FUZZ_INSTRUMENT"   # fuzz workers (only) load the instrumented build
KernelError = (TreeError, B.BuildError, P.PatchError, clib.KernelCrash, ExtractError)
_builds: dict = {}


def configure(tree: str | None = None, patches=None, instrument: bool | None = None) -> None:
    """Record the user's choice in the environment (inherited by workers) and forget earlier builds."""
    if tree:
        os.environ[ENV_TREE] = os.path.abspath(tree)
    if patches:
        os.environ[ENV_PATCHES] = "\n".join(patches)
    if instrument is not None:
        if instrument:
            os.environ[ENV_INSTRUMENT] = "1"
        else:
            os.environ.pop(ENV_INSTRUMENT, None)
    _builds.clear()


def patch_specs() -> list[str]:
    v = os.environ.get(ENV_PATCHES, "")
    return [s for s in v.split("\n") if s]


def load_patch(spec: str) -> P.Patch:
    """`FILE` or `FILE:skip=PATH[,PATH]` (leave out the hunks of those files, e.g. to use a port of them)."""
    path, _, skip = spec.partition(":skip=")
    p = P.load(path)
    if skip:
        drop = set(skip.split(","))
        unknown = drop - {f.path for f in p.files}
        if unknown:
            raise P.PatchError(f"{path}: skip= names {', '.join(sorted(unknown))}, which the patch does not touch")
        p = p.only({f.path for f in p.files} - drop)
    return p


def get(patched: bool, log=None) -> B.Build:
    """The build of the tree (patched: with the configured patches), cached per process."""
    instrument = os.environ.get(ENV_INSTRUMENT) == "1"
    key = (patched, instrument)
    if key not in _builds:
        if patched and not patch_specs():
            raise P.PatchError("a kc-patched variant needs --kernel-patch FILE")
        tree = find(os.environ.get(ENV_TREE))
        patches = [load_patch(s) for s in patch_specs()] if patched else []
        _builds[key] = B.build(tree, patches, instrument, log=log)
    return _builds[key]


def library(patched: bool) -> clib.KernelLib:
    """The loaded library of the build (memoised: variants ask once per page table)."""
    key = ("lib", patched, os.environ.get(ENV_INSTRUMENT) == "1")
    lib = _builds.get(key)
    if lib is None:
        lib = _builds[key] = clib.load(get(patched).lib)
    return lib


def prepare(needs: set, log=print, load: bool = True) -> list[B.Build]:
    """Build (or find in the cache) what the variants need: needs holds "base" and/or "patched", and "core"
    when they run the tree's iommu core, "driver" its arm-smmu-v3 (a build without it is then a one-line
    ExtractError).
    load=False only builds (an instrumented library loads only where libFuzzer runs)."""
    out = []
    if "tree" in needs:
        tree_version()
    for patched in (False, True):
        if ("patched" if patched else "base") in needs:
            b = get(patched, log=None)
            if "core" in needs and b.ccore_missing:
                raise ExtractError(f"the kc-core variants need the tree's iommu core ({b.label}): {b.ccore_missing}")
            if "driver" in needs and b.driver_missing:
                raise ExtractError(f"the kc-full variants need the tree's arm-smmu-v3 ({b.label}): {b.driver_missing}")
            if log:
                log(f"kernel: {b.label} ({b.tree.origin}) -> {b.lib}")
                for h in b.hunks:
                    log(h.line())
            if load:
                clib.load(b.lib)
            out.append(b)
    return out


def tree_version() -> tuple:
    """The version of the tree this process runs (its Makefile), without building anything."""
    key = ("version",)
    if key not in _builds:
        _builds[key] = find(os.environ.get(ENV_TREE)).version
    return _builds[key]


def available() -> bool:
    """Is there a tree to build (without building it)?"""
    try:
        find(os.environ.get(ENV_TREE))
        return True
    except TreeError:
        return False


def fuzzer_preload(custom_mutator: bool = False) -> str | None:
    """atheris's libFuzzer runtime, which an instrumented library needs in the process (LD_PRELOAD), and with
    `custom_mutator` atheris's LLVMFuzzerCustomMutator after it: libFuzzer looks that symbol up once, when it
    is loaded, so a custom mutator module imported later (atheris.Setup) would go unseen and libFuzzer would
    run its own mutations only. ':'-joined paths, or None without the runtime."""
    try:
        import atheris
    except ImportError:
        return None
    path = os.path.join(atheris.path(), "ubsan_with_fuzzer.so")
    if not os.path.exists(path):
        return None
    if custom_mutator:
        import glob
        mods = glob.glob(os.path.join(os.path.dirname(atheris.__file__), "custom_mutator.*.so"))
        if not mods:
            return None
        path += ":" + mods[0]
    return path


def header_lines(names) -> list[str]:
    """Reproducer header lines naming the tree version and patches the kc variants among names ran."""
    from ..variants.registry import kernel_builds
    needs = kernel_builds(names)
    if not needs:
        return []
    b = get("patched" in needs)
    out = [f"# kernel: {b.label}"]
    if os.environ.get(ENV_TREE):
        out.append(f"# kernel-tree: {os.environ[ENV_TREE]}")
    if "patched" in needs:
        out.append("# kernel-patches: " + " | ".join(patch_specs()))
    return out


def from_header(header: dict) -> str | None:
    """A reproducer's own tree and patches, used when the command line names none; says what it took."""
    took = []
    if header.get("kernel-tree") and not os.environ.get(ENV_TREE):
        os.environ[ENV_TREE] = header["kernel-tree"]
        took.append(f"tree {header['kernel-tree']}")
    if header.get("kernel-patches") and not patch_specs():
        specs = [s.strip() for s in header["kernel-patches"].split(" | ") if s.strip()]
        os.environ[ENV_PATCHES] = "\n".join(specs)
        took.append("patches " + ", ".join(specs))
    if took:
        _builds.clear()
        return "kernel from the reproducer's header: " + "; ".join(took)
    return None
