"""Real kernel C (a tree's io-pgtable-arm.c) as variants: build, patches, fidelity of the bridge, crashes.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc. Without one these tests are
skipped with the reason, unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing tree is a failure.
"""

import difflib
import os
import subprocess
import sys

import pytest

from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.kernel import build as B
from smmufuzz.kernel import patch as P
from smmufuzz.kernel import session
from smmufuzz.kernel.tree import TreeError, find

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED003 = os.path.join(os.path.dirname(ROOT), "shared", "seeds")
PORT = os.path.join(ROOT, "tests", "kernel-patches", "seed003-io-pgtable-h-6.12.diff")


def _tree():
    try:
        return find()
    except TreeError as e:
        if os.environ.get("SMMUFUZZ_REQUIRE_KERNEL") == "1":
            pytest.fail(f"SMMUFUZZ_REQUIRE_KERNEL=1 but {e}")
        pytest.skip(str(e))


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    for k in (session.ENV_PATCHES, session.ENV_INSTRUMENT):
        monkeypatch.delenv(k, raising=False)
    session._builds.clear()
    yield
    session._builds.clear()


def _make_patch(tmp_path, tree, rel: str, edit, name: str) -> str:
    """A unified diff of one tree file, made here (no kernel text in the repository)."""
    with open(os.path.join(tree.path, rel)) as f:
        old = f.read()
    new = edit(old)
    assert new != old, "the edit did not change the file"
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                f"a/{rel}", f"b/{rel}")
    path = tmp_path / f"{name}.diff"
    path.write_text(f"diff --git a/{rel} b/{rel}\n" + "".join(diff))
    return str(path)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "smmufuzz.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


