"""The tree's arm-smmu-v3 invalidation path (csrc/driver.c, kernel/cdriver.py, kernel/csmmu.py) and kc-full:smmuv3.

Needs a kernel tree with drivers/iommu/arm/arm-smmu-v3/ (Debian: apt-get install linux-source-6.12) and gcc.
Without one these tests are skipped with the reason, unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing
tree is a failure.
"""

import glob
import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from smmufuzz.tools import fidelity_driver as FD
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.kernel import cdriver, session
from smmufuzz.kernel.extract import Source
from smmufuzz.variants import arm_smmu_v3 as V3
from tests.test_kernel_c import _make_patch, _tree, fresh_session  # noqa: F401  (an autouse fixture)
from tests.test_kernel_core import _tree_copy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 1 MiB of 4K pages unmapped into one gather: 256 TLBIs without RIL, more than one batch (CMDQ_BATCH_ENTRIES)
BIG = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x40000000, paddr=0x80000000, size=0x100000, prot=RW)
iommu_unmap_fast(d0, iova=0x40000000, size=0x100000, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
dev_dma(sid=0, iova=0x40001000, write=0)
"""
# stage 2 with RIL and an ATS master: range TLBIs, ATC_INV, the ASID/VMID-wide flush
ATS = """config(granule=4K, ias=48, stage=2, coherent=1, range_inv=1, ats=1, e2h=0)
pci_ats(sid=1, on=1)
iommu_attach_device(d0, sid=1)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x203000, prot=RW)
dev_dma(sid=1, iova=0x201000, write=1)
iommu_unmap(d0, iova=0x200000, size=0x203000)
iommu_flush_iotlb_all(d0)
iommu_detach_device(sid=1)
"""


def _build():
    _tree()
    b = session.get(False)
    assert b.ccore_missing is None and b.driver_missing is None, (b.ccore_missing, b.driver_missing)
    return b


def _writes(text: str, variant: str) -> list:
    """Every queue write of the run, as (opcode of each command, ...)."""
    _rets, pubs, finding = FD.trace(parse(text), variant)
    assert finding is None, finding
    return [w for op in pubs for w in op]


def test_the_c_driver_is_the_trees_invalidation_path():
    b = _build()
    gen = os.path.join(os.path.dirname(b.lib), "gen", cdriver.GENERATED)
    text = open(gen).read()
    ours, tree = Source(text, gen), Source(open(os.path.join(b.tree.path, cdriver.SOURCE)).read(), cdriver.SOURCE)
    for name in cdriver.NEEDS:
        assert ours.function(name).text == tree.function(name).text, name     # the tree's definition, as it is
    assert len(re.findall(rf'^#line \d+ "{re.escape(cdriver.SOURCE)}"$', text, re.M)) >= len(cdriver.NEEDS)
    assert "arm_smmu_cmdq_issue_cmdlist(struct" not in text.split("*/", 1)[1].split("#line", 1)[0]  # ours, not taken


def test_commands_are_the_trees_bit_for_bit_and_batches_flush_without_sync():
    _build()
    model, c = _writes(BIG, FD.MODEL), _writes(BIG, "kc-full:smmuv3")
    assert c == model
    sync = [w for w in c if w[-1][0] & 0xFF == V3.CMDQ_OP_CMD_SYNC]
    full = [w for w in c if len(w) == V3.CMDQ_BATCH_ENTRIES and all(x[0] & 0xFF != V3.CMDQ_OP_CMD_SYNC for x in w)]
    assert len(full) >= 2 and sync                       # 256 TLBIs: full batches go out before the one with SYNC
    a_model, a_c = _writes(ATS, FD.MODEL), _writes(ATS, "kc-full:smmuv3")
    assert a_c == a_model
    ops = {x[0] & 0xFF for w in a_c for x in w}
    assert {V3.CMDQ_OP_TLBI_S2_IPA, V3.CMDQ_OP_ATC_INV, V3.CMDQ_OP_TLBI_S12_VMALL} <= ops
    assert any((x[0] >> 20) & 0x1F or (x[0] >> 12) & 0x1F for w in a_c for x in w
               if x[0] & 0xFF == V3.CMDQ_OP_TLBI_S2_IPA)    # a range TLBI (SCALE/NUM set)


def test_the_model_matches_the_c_driver_on_random_programs():
    _build()
    res = FD.check(40, 7)
    assert res.programs == 40 and res.commands > 5 * res.programs      # the programs do invalidate
    assert not res.by_class, FD.format_result(res, "?")


@pytest.mark.parametrize("what,cls", [("sync", "command bits"), ("batch", "queue writes"), ("atc", "opcodes"),
                                      ("cfg", "io-pgtable cfg")])
def test_a_wrong_model_is_caught(monkeypatch, what, cls):
    _build()
    if what == "sync":
        monkeypatch.setattr(V3, "ARM_SMMU_SH_ISH", 2)
        prog = BIG
    elif what == "batch":
        monkeypatch.setattr(V3, "CMDQ_BATCH_ENTRIES", 32)
        prog = BIG
    elif what == "atc":
        monkeypatch.setattr(V3.ArmSmmuV3Driver, "atc_inv_domain", lambda self, d, iova, size: None)
        prog = ATS
    else:                     # a model whose finalise asks for a non-coherent walk on a coherent SMMU
        orig = V3.ArmSmmuV3Driver.pgtable_cfg
        monkeypatch.setattr(V3.ArmSmmuV3Driver, "pgtable_cfg",
                            lambda self, stage: replace(orig(self, stage), coherent_walk=False))
        prog = BIG
    assert cls in [d[0] for d in FD.compare(parse(prog))]


def test_kernel_check_driver_layer_cli():
    _build()
    r = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "kernel", "check", "--layer", "driver",
                        "--driver-programs", "20"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("driver layer: 20 programs") and r.stdout.rstrip().endswith(": no difference")


def test_kc_full_gives_the_models_verdicts_on_the_shipped_programs():
    _build()
    seen = 0
    for f in sorted(glob.glob(os.path.join(ROOT, "corpus", "seeds", "*.txt")) +
                    glob.glob(os.path.join(ROOT, "corpus", "regressions", "**", "*.txt"), recursive=True)):
        prog, _h = load_program(f)
        if prog.concurrent():
            continue
        seen += 1
        want = [x.kind for x in run_program(prog, ["smmuv3"]).findings]
        got = run_program(prog, ["kc-full:smmuv3"])
        assert [x.kind for x in got.findings] == want, (f, got.findings)
    assert seen >= 30


@pytest.mark.parametrize("case", ["renamed", "reshaped", "queue-reshaped"])
def test_a_missing_or_reshaped_driver_function_is_one_line_exit_2(tmp_path, monkeypatch, case):
    if case == "renamed":
        edit = lambda s: s.replace("int arm_smmu_atc_inv_domain(",  # noqa: E731
                                   "int arm_smmu_atc_inv_domain_renamed(", 1)
        want = "no definition of arm_smmu_atc_inv_domain()"
    elif case == "reshaped":
        edit = lambda s: s.replace("static void arm_smmu_tlb_inv_walk(unsigned long iova, size_t size,",  # noqa: E731
                                   "static void arm_smmu_tlb_inv_walk(unsigned long iova, unsigned int size,", 1)
        want = ("arm_smmu_tlb_inv_walk(unsigned long, unsigned int, size_t, void *) changed shape: smmufuzz expects "
                "arm_smmu_tlb_inv_walk(unsigned long, size_t, size_t, void *)")
    else:
        edit = lambda s: re.sub(  # noqa: E731
            r"(static int arm_smmu_cmdq_issue_cmdlist\(struct arm_smmu_device \*smmu,\s*"
            r"struct arm_smmu_cmdq \*cmdq,\s*u64 \*cmds, )int n", r"\1u32 n", s, count=1)
        want = "arm_smmu_cmdq_issue_cmdlist(struct arm_smmu_device *, struct arm_smmu_cmdq *, u64 *, u32, bool) changed"
    tree = _tree_copy(tmp_path, edit, cdriver.SOURCE)
    r = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "replay",
                        os.path.join(ROOT, "corpus", "seeds", "gather_b3_disjoint_unmap_fast.txt"),
                        "--target", "kc-full:smmuv3", "--tree", tree], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len([ln for ln in r.stderr.strip().splitlines() if cdriver.SOURCE in ln]) == 1 and want in r.stderr, r.stderr
    if case == "renamed":       # kernel check: one line, exit 2 if the layer is asked for; else the others still run
        check = [sys.executable, "-m", "smmufuzz.cli", "kernel", "check", "--tree", tree, "--programs", "2",
                 "--sequences", "5", "--map-sequences", "5", "--driver-programs", "5"]
        r = subprocess.run(check + ["--layer", "driver"], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 2 and want in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        r = subprocess.run(check, capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert any(ln.startswith("driver layer: not checked: ") and want in ln for ln in r.stdout.splitlines())
        assert "2 programs: no difference between the models and the kernel C" in r.stdout
    monkeypatch.setenv(session.ENV_TREE, tree)             # the rest still builds: the kc-core variants run
    session._builds.clear()
    b = session.get(False)
    assert b.driver_missing and want in b.driver_missing and "\n" not in b.driver_missing and b.ccore_missing is None
    assert run_program(parse(BIG), ["kc-core:smmuv3"]).runs[0].finding is None


def test_a_patch_to_arm_smmu_v3_c_is_applied_and_runs(tmp_path):
    tree = _tree()
    _build()
    p = _make_patch(tmp_path, tree, cdriver.SOURCE, lambda s: s.replace(
        "cmd[0] |= FIELD_PREP(CMDQ_SYNC_0_MSIATTR, ARM_SMMU_MEMATTR_OIWB);",
        "cmd[0] |= FIELD_PREP(CMDQ_SYNC_0_MSIATTR, ARM_SMMU_MEMATTR_DEVICE_nGnRE);", 1), "sync-msiattr")
    session.configure(patches=[p])
    b = session.get(True)
    assert [h.status for h in b.hunks] == ["applied"] and b.driver_missing is None
    base, patched = _writes(BIG, "kc-full:smmuv3"), _writes(BIG, "kc-full-patched:smmuv3")
    # the SYNC ending each of the C's queue writes, the STE writer's included (the CD's CFGI_CD + SYNC are the model's)
    msiattr = lambda w: {(x[0] >> 24) & 0xF for x in w[-1:]  # noqa: E731
                         if x[0] & 0xFF == V3.CMDQ_OP_CMD_SYNC and w[0][0] & 0xFF != V3.CMDQ_OP_CFGI_CD}
    assert [len(w) for w in base] == [len(w) for w in patched]
    assert set().union(*map(msiattr, base)) == {V3.ARM_SMMU_MEMATTR_OIWB}
    assert V3.ARM_SMMU_MEMATTR_OIWB not in set().union(*map(msiattr, patched))
    assert run_program(parse(BIG), ["kc-full:smmuv3", "kc-full-patched:smmuv3"]).findings == []


def test_a_fault_in_the_driver_is_a_crash_finding_with_the_c_backtrace(tmp_path):
    tree = _tree()
    _build()
    p = _make_patch(tmp_path, tree, cdriver.SOURCE, lambda s: s.replace(
        "\tarm_smmu_tlb_inv_range_domain(gather->start,\n",
        "\tif (gather->end - gather->start >= 0xfffff) *(volatile int *)(uintptr_t)16 = 1;\n"
        "\tarm_smmu_tlb_inv_range_domain(gather->start,\n", 1), "null-deref")
    session.configure(patches=[p])
    res = run_program(parse(BIG), ["kc-full-patched:smmuv3"])
    f = res.runs[0].finding
    assert f is not None and f.kind == "CRASH" and f.op_index == 3, f
    assert "SIGSEGV at address 0x10" in f.message and "arm_smmu_iotlb_sync" in f.message
    assert run_program(parse(BIG), ["kc-full:smmuv3"]).runs[0].finding is None     # the process goes on


def test_a_cache_extracted_before_takes_the_driver_files(tmp_path, monkeypatch):
    from smmufuzz.kernel import tree as T
    src = _tree()
    top = "linux-source-9.9"
    (tmp_path / "ball" / top).mkdir(parents=True)
    for rel in src.files():                             # a small tarball of the tree's files (made here)
        (tmp_path / "ball" / top / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ball" / top / rel).write_bytes(open(os.path.join(src.path, rel), "rb").read())
    ball = tmp_path / f"{top}.tar.xz"
    subprocess.run(["tar", "cJf", str(ball), "-C", str(tmp_path / "ball"), top], check=True)
    monkeypatch.setenv("SMMUFUZZ_CACHE", str(tmp_path / "cache"))
    old = [f for f in T.REQUIRED + T.OPTIONAL if f not in (cdriver.SOURCE, cdriver.HEADER, cdriver.BITFIELD)]
    monkeypatch.setattr(T, "OPTIONAL", tuple(f for f in T.OPTIONAL if f in old))
    path = T.extract_tarball(str(ball))                 # extracted by a version without the driver files
    assert not os.path.exists(os.path.join(path, cdriver.SOURCE))
    monkeypatch.undo()
    monkeypatch.setenv("SMMUFUZZ_CACHE", str(tmp_path / "cache"))
    assert T.extract_tarball(str(ball)) == path
    for rel in (cdriver.SOURCE, cdriver.HEADER, cdriver.BITFIELD):
        assert open(os.path.join(path, rel), "rb").read() == open(os.path.join(src.path, rel), "rb").read()
    assert set(open(os.path.join(path, ".smmufuzz-extracted")).read().split()) == set(T.REQUIRED + T.OPTIONAL)


# SVA: a PASID bound on an ATS master, the notifier over odd page counts with RIL (NUM/SCALE corners and the
# non-leaf NUM=SCALE=0 bump), the whole mm, and the unbind's domain free
SVA = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=1, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
pci_ats(sid=0, on=1)
iommu_sva_bind_device(sid=0, mm=0)
set_ptes(mm=0, va=0x400000, paddr=0x80000000, size=0x41000, prot=RW)
dev_dma_pasid(sid=0, pasid=1, iova=0x400000, write=1)
ptep_get_and_clear(mm=0, va=0x401000, size=0x21000)
arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x401000, end=0x422000)
arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x423000, end=0x424000)
arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x0, end=0xffffffffffffffff)
iommu_sva_unbind_device(sid=0, mm=0)
"""


