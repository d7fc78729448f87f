"""Our planted bugs in 6.12's arm-smmu-v3 invalidation path (tests/kernel-patches/planted-driver-*.diff, on
drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c as kernel/cdriver.py extracts it), issue 20 item 4, the driver half.

Each must apply and build into the kc-full library (the driver unit included); its reproducer
(tests/kernel-patches/repro/, the first exposure `smmufuzz bench` found from an empty corpus, minimised) gives the
finding its header expects on kc-full-patched:smmuv3 and none on kc-full:smmuv3, the unpatched tree. The
found-from-nothing evidence is the bench table in docs/kc-driver.md; these are regression tests, plus one check
per patch that the configuration it needs is what exposes it (the same program without it is clean patched).

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

PLANTED = KP.planted("driver")
DRIVER_FILES = ("drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c", "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h")

# planted bug -> (driver it is benched and replayed on, the oracle finding it gives there)
EXPECT = {
    "atc-before-tlbi": ("smmuv3", "MISSED_INVALIDATION"),
    "walk-leaf": ("smmuv3", "TABLE_UAF"),
    "range-num-mask": ("smmuv3", "MISSED_INVALIDATION"),
    "atc-span-count": ("smmuv3", "MISSED_INVALIDATION"),
    "batch-init-before-issue": ("smmuv3", "MISSED_INVALIDATION"),
    "e2h-nh-opcode": ("smmuv3", "MISSED_INVALIDATION"),
    "s2-vmall-nosync": ("smmuv3", "MISSED_INVALIDATION"),
    "ttl-nonleaf": ("smmuv3", "MISSED_INVALIDATION"),
    "ste-critical-first": ("smmuv3", "TORN_STE"),        # the STE writer's (docs/kc-driver.md, its own section)
    "cd-live-in-place": ("smmuv3", "TORN_STE"),          # the CD writer's (docs/kc-driver.md, the STE writer's section)
}
# planted bug -> a change to its reproducer's program under which the patched driver is right again, and why:
# the patch is seen only where the driver takes the path it breaks
CLEAN_WITHOUT = {
    "atc-before-tlbi": (("ats=1", "ats=0"), "no ATS: no ATC to refill from the stale TLB entry"),
    "atc-span-count": (("ats=1", "ats=0"), "no ATS: no ATC_INV is sent"),
    "e2h-nh-opcode": (("e2h=1", "e2h=0"), "without E2H, TLBI_NH_VA is the right opcode"),
    "range-num-mask": (("range_inv=1", "range_inv=0"), "without RIL, one TLBI per page: NUM is not used"),
    "batch-init-before-issue": (("range_inv=0", "range_inv=1"), "with RIL, a few range TLBIs: no batch fills"),
    "walk-leaf": (("e2h=0)", "e2h=0, walk_levels=01)"),
                  "a walk cache without level-2 descriptors: the leaf TLBIs remove all that was cached"),
    "ttl-nonleaf": (("e2h=0)", "e2h=0, ttl=ignored)"), "an SMMU that ignores the TTL hint removes the blocks too"),
}


def test_every_planted_driver_patch_is_accounted_for():
    KP.check_accounted_for("driver", "kc-full", EXPECT, DRIVER_FILES)
    assert set(CLEAN_WITHOUT) <= set(EXPECT)


@pytest.mark.parametrize("name", PLANTED)
def test_planted_driver_patch_applies_and_builds(name):
    _tree()
    KP.check_applies_and_builds("driver", name, "driver_missing")


@pytest.mark.parametrize("name", PLANTED)
def test_reproducer_gives_the_finding_patched_and_none_unpatched(name):
    _tree()
    KP.check_reproducer("driver", "kc-full", name, *EXPECT[name])


@pytest.mark.parametrize("name", sorted(CLEAN_WITHOUT))
def test_the_configuration_the_patch_needs_is_what_exposes_it(name):
    _tree()
    KP.use("driver", name)
    prog, _meta = KP.repro("driver", name)
    (old, new), why = CLEAN_WITHOUT[name]
    text = prog.text()
    assert old in text.splitlines()[0], (name, text)
    other = parse(text.replace(old, new, 1))
    res = run_program(other, ["kc-full-patched:smmuv3"])
    assert not res.findings, (why, [f.text() for f in res.findings])


def test_the_driver_patches_do_not_reach_kc_core():
    """kc-core-patched runs the patched tree's core and io-pgtable under our Python arm-smmu-v3: a patch to
    arm-smmu-v3.c changes nothing there, so every reproducer is clean on it."""
    _tree()
    for name in PLANTED:
        KP.use("driver", name)
        prog, _meta = KP.repro("driver", name)
        assert not run_program(prog, ["kc-core-patched:smmuv3"]).findings, name


def test_unpatched_driver_is_clean_on_random_programs():
    _tree()
    rng = random.Random(21)
    for _ in range(80):
        prog = decode(rng.randbytes(rng.randrange(2, 601)))
        res = run_program(prog, ["kc-full:smmuv3"])
        assert not res.findings, (prog.text(), res.findings[0].text())


def test_s2_vmall_nosync_with_an_ats_master_leaves_the_atc_stale():
    """s2-vmall-nosync: with an ATS master, arm_smmu_atc_inv_domain() follows the unsynced TLBI_S12_VMALL and its
    batch ends with a CMD_SYNC, which completes the VMALL too; but the ATC_INV went out in the same window, so the
    endpoint may refill from the TLB entry the VMALL has not yet removed: the stale entry is the device's now."""
    _tree()
    KP.use("driver", "s2-vmall-nosync")
    prog, _meta = KP.repro("driver", "s2-vmall-nosync")
    lines = prog.text().splitlines()
    assert "stage=2" in lines[0] and "ats=0" in lines[0], lines[0]
    ats = parse("\n".join([lines[0].replace("ats=0", "ats=1"), "pci_ats(sid=0, on=1)"] + lines[1:]) + "\n")
    assert not run_program(ats, ["kc-full:smmuv3"]).findings
    res = run_program(ats, ["kc-full-patched:smmuv3"])
    assert [f.kind for f in res.findings] == ["MISSED_INVALIDATION"], [f.text() for f in res.findings]
    assert "device ATC entry" in res.findings[0].text(), res.findings[0].text()
