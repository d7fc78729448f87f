"""Our planted bugs in 6.12's iommu core (tests/kernel-patches/planted-core-*.diff: drivers/iommu/iommu.c's
map/unmap path, include/linux/iommu.h's gather helpers), issue 20 item 4.

Each must apply and build into the kc-core library; its reproducer (tests/kernel-patches/repro/, the first
exposure `smmufuzz bench` found from an empty corpus, minimised) gives the finding its header expects on
kc-core-patched and none on kc-core, the unpatched tree; the unpatched core stays clean on random programs.
The found-from-nothing evidence is the bench table in docs/kc-core.md; these are regression tests.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc; skipped with the reason otherwise,
unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing tree is a failure.
"""

import random

import pytest

from smmufuzz.prog.codec import decode
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from tests import kernel_planted as KP
from tests.test_kernel_c import _tree, fresh_session  # noqa: F401  (an autouse fixture)

PLANTED = KP.planted("core")
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
    KP.use("core", name)


def test_every_planted_core_patch_is_accounted_for():
    KP.check_accounted_for("core", "kc-core", EXPECT, CORE_FILES)


@pytest.mark.parametrize("name", PLANTED)
def test_planted_core_patch_applies_and_builds(name):
    _tree()
    KP.check_applies_and_builds("core", name, "ccore_missing")


@pytest.mark.parametrize("name", PLANTED)
def test_reproducer_gives_the_finding_patched_and_none_unpatched(name):
    _tree()
    KP.check_reproducer("core", "kc-core", name, *EXPECT[name])


@pytest.mark.parametrize("name", sorted(GATHER_BLIND))
def test_gather_blind_drivers_do_not_see_a_gather_bug(name):
    _tree()
    _use(name)
    prog, _meta = KP.repro("core", name)
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
