"""Kernel trees: a directory the user names, or Debian's linux-source tarball extracted into our cache."""

import glob
import os
import re
import subprocess
from dataclasses import dataclass

# The files a build reads from the tree (tree-relative). Optional ones may be absent in other versions.
REQUIRED = ("drivers/iommu/io-pgtable.c", "drivers/iommu/io-pgtable-arm.c", "include/linux/io-pgtable.h",
            "include/linux/iommu.h", "Makefile")
OPTIONAL = ("drivers/iommu/io-pgtable-arm.h", "drivers/iommu/iommu-pages.h", "drivers/iommu/iommu.c",
            "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c", "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h",
            "include/linux/bitfield.h")
INSTALL_HINT = "apt-get install linux-source-6.12"


class TreeError(Exception):
    """No usable kernel tree (one line: what is missing and how to get it)."""


@dataclass(frozen=True)
class Tree:
    path: str
    version: tuple[int, int, int]
    origin: str                    # "--tree", "SMMUFUZZ_KERNEL_TREE", or the tarball it came from

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def files(self) -> list[str]:
        return [f for f in REQUIRED + OPTIONAL if os.path.exists(os.path.join(self.path, f))]


def cache_dir() -> str:
    """$SMMUFUZZ_CACHE, else $XDG_CACHE_HOME/smmufuzz, else ~/.cache/smmufuzz."""
    d = os.environ.get("SMMUFUZZ_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smmufuzz")
    os.makedirs(d, exist_ok=True)
    return d


def version_of(path: str) -> tuple[int, int, int]:
    """VERSION.PATCHLEVEL.SUBLEVEL from the tree's top Makefile."""
    try:
        with open(os.path.join(path, "Makefile"), encoding="utf-8", errors="replace") as f:
            head = f.read(2000)
    except OSError:
        raise TreeError(f"{path}: no Makefile: not a kernel tree") from None
    vals = [re.search(rf"^{k}\s*=\s*(\d+)", head, re.M) for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")]
    if not all(vals):
        raise TreeError(f"{path}/Makefile: no VERSION/PATCHLEVEL/SUBLEVEL: not a kernel tree")
    return tuple(int(v.group(1)) for v in vals)


def check(path: str, origin: str) -> Tree:
    if not os.path.isdir(path):
        raise TreeError(f"kernel tree {path} ({origin}) is not a directory")
    missing = [f for f in REQUIRED if not os.path.exists(os.path.join(path, f))]
    if missing:
        raise TreeError(f"kernel tree {path} ({origin}) lacks {', '.join(missing)}")
    return Tree(os.path.abspath(path), version_of(path), origin)


def _tarballs() -> list[str]:
    found = glob.glob("/usr/src/linux-source-*.tar.xz") + glob.glob("/usr/src/linux-source-*.tar.bz2")

    def key(p):
        m = re.search(r"linux-source-(\d+)\.(\d+)", p)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return sorted(found, key=key, reverse=True)


def extract_tarball(tarball: str) -> str:
    """Extract just the files a build reads into the cache (once); returns the tree path."""
    top = os.path.basename(tarball).split(".tar")[0]
    dest = os.path.join(cache_dir(), "trees")
    tree = os.path.join(dest, top)
    stamp = os.path.join(tree, ".smmufuzz-extracted")
    if os.path.exists(stamp):
        _extract_new_files(tarball, top, tree, stamp)
        return tree
    os.makedirs(dest, exist_ok=True)
    members = [f"{top}/{f}" for f in REQUIRED + OPTIONAL]
    tmp = tree + f".tmp{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    p = subprocess.run(["tar", "xf", tarball, "-C", tmp, "--ignore-failed-read", "--no-wildcards"] + members,
                       capture_output=True, text=True)
    src = os.path.join(tmp, top)
    if not os.path.exists(os.path.join(src, REQUIRED[0])):
        raise TreeError(f"{tarball}: could not extract the io-pgtable files ({p.stderr.strip().splitlines()[-1:]})")
    if os.path.exists(tree):
        subprocess.run(["rm", "-rf", tree])
    os.replace(src, tree)
    subprocess.run(["rm", "-rf", tmp])
    with open(stamp, "w") as f:
        f.write("\n".join(REQUIRED + OPTIONAL) + "\n")
    return tree


def _extract_new_files(tarball: str, top: str, tree: str, stamp: str) -> None:
    """A tree extracted before a file joined REQUIRED/OPTIONAL: take the new files (once; the stamp lists
    what was asked for, so a file the tarball lacks is not looked for again)."""
    with open(stamp) as f:
        asked = set(f.read().split())
    want = [f for f in REQUIRED + OPTIONAL if f not in asked and not os.path.exists(os.path.join(tree, f))]
    if not want and asked:
        return
    if want:
        subprocess.run(["tar", "xf", tarball, "-C", tree, "--strip-components=1", "--ignore-failed-read",
                        "--no-wildcards"] + [f"{top}/{f}" for f in want], capture_output=True, text=True)
    with open(stamp, "w") as f:
        f.write("\n".join(REQUIRED + OPTIONAL) + "\n")


def find(tree: str | None = None) -> Tree:
    """The tree to build: `tree` if given, else $SMMUFUZZ_KERNEL_TREE, else Debian's linux-source tarball."""
    if tree:
        return check(tree, "--tree")
    env = os.environ.get("SMMUFUZZ_KERNEL_TREE")
    if env:
        return check(env, "SMMUFUZZ_KERNEL_TREE")
    balls = _tarballs()
    if not balls:
        raise TreeError("no kernel tree: pass --tree DIR or set SMMUFUZZ_KERNEL_TREE, or install Debian's "
                        f"source with: {INSTALL_HINT}")
    return check(extract_tarball(balls[0]), balls[0])