PROG = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x3000, prot=RW)
dev_dma(sid=0, iova=0x201000, write=1)
iommu_unmap(d0, iova=0x200000, size=0x2000)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_map(d0, iova=0x40000000, paddr=0xc0000000, size=0x40000000, prot=R)
hw_fill(sid=0, iova=0x40001000)
iommu_unmap(d0, iova=0x40000000, size=0x1000)
"""


def test_tree_version_and_build_cache():
    tree = _tree()
    assert tree.version[:2] >= (5, 10)
    b1 = B.build(tree)
    b2 = B.build(tree)
    assert b1.lib == b2.lib and os.path.exists(b1.lib)
    assert b1.features == {"defer_sync_pte": False, "ops_iotlb_sync_map": False}


def test_kc_smmuv3_runs_the_c_table_and_mirrors_its_stores():
    _tree()
    prog = parse(PROG)
    res = run_program(prog, ["kc:smmuv3"])
    run = res.runs[0]
    assert run.finding is None, run.finding
    # map 3 pages, unmap 2 of them: the C returns what it unmapped; the partial unmap of the 1 GiB block
    # returns 4K on 6.12 (arm_lpae_split_blk_unmap; mainline refuses since 33729a5fc0ca)
    assert run.returns[1] == 0 and run.returns[3] == 0x2000 and run.returns[7] == 0x1000
    # every word of the emulator's CPU view of the C's table pages is what the C memory holds
    from smmufuzz.exec.runner import _Exec
    ex = _Exec(prog, "kc:smmuv3", "max-cache", False)
    for i, op in enumerate(prog.ops[:3]):
        ex.step(i, op)
    t = ex.os.domains[0].priv.pgtbl
    mem = ex.smmu.mem
    checked = 0
    for pa, _size in [(t.pgd, 4096)]:
        for off in range(0, 4096, 8):
            assert mem.cpu_read(pa + off) == t.L.kc_read64(t.machine.ctx, pa + off)
            checked += mem.cpu_read(pa + off) != 0
    assert checked == 1          # one table pointer in the PGD


def test_two_builds_side_by_side_in_one_process(tmp_path):
    tree = _tree()
    # a patch of ours that makes unmap_pages report nothing unmapped: the two builds must differ
    p = _make_patch(tmp_path, tree, "drivers/iommu/io-pgtable-arm.c",
                    lambda s: s.replace("return __arm_lpae_unmap(data, gather, iova, pgsize, pgcount,",
                                        "return 0 * __arm_lpae_unmap(data, gather, iova, pgsize, pgcount,", 1),
                    "zero-unmap")
    session.configure(patches=[p])
    prog = parse(PROG)
    res = run_program(prog, ["kc:smmuv3", "kc-patched:smmuv3"])
    a, b = res.runs
    assert a.returns[3] == 0x2000 and b.returns[3] == 0
    assert any(f.kind == "DIVERGENCE" or f.variant == "kc-patched:smmuv3" for f in res.findings)


def test_patch_from_a_thread_reports_hunks_and_the_failing_one():
    tree = _tree()
    seed = [f for f in os.listdir(SEED003) if f.startswith("003_")] if os.path.isdir(SEED003) else []
    if not seed:
        pytest.skip("the seed-003 thread is not beside the project")
    thread = os.path.join(SEED003, seed[0])
    with pytest.raises(P.PatchError, match=r"include/linux/io-pgtable.h: hunk #3 @@ -204,6 \+208,7 @@"):
        B.build(tree, [P.load(thread)])
    session.configure(patches=[thread + ":skip=include/linux/io-pgtable.h", PORT])
    b = session.get(True)
    assert b.features == {"defer_sync_pte": True, "ops_iotlb_sync_map": True}
    status = {(h.path, h.header): h.status for h in b.hunks}
    assert status[("drivers/iommu/io-pgtable-arm.c", "@@ -949,6 +1012,7 @@")] == "with fuzz 1, offset -21"
    assert status[("drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c", "@@ -3366,6 +3367,18 @@")] == "offset -219"  # built now
    assert b.driver_missing is None


def test_seed003_posted_code_leaves_mappings_invisible_like_the_model():
    _tree()
    seed = [f for f in os.listdir(SEED003) if f.startswith("003_")] if os.path.isdir(SEED003) else []
    if not seed:
        pytest.skip("the seed-003 thread is not beside the project")
    session.configure(patches=[os.path.join(SEED003, seed[0]) + ":skip=include/linux/io-pgtable.h", PORT])
    from smmufuzz.prog.load import load_program
    for name in ("b14_a.txt", "b14_b.txt", "b14_c.txt", "b14_64k_ias32.txt"):
        prog, _h = load_program(os.path.join(ROOT, "corpus", "regressions", "pte-sync", name))
        res = run_program(prog, ["kc-patched:pte-sync", "kc:pte-sync", "pte-sync:deferred-v1"])
        by = {r.name: r.finding for r in res.runs}
        assert by["kc-patched:pte-sync"] is not None and by["kc-patched:pte-sync"].kind == "INVISIBLE_MAPPING", name
        assert by["pte-sync:deferred-v1"].kind == "INVISIBLE_MAPPING"
        assert by["kc:pte-sync"] is None, (name, by["kc:pte-sync"])


def test_a_fault_in_kernel_code_is_a_crash_finding_with_the_c_backtrace(tmp_path):
    tree = _tree()
    p = _make_patch(tmp_path, tree, "drivers/iommu/io-pgtable-arm.c",
                    lambda s: s.replace("static int arm_lpae_map_pages(struct io_pgtable_ops *ops, unsigned long iova,\n",
                                        "static int arm_lpae_map_pages(struct io_pgtable_ops *ops, unsigned long iova,\n",
                                        1).replace("\tif (WARN_ON(iaext || paddr >> cfg->oas))",
                                                   "\tif (pgcount == 3) *(volatile int *)(uintptr_t)8 = 1;\n"
                                                   "\tif (WARN_ON(iaext || paddr >> cfg->oas))", 1),
                    "null-deref")
    session.configure(patches=[p])
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
                 "iommu_map(d0, iova=0x400000, paddr=0x80000000, size=0x3000, prot=RW)\n")
    res = run_program(prog, ["kc-patched:smmuv3"])
    f = res.runs[0].finding
    assert f is not None and f.kind == "CRASH" and f.op_index == 1
    assert "SIGSEGV at address 0x8" in f.message and "arm_lpae_map_pages" in f.message
    # the process survived and the next run works
    assert run_program(prog, ["kc:smmuv3"]).runs[0].finding is None


@pytest.mark.parametrize("case", ["no-tree", "bad-patch", "compile-error", "missing-header"])
def test_bad_kernel_input_is_one_line_exit_2(tmp_path, case):
    tree = _tree()
    prog = tmp_path / "p.txt"
    prog.write_text(PROG)
    args = ["replay", str(prog), "--variant", "kc-patched:smmuv3"]
    rel = "drivers/iommu/io-pgtable-arm.c"
    if case == "no-tree":
        args = ["replay", str(prog), "--variant", "kc:smmuv3", "--tree", str(tmp_path / "nothing")]
        want = "is not a directory"
    elif case == "bad-patch":
        bad = tmp_path / "bad.diff"
        bad.write_text(f"diff --git a/{rel} b/{rel}\n--- a/{rel}\n+++ b/{rel}\n@@ -1,3 +1,3 @@\n no such\n-line\n+here\n"
                       " at all\n")
        args += ["--kernel-patch", str(bad)]
        want = "hunk #1 @@ -1,3 +1,3 @@ does not apply"
    elif case == "compile-error":
        args += ["--kernel-patch", _make_patch(tmp_path, tree, rel, lambda s: s.replace(
            "#include \"iommu-pages.h\"", "#include \"iommu-pages.h\"\nthis is not C;", 1), "syntax")]
        want = "io-pgtable-arm.c does not build"
    else:
        args += ["--kernel-patch", _make_patch(tmp_path, tree, rel, lambda s: s.replace(
            "#include <linux/sizes.h>", "#include <linux/sizes.h>\n#include <linux/no-such-shim.h>", 1), "hdr")]
        want = "<linux/no-such-shim.h>"
    r = _cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("smmufuzz: error:")]
    assert len(err) == 1 and want in err[0], r.stderr


def test_kc_lpae_drivers_compares_no_driver_with_another():
    """The 30-minute correct-targets campaign (issue 15) reported 8 DIVERGENCEs on kc-lpae-drivers: arm-smmu, qcom and
    ipmmu run side by side but differ by design (qcom/ipmmu: ARM_32_LPAE_S1, IAS 32, 4K pages only, no
    IOMMU_CAP_DEFERRED_FLUSH). DIVERGENCE compares variants of one driver model only; each is still judged by the oracle."""
    from smmufuzz.variants.registry import comparable, target
    assert comparable(target("kc-lpae-drivers")) == [["kc:arm-smmu"], ["kc:qcom"], ["kc:ipmmu"]]
    assert comparable(["kc:smmuv3", "kc-patched:smmuv3", "kc-model:smmuv3"]) == [["kc:smmuv3", "kc-patched:smmuv3",
                                                                                 "kc-model:smmuv3"]]
    assert comparable(target("invs-2smmu")) == [target("invs-2smmu")]
    _tree()
    for text in ("config(granule=64K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d0, sid=0)\niommu_map_sg(d0, iova=0x0, sg=[0xa0000000+0x10000], prot=RW)\n",
                 "config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\niommu_dma_init_fq(d0)\n"):
        res = run_program(parse(text), target("kc-lpae-drivers"))
        assert not res.findings, res.findings
    assert [r.returns[0] for r in res.runs][1:] == ["strict: the driver lacks IOMMU_CAP_DEFERRED_FLUSH"] * 2


@pytest.mark.slow
def test_a_fault_in_the_first_of_many_loaded_libraries_is_caught(tmp_path):
    """Each library installs its fault guard over the previous one's; a fault in the first one loaded is handed
    down the chain by calls (re-raising nested a signal frame per library on one alternate stack: with 40
    libraries loaded the process died of SIGSEGV)."""
    tree = _tree()
    rel = "drivers/iommu/io-pgtable-arm.c"
    check = "\tif (WARN_ON(iaext || paddr >> cfg->oas))"
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_map(d0, iova=0x400000, paddr=0x80000000, size=0x3000, prot=RW)\n")
    crash = _make_patch(tmp_path, tree, rel, lambda s: s.replace(
        check, "\tif (pgcount == 3) *(volatile int *)(uintptr_t)8 = 1;\n" + check, 1), "null-deref")
    for i in range(40):
        session.configure(patches=[crash if i == 0 else _make_patch(
            tmp_path, tree, rel, lambda s, i=i: s.replace(check, f"\t/* {i} */\n" + check, 1), f"nop{i}")])
        run = run_program(prog, ["kc-patched:smmuv3"]).runs[0]
        assert (run.finding is not None and run.finding.kind == "CRASH") == (i == 0)
    session.configure(patches=[crash])
    f = run_program(prog, ["kc-patched:smmuv3"]).runs[0].finding
    assert f is not None and f.kind == "CRASH" and "SIGSEGV at address 0x8" in f.message
    assert "arm_lpae_map_pages io-pgtable-arm.c:" in f.message         # the C frames resolve past the guards