def test_sva_invalidation_is_the_trees():
    """The notifier's commands come from the tree's arm_smmu_tlb_inv_range_asid(), arm_smmu_tlb_inv_asid() and
    arm_smmu_atc_inv_domain() with the PASID (the size computation is the model's), bit for bit as the model's."""
    b = _build()
    gen = open(os.path.join(os.path.dirname(b.lib), "gen", cdriver.GENERATED)).read()
    assert "arm_smmu_tlb_inv_range_asid(unsigned long" in gen and "void arm_smmu_tlb_inv_asid(" in gen
    model, c = _writes(SVA, FD.MODEL), _writes(SVA, "kc-full:smmuv3")
    assert c == model
    ops = [x[0] & 0xFF for w in c for x in w]
    ranged = [x for w in c for x in w if x[0] & 0xFF == V3.CMDQ_OP_TLBI_NH_VA]
    assert ranged and all((x[1] >> 10) & 3 == 1 and not x[1] & 1 for x in ranged)     # TG=4K, non-leaf
    atc_ssv = [x for w in c for x in w if x[0] & 0xFF == V3.CMDQ_OP_ATC_INV and x[0] >> 11 & 1]
    assert {x[0] >> 12 & 0xFFFFF for x in atc_ssv} == {1} and ops.count(V3.CMDQ_OP_TLBI_NH_ASID) == 2


