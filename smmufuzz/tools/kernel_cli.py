"""The kernel-tree side of the command line: --tree / --kernel-patch, `smmufuzz kernel setup|check`."""

import os
import shutil
import sys

from ..kernel import session
from ..kernel.tree import cache_dir
from ..variants.registry import kernel_builds


def add_options(p) -> None:
    p.add_argument("--tree", metavar="DIR", help="kernel tree for the kc:* variants (default: $SMMUFUZZ_KERNEL_TREE, "
                   "else Debian's /usr/src/linux-source-*.tar.xz)")
    p.add_argument("--kernel-patch", action="append", default=[], metavar="FILE[:skip=PATH,...]",
                   help="a patch (diff, mail or thread) for the kc-patched:* variants; repeatable, applied in order")


def configure(args) -> None:
    """Carry --tree / --kernel-patch into the environment (fuzz workers inherit it)."""
    tree, patches = getattr(args, "tree", None), getattr(args, "kernel_patch", None)
    if tree or patches:
        for spec in patches or ():
            path = spec.partition(":skip=")[0]
            if not os.path.exists(path):
                raise session.P.PatchError(f"--kernel-patch {path}: no such file")
        session.configure(tree, [os.path.abspath(s) for s in patches or ()])


def prepare(names, log=None) -> None:
    """Build (or take from the cache) the kernel libraries these variants need, before any run."""
    needs = kernel_builds(names)
    if needs:
        session.prepare(needs, log=log or (lambda s: print(s, file=sys.stderr)))


def prepare_fuzz(names) -> None:
    """Fuzz workers count edges in the kernel C: build the clang -fsanitize=fuzzer-no-link copies now (the
    workers load them under atheris's libFuzzer), or say why not."""
    needs = kernel_builds(names)
    if not needs:
        return
    if not shutil.which(os.environ.get("SMMUFUZZ_CC") or "clang") or session.fuzzer_preload() is None:
        print("kernel: no clang (or no atheris runtime): the kernel C runs uninstrumented, libFuzzer does not "
              "see its edges (apt-get install clang)", file=sys.stderr)
        return
    session.configure(instrument=True)
    try:
        session.prepare(needs, log=lambda s: print(s, file=sys.stderr), load=False)
    finally:
        session.configure(instrument=False)      # this process (triage, minimising) runs the plain build
    os.environ[session.ENV_WORKERS_INSTRUMENT] = "1"


def cmd_setup(args) -> int:
    """Find the tree, apply the patches, build with gcc (and clang -fsanitize=fuzzer-no-link if present)."""
    configure(args)
    b = session.get(False)
    print(f"tree: {b.tree.path} (linux {b.tree.version_text}, from {b.tree.origin})")
    print(f"build: {b.lib}")
    print("  io-pgtable.h offers: " + (", ".join(k for k, v in b.features.items() if v) or "nothing optional"))
    print("  iommu.h gather helpers: " + (f"not built: {b.core_missing}" if b.core_missing else "built (csrc/gather.c)"))
    print("  iommu.c map/unmap path: " + (f"not built: {b.ccore_missing}" if b.ccore_missing else
                                        "built (csrc/core.c + gen/iommu_core_gen.c, for the kc-core:* variants)"))
    print("  arm-smmu-v3.c invalidation path: " + (f"not built: {b.driver_missing}" if b.driver_missing else
                                                 "built (csrc/driver.c + gen/arm_smmu_v3_gen.c, for kc-full:smmuv3)"))
    if session.patch_specs():
        p = session.get(True)
        print(f"patched build ({p.label}): {p.lib}")
        for h in p.hunks:
            print(h.line())
    if shutil.which(os.environ.get("SMMUFUZZ_CC") or "clang"):
        session.configure(instrument=True)
        i = session.get(False)
        print(f"instrumented build (clang -fsanitize=fuzzer-no-link, for fuzz workers): {i.lib}")
        if session.patch_specs():
            print(f"instrumented patched build: {session.get(True).lib}")
        session.configure(instrument=False)
    else:
        print("no clang: fuzz runs will not count edges in the kernel C (apt-get install clang)")
    print(f"cache: {cache_dir()}")
    return 0


