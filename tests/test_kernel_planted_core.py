"""Our planted bugs in 6.12's iommu core (tests/kernel-patches/planted-core-*.diff: drivers/iommu/iommu.c's
map/unmap path, include/linux/iommu.h's gather helpers), issue 20 item 4.

Each must apply and build into the kc-core library; its reproducer (tests/kernel-patches/repro/, the first
exposure `smmufuzz bench` found from an empty corpus, minimised) gives the finding its header expects on
kc-core-patched and none on kc-core, the unpatched tree; the unpatched core stays clean on random programs.
The found-from-nothing evidence is the bench table in docs/kc-core.md; these are regression tests.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc; skipped with the reason otherwise,
unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing tree is a failure.
"""

import glob
import os
import random
import re

import pytest

from smmufuzz.harness.codec import decode
from smmufuzz.harness.load import load_program
from smmufuzz.harness.program import parse
from smmufuzz.harness.runner import run_program
from smmufuzz.kernel import session
from tests.test_kernel_c import _tree, fresh_session  # noqa: F401  (an autouse fixture)
from tests.test_kernel_patches import PATCHES, REPRO

PLANTED = sorted(os.path.basename(p)[len("planted-core-"):-len(".diff")]
                 for p in glob.glob(os.path.join(PATCHES, "planted-core-*.diff")))
CORE_FILES = ("drivers/iommu/iommu.c", "include/linux/iommu.h")

# planted bug -> (driver it is benched and replayed on, the oracle finding it gives there)
EXPECT = {
    "pgsize-iova-only": ("smmuv3", "WRONG_PA"),
    "unmap-advance-pgsize": ("smmuv3", "WRONG_PA"),
    "unmap-whole-size": ("smmuv3", "INVISIBLE_MAPPING"),
    "unmap-sync-reinit": ("smmuv3", "MISSED_INVALIDATION"),
    "gather-mixed-sizes": ("smmuv3", "MISSED_INVALIDATION"),
    "map-sg-last-run": ("smmuv3", "INVISIBLE_MAPPING"),
}
# planted bug -> drivers where its reproducer stays clean patched: they never read the gather (arm-smmu's
# tlb_add_page sends its TLBIs at once, virtio sends UNMAP in unmap_pages; their iotlb_sync only waits)
GATHER_BLIND = {"unmap-sync-reinit": ("arm-smmu", "virtio")}


def _use(name: str) -> None:
    session.configure(patches=[os.path.join(PATCHES, f"planted-core-{name}.diff")])


def _repro(name: str):
    return load_program(os.path.join(REPRO, f"planted-core-{name}.txt"))


def _header(name: str) -> list[str]:
    with open(os.path.join(PATCHES, f"planted-core-{name}.diff")) as f:
        text = f.read()
    return text.split("diff --git", 1)[0].strip().splitlines()


def test_every_planted_core_patch_is_accounted_for():
    assert len(PLANTED) >= 4 and set(PLANTED) == set(EXPECT)
    for name in PLANTED:
        head = _header(name)
        assert 2 <= len(head) <= 6, f"planted-core-{name}: a 2-6 line header saying what it plants"
        assert f"Expected: {EXPECT[name][1]}" in " ".join(head), f"planted-core-{name}: header's expected verdict"
        with open(os.path.join(PATCHES, f"planted-core-{name}.diff")) as f:
            files = re.findall(r"^diff --git a/(\S+)", f.read(), re.M)
        assert files and set(files) <= set(CORE_FILES), (name, files)
        prog, meta = _repro(name)
        assert meta.get("expect") == EXPECT[name][1] and meta.get("variant") == f"kc-core-patched:{EXPECT[name][0]}"


@pytest.mark.parametrize("name", PLANTED)
def test_planted_core_patch_applies_and_builds(name):
    _tree()
    _use(name)
    b = session.get(True)
    assert b.hunks and all(h.status == "applied" for h in b.hunks), [h.line() for h in b.hunks]
    assert b.ccore_missing is None, b.ccore_missing
    assert os.path.exists(b.lib) and b.lib != session.get(False).lib


@pytest.mark.parametrize("name", PLANTED)
def test_reproducer_gives_the_finding_patched_and_none_unpatched(name):
    _tree()
    _use(name)
    drv, kind = EXPECT[name]
    prog, _meta = _repro(name)
    assert not run_program(prog, [f"kc-core:{drv}"]).findings
    res = run_program(prog, [f"kc-core-patched:{drv}"])
    assert [f.kind for f in res.findings] == [kind], [f.text() for f in res.findings]
    # side by side (kc-core-diff): the same finding on the patched core, none on the tree's; a DIVERGENCE of the
    # pair may come with it
    again = run_program(prog, [f"kc-core:{drv}", f"kc-core-patched:{drv}"])
    assert again.findings[0].text() == res.findings[0].text()
    assert {f.kind for f in again.findings[1:]} <= {"DIVERGENCE"}
    assert not any(f.variant == f"kc-core:{drv}" for f in again.findings)


@pytest.mark.parametrize("name", sorted(GATHER_BLIND))
def test_gather_blind_drivers_do_not_see_a_gather_bug(name):
    _tree()
    _use(name)
    prog, _meta = _repro(name)
    for drv in GATHER_BLIND[name]:
        assert not run_program(prog, [f"kc-core-patched:{drv}"]).findings, drv


MIXED = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv={r}, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80200000, size=0x200000, prot=RW)
iommu_map(d0, iova=0x400000, paddr=0x80400000, size=0x1000, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_unmap(d0, iova=0x200000, size=0x201000)
dev_dma(sid=0, iova=0x200000, write=0)
"""


def test_mixed_sizes_needs_range_invalidation():
    """gather-mixed-sizes: a 2M block then a 4K page in one gather. With range invalidation the TLBI's TTL
    comes from the gather's last page size (level 3) and misses the block; without it arm-smmu-v3 sends one
    TLBI per granule-sized step, which hits the block's entry."""
    _tree()
    _use("gather-mixed-sizes")
    for r, kinds in ((1, ["MISSED_INVALIDATION"]), (0, [])):
        prog = parse(MIXED.format(r=r))
        assert not run_program(prog, ["kc-core:smmuv3"]).findings
        assert [f.kind for f in run_program(prog, ["kc-core-patched:smmuv3"]).findings] == kinds, r


def test_unpatched_core_is_clean_on_random_programs():
    _tree()
    rng = random.Random(20)
    for _ in range(80):
        prog = decode(rng.randbytes(rng.randrange(2, 601)))
        res = run_program(prog, ["kc-core:smmuv3"])
        assert not res.findings, (prog.text(), res.findings[0].text())