def test_the_planted_ste_writer_bug_is_a_torn_ste_on_the_patched_c_only():
    """planted-driver-ste-critical-first.diff (arm_smmu_write_entry stores the critical qword first): its
    reproducer, the bench's minimised first exposure, is TORN_STE on the patched C, clean on the tree's C and on
    the model; every STE the two C writers leave is the model's, word for word."""
    _tree()
    patch = os.path.join(ROOT, "tests", "kernel-patches", "planted-driver-ste-critical-first.diff")
    session.configure(patches=[patch])
    b = session.get(True)
    assert [h.status for h in b.hunks] == ["applied"] and b.driver_missing is None
    prog, _h = load_program(os.path.join(ROOT, "tests", "kernel-patches", "repro", "planted-driver-ste-critical-first.txt"))
    r = run_program(prog, ["smmuv3", "kc-full:smmuv3", "kc-full-patched:smmuv3"])
    assert [(f.kind, f.variant) for f in r.findings] == [("TORN_STE", "kc-full-patched:smmuv3")], r.findings
    assert "streamworld=EL2-E2H" in r.findings[0].message
    words = {}
    for v in ("kc-core:smmuv3", "kc-full:smmuv3", "kc-full-patched:smmuv3"):
        st = []
        FD.trace(prog, v, st)
        words[v] = st[-1][1]
    assert words["kc-core:smmuv3"] == words["kc-full:smmuv3"] == words["kc-full-patched:smmuv3"]