def cmd_check(args) -> int:
    """Each layer (fidelity.LAYERS) of the Python model against the tree's C; exit 1 on any difference."""
    from . import fidelity_core
    from .fidelity import LAYERS, check, format_result, pairs_for
    configure(args)
    b = session.get(False)
    layers = args.layer or list(LAYERS)
    bad = False
    if "core" in layers:
        res = fidelity_core.check_build(args.sequences, args.seed, b, session.library(False),
                                        progress=lambda s: print(s, file=sys.stderr, flush=True))
        print(fidelity_core.format_result(res, b.tree.version_text), flush=True)
        bad = bool(res.by_class or res.missing)
        bad |= _check_map_path(args, b)
    if "driver" in layers:
        bad |= _check_driver(args, b, asked=bool(args.layer))
    if "pgtable" not in layers:
        return 1 if bad else 0
    pairs = pairs_for(b.tree.version)
    prepare([c for _m, c in pairs])
    print(f"smmufuzz kernel check: {args.programs} programs, seed {args.seed}, linux {b.tree.version_text}; "
          f"pairs: {', '.join(f'{m} vs {c}' for m, c in pairs)}", flush=True)
    res = check(args.programs, args.seed, pairs, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_result(res))
    return 1 if res.by_class or bad else 0


def _check_map_path(args, b) -> bool:
    """The core layer's map/unmap part: variants/core.py vs the tree's iommu.c (a tree without it: ExtractError)."""
    from . import fidelity_ccore
    from ..kernel.extract import ExtractError
    from ..variants.gather_rules import core_for_version
    if b.ccore_missing:
        raise ExtractError(f"core layer: the tree's iommu core was not built: {b.ccore_missing}")
    res = fidelity_ccore.check(args.map_sequences, args.seed, session.library(False), core_for_version(b.tree.version),
                               progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(fidelity_ccore.format_result(res, b.tree.version_text), flush=True)
    return bool(res.by_class)


def _check_driver(args, b, asked: bool) -> bool:
    """The driver layer: our arm-smmu-v3 model vs the tree's arm-smmu-v3.c. A tree without it: an ExtractError
    when the layer was asked for, else a line saying it was not checked (the other layers still run)."""
    from . import fidelity_driver
    from ..kernel.extract import ExtractError
    if b.ccore_missing or b.driver_missing:
        why = (f"driver layer: the tree's core and arm-smmu-v3 were not both built: "
               f"{b.driver_missing or b.ccore_missing}")
        if asked:
            raise ExtractError(why)
        print(why.replace("driver layer:", "driver layer: not checked:", 1), flush=True)
        return False
    res = fidelity_driver.check(args.driver_programs, args.seed,
                                progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(fidelity_driver.format_result(res, b.tree.version_text), flush=True)
    return bool(res.by_class)


def add_commands(sub) -> None:
    k = sub.add_parser("kernel", help="kernel trees: build the C variants, check the models against the C")
    ks = k.add_subparsers(dest="kernel_cmd", required=True)
    s = ks.add_parser("setup", help="find or extract the tree, apply patches, build (cached)")
    add_options(s)
    s.set_defaults(fn=cmd_setup)
    c = ks.add_parser("check", help="fidelity: each Python model vs its kernel C twin, layer by layer")
    add_options(c)
    from .fidelity import LAYERS
    c.add_argument("--layer", action="append", choices=list(LAYERS),
                   help="check only this layer (repeatable; default: all, core first)")
    c.add_argument("--programs", type=int, default=500, help="random programs of the pgtable layer")
    c.add_argument("--sequences", type=int, default=3000, help="random gather sequences of the core layer")
    c.add_argument("--map-sequences", type=int, default=1000,
                   help="random map/unmap sequences of the core layer (iommu.c's path, C vs model)")
    c.add_argument("--driver-programs", type=int, default=500,
                   help="random programs of the driver layer (arm-smmu-v3.c's commands, C vs model)")
    c.add_argument("--seed", type=int, default=1)
    c.set_defaults(fn=cmd_check)