S1_REATTACH = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
pci_ats(sid=0, on=1)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_attach_device(d1, sid=0)
iommu_detach_device(sid=0)
"""


def test_the_cd_is_the_trees_writer_word_for_word(monkeypatch):
    """A stage-1 stream moved to another stage-1 domain, then detached: arm_smmu_make_s1_cd() and
    arm_smmu_write_cd_entry() of the tree (the breaking update: V=0, CFGI_CD + CMD_SYNC, the rest, qword 0) and
    arm_smmu_clear_cd()'s zeroes; every CD the C leaves in the emulator and every command it issues is the model's."""
    from smmufuzz.exec.runner import run_variant
    from smmufuzz.kernel import csmmu
    b = _build()
    by_c = []                                              # the C wrote them: its stores, copied at each command
    real = csmmu.CSmmuV3Driver.cd_stores
    monkeypatch.setattr(csmmu.CSmmuV3Driver, "cd_stores",
                        lambda self: (by_c.append(self._cd_master is not None), real(self))[1])
    gen = open(os.path.join(os.path.dirname(b.lib), "gen", cdriver.GENERATED)).read()
    assert "void arm_smmu_write_cd_entry(struct arm_smmu_master" in gen and "void arm_smmu_make_s1_cd(" in gen
    prog = parse(S1_REATTACH)
    cds = {}
    for v in (FD.MODEL, "kc-full:smmuv3"):
        seen = cds[v] = []
        run_variant(prog, v, "none", probe=lambda ex, i, op, ret, seen=seen: seen.append(
            sorted(ex.smmu.cd_words(a) for a in ex.smmu.cds)))
    assert cds["kc-full:smmuv3"] == cds[FD.MODEL] and by_c.count(True) >= 4
    assert any(w[0] >> 31 & 1 for after in cds[FD.MODEL] for w in after)          # a valid CD was written
    assert cds[FD.MODEL][-1] == [(0,) * 8]                                       # and cleared on detach
    model, c = _writes(S1_REATTACH, FD.MODEL), _writes(S1_REATTACH, "kc-full:smmuv3")
    assert c == model
    assert sum(x[0] & 0xFF == V3.CMDQ_OP_CFGI_CD for w in c for x in w) >= 4
