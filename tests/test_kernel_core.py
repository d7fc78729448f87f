"""The core layer of the fidelity check: variants/gather.py vs the tree's include/linux/iommu.h gather helpers.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc. Without one these tests are
skipped with the reason, unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing tree is a failure.
"""

import os
import re
import subprocess
import sys

import pytest

from smmufuzz.tools import fidelity_core as F
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.kernel import session
from smmufuzz.variants import gather as G
from smmufuzz.variants.core import IommuCore
from smmufuzz.variants.gather_rules import LegacyCore, core_for_version
from tests.test_kernel_c import _make_patch, _tree, fresh_session  # noqa: F401  (an autouse fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M64 = (1 << 64) - 1


def _lib():
    _tree()
    b = session.get(False)
    assert b.core_missing is None, b.core_missing
    return b, session.library(False)


def test_the_model_matches_the_trees_gather_helpers():
    b, lib = _lib()
    res = F.check_build(2000, 1, b, lib)
    assert res.core == ("LegacyCore" if b.tree.version < (7, 0) else "IommuCore")
    assert not res.by_class, F.format_result(res, b.tree.version_text)
    # the sequences reach every branch of the helpers, wrap-arounds included
    for seen in ("add_page: driver synced", "add_page: no driver sync", "add_page: range wraps past ULONG_MAX",
                 "add_range: range wraps past ULONG_MAX", "add_page: leaves start > end", "is_disjoint: 0",
                 "is_disjoint: 1", "queued: 0", "queued: 1", "sync: driver synced", "sync: no driver sync"):
        assert res.seen[seen] >= 20, (seen, res.seen)
    assert res.steps > 20000


def test_mainline_core_differs_from_6_12_only_in_what_the_driver_is_handed():
    """6.12's iommu_iotlb_sync() calls the driver on every gather; 90c5def10bea (mainline) skips start >= end."""
    b, lib = _lib()
    if b.tree.version >= (7, 0):
        pytest.skip("the tree may have 90c5def10bea")
    assert core_for_version(b.tree.version) is LegacyCore and core_for_version(None) is IommuCore
    res = F.check(300, 1, lib, IommuCore)
    assert set(res.by_class) == {"sync: driver's iotlb_sync", "add_page: driver's iotlb_sync"}
    count, seq, step, detail = res.by_class["sync: driver's iotlb_sync"]
    assert [s.op for s in seq.steps] == ["init", "sync"] and step == 1
    assert detail == "model not called, C called with start=0xffffffffffffffff end=0x0 pgsize=0x0 queued=False"
    # add_page's sync of a gather whose range wrapped (start > end: "empty" to 90c5def10bea)
    _count, seq, step, _detail = res.by_class["add_page: driver's iotlb_sync"]
    assert seq.steps[step].op == "add_page" and seq.steps[step - 1].iova + seq.steps[step - 1].size - 1 > M64


def _no_wrap_add_range(g, iova, size):
    g.start, g.end = min(g.start, iova), max(g.end, iova + size - 1)


def _touching_is_disjoint(g, iova, size):
    end = (iova + size - 1) & M64
    return g.end != 0 and (((end + 1) & M64) < g.start or iova >= ((g.end + 1) & M64))


def _add_page_ignores_pgsize(core, domain, g, iova, size):
    if G.is_disjoint(g, iova, size):
        core.iotlb_sync(domain, g)
    g.pgsize = size
    G.add_range(g, iova, size)


def _init_keeps_queued(g):
    q = getattr(g, "queued", False)
    g.start, g.end, g.pgsize, g.freelist, g.queued = M64, 0, 0, [], q


@pytest.mark.parametrize("name, fn, want", [
    ("add_range", _no_wrap_add_range, "add_range: end"),
    ("is_disjoint", _touching_is_disjoint, "is_disjoint: return value"),
    ("add_page", _add_page_ignores_pgsize, "add_page: driver's iotlb_sync"),
    ("gather_init", _init_keeps_queued, "init: queued"),
])
def test_a_wrong_model_is_caught(monkeypatch, name, fn, want):
    _b, lib = _lib()
    monkeypatch.setattr(G, name, fn)
    res = F.check(300, 1, lib, LegacyCore)
    assert want in res.by_class, sorted(res.by_class)
    text = F.format_result(res)
    assert f"{want}, in " in text and "smallest, at call" in text


def test_kernel_check_core_layer_cli():
    _tree()
    r = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "kernel", "check", "--layer", "core",
                        "--sequences", "300"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("core layer: 300 gather sequences") and ": no difference" in r.stdout
    assert "pairs:" not in r.stdout                   # the pgtable layer was not asked for


def test_a_helper_of_another_shape_is_one_line_and_the_rest_still_builds(tmp_path):
    tree = _tree()
    p = _make_patch(tmp_path, tree, "include/linux/iommu.h", lambda s: s.replace(
        "bool iommu_iotlb_gather_is_disjoint(struct iommu_iotlb_gather *gather,\n\t\t\t\t    unsigned long iova, "
        "size_t size)", "bool iommu_iotlb_gather_is_disjoint(struct iommu_iotlb_gather *gather,\n\t\t\t\t    "
        "unsigned long iova, unsigned int size)", 1), "is-disjoint-shape")
    session.configure(patches=[p])
    b = session.get(True)
    assert b.core_missing is not None and "\n" not in b.core_missing
    assert b.core_missing.startswith("include/linux/iommu.h:")
    assert b.core_missing.endswith("iommu_iotlb_gather_is_disjoint(struct iommu_iotlb_gather *, unsigned long, "
                                   "unsigned int) changed shape: smmufuzz expects iommu_iotlb_gather_is_disjoint("
                                   "struct iommu_iotlb_gather *, unsigned long, size_t)")
    res = F.check_build(10, 1, b, session.library(True))
    assert F.format_result(res).startswith("core layer: not checked: the tree's gather helpers were not built: "
                                           "include/linux/iommu.h:")
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
                 "iommu_unmap(d0, iova=0x200000, size=0x2000)\n")
    run = run_program(prog, ["kc-patched:smmuv3"]).runs[0]
    assert run.finding is None and run.returns == [0, 0x2000]


# ---- the core's map/unmap path from the tree's drivers/iommu/iommu.c (csrc/core.c) ------------------
from smmufuzz.tools import fidelity_ccore as FC  # noqa: E402
from smmufuzz.kernel import ccore  # noqa: E402

PATCHES = os.path.join(ROOT, "tests", "kernel-patches")
SKIP_EMPTY = os.path.join(PATCHES, "seed000-skip-empty-90c5def10bea-6.12.diff")
SEED000 = {name: os.path.join(PATCHES, f"seed000-{name}-6.12.diff") for name in ("robin-draft", "robin-v2", "jason-v1")}
B1 = os.path.join(ROOT, "corpus", "regressions", "gather", "b1_skip_empty_arm-smmu.txt")


def _core_lib():
    b, lib = _lib()
    assert b.ccore_missing is None, b.ccore_missing
    return b, lib


def _seq(*steps, bitmap=0x1000 | 0x200000, policy="ignore", ops=("iotlb_sync", "iotlb_sync_map"), fail_at=()):
    return FC.Sequence(bitmap, policy, ops, frozenset(fail_at), False, tuple(FC.Step(*s) for s in steps))


def test_the_c_core_is_the_trees_map_unmap_path():
    b, _lib_ = _core_lib()
    with open(os.path.join(os.path.dirname(b.lib), "gen", ccore.GENERATED)) as f:
        gen = f.read()
    for name in ccore.NEEDS:
        assert f" {name}(" in gen
    assert f'"{ccore.SOURCE}"' in gen                   # #line markers back to the tree's file


@pytest.mark.parametrize("steps, policy", [
    ((("map", 0x200000, 0x80200000, 0x201000), ("unmap", 0x200000, 0, 0x201000)), "ignore"),
    ((("map", 0x1ff000, 0x801ff000, 0x202000), ("unmap_fast", 0x1ff000, 0, 0x202000, 1), ("sync", 0, 0, 0, 1)),
     "add_page"),
    ((("map", 0x1000, 0x1000, 0x3000), ("unmap", 0x2000, 0, 0x1000), ("unmap", 0x1000, 0, 0x3000)), "add_range"),
    ((("map_sg", 0x400000, 0, 0, 0, ((0x10000, 0x1000), (0x11000, 0x3000), (0x20000, 0x1000))),
      ("unmap", 0x400000, 0, 0x5000)), "add_page"),
    ((("map", 0x3000, 0x3000, 0x1800),), "ignore"),                                       # unaligned
])
def test_c_core_and_model_agree_on_fixed_sequences(steps, policy):
    b, lib = _core_lib()
    seq = _seq(*steps, policy=policy)
    assert FC.compare(seq, core_for_version(b.tree.version), lib) == []
    c = FC.run(seq, FC.c_core(lib))
    assert len(c) == len(steps) and all(st.ret != "crash" for st in c)
    if steps[0][0] == "map" and steps[0][3] & 0xfff == 0:
        assert c[0].ret == 0 and any(call[0] == "map_pages" for call in c[0].calls)


def test_c_core_and_model_agree_on_random_sequences():
    b, lib = _core_lib()
    res = FC.check(300, 5, lib, core_for_version(b.tree.version))
    assert not res.by_class, FC.format_result(res, b.tree.version_text)
    for seen in ("map: ok", "map: error", "map_sg: ok", "map_sg: error", "unmap: driver synced",
                 "sync: driver synced", "map: map_pages with count > 1", "unmap: nothing unmapped"):
        assert res.seen[seen] >= 10, (seen, res.seen)


def _unroll_with_sync(self, domain, iova, paddr, size, prot):
    ret, mapped = self._map_loop(domain, iova, paddr, size, prot) if domain.pgsize_bitmap else (-22, 0)
    if ret:
        self.iommu_unmap(domain, iova, mapped)
    return ret


def test_a_wrong_map_model_is_caught(monkeypatch):
    """The model before this check: an unaligned map unrolled (iommu_unmap of 0 bytes, a driver sync)."""
    b, lib = _core_lib()
    core = core_for_version(b.tree.version)
    monkeypatch.setattr(IommuCore, "iommu_map_nosync", _unroll_with_sync)
    res = FC.check(200, 1, lib, core)
    assert {"map: driver's iotlb_sync", "map: return value"} <= set(res.by_class), sorted(res.by_class)
    text = FC.format_result(res)
    assert "map: driver's iotlb_sync, in " in text and "model iotlb_sync(" in text and "C no call" in text


@pytest.mark.parametrize("fix", [None] + sorted(SEED000))
def test_seed000_ports_apply_and_build_the_core(fix):
    _tree()
    session.configure(patches=[SKIP_EMPTY] + ([SEED000[fix]] if fix else []))
    b = session.get(True)
    assert b.ccore_missing is None and b.core_missing is None
    assert [h.status for h in b.hunks] == ["applied"] * (2 if fix else 1)
    assert {h.path for h in b.hunks} == {"include/linux/iommu.h"} | (
        {"drivers/iommu/io-pgtable-arm.c" if fix == "jason-v1" else "drivers/iommu/iommu.c"} if fix else set())


def _kinds(path, variant):
    prog, _hdr = load_program(path)
    return [f.kind for f in run_program(prog, [variant]).findings]


@pytest.mark.parametrize("fix, clean", [(None, False), ("robin-v2", True), ("robin-draft", True),
                                        ("jason-v1", True)])
def test_skip_empty_on_the_trees_core_breaks_arm_smmu_and_the_fixes_repair_it(fix, clean):
    _tree()
    assert _kinds(B1, "kc-core:arm-smmu") == []                 # 6.12 calls every driver's iotlb_sync
    session.configure(patches=[SKIP_EMPTY] + ([SEED000[fix]] if fix else []))
    assert _kinds(B1, "kc-core-patched:arm-smmu") == ([] if clean else ["MISSED_INVALIDATION"])
    assert _kinds(B1, "kc-core-patched:smmuv3") == []           # fills its gather: never affected


def test_jason_v1_leaves_the_own_table_drivers_broken():
    """Only v1's io-pgtable-arm.c hunk is real code here: virtio-iommu (its hunk not built) stays broken."""
    _tree()
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d0, sid=0)\n"
                 "iommu_map(d0, iova=0x0, paddr=0x0, size=0x1000, prot=RW)\n"
                 "dev_dma(sid=0, iova=0x0, write=0)\n"
                 "iommu_unmap(d0, iova=0x0, size=0x1000)\n"
                 "dev_dma(sid=0, iova=0x0, write=0)\n")
    session.configure(patches=[SKIP_EMPTY, SEED000["jason-v1"]])
    got = {v: [f.kind for f in run_program(prog, [v]).findings] for v in ("kc-core-patched:virtio",
                                                                           "kc-core-patched:arm-smmu")}
    assert got == {"kc-core-patched:virtio": ["MISSED_INVALIDATION"], "kc-core-patched:arm-smmu": []}


def test_the_fuzzer_finds_skip_empty_in_the_c_core_from_nothing():
    """libFuzzer's own search (bench mode "default"), empty corpus, against a gather-ignoring driver; a
    finding the unpatched tree also gives does not count."""
    from smmufuzz.tools.bench import expose
    _tree()
    session.configure(patches=[SKIP_EMPTY])
    e = expose("default", "kc-core-patched:arm-smmu", 1, 90, control=["kc-core:arm-smmu"])
    assert e.found and e.kind == "MISSED_INVALIDATION", e
    assert e.execs <= 20000, e
    assert _kinds_text(e.program, "kc-core-patched:arm-smmu") == ["MISSED_INVALIDATION"]
    assert _kinds_text(e.program, "kc-core:arm-smmu") == []


def _kinds_text(text, variant):
    return [f.kind for f in run_program(parse(text), [variant]).findings]


def _tree_copy(tmp_path, edit, edited=ccore.SOURCE):
    """The tree's files, with one (iommu.c) edited (no kernel text in the repository: made here from the tree)."""
    tree = _tree()
    dst = tmp_path / "tree"
    for rel in tree.files():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(os.path.join(tree.path, rel)) as f:
            text = f.read()
        (dst / rel).write_text(edit(text) if rel == edited else text)
    return str(dst)


@pytest.mark.parametrize("case", ["renamed", "reshaped"])
def test_a_missing_or_reshaped_core_function_is_one_line_exit_2(tmp_path, monkeypatch, case):
    if case == "renamed":
        edit = lambda s: s.replace("size_t iommu_unmap_fast(", "size_t iommu_unmap_fast_renamed(", 1)  # noqa: E731
        want = "no definition of iommu_unmap_fast()"
    else:
        edit = lambda s: re.sub(r"(static size_t __iommu_unmap\(struct iommu_domain \*domain,\s*unsigned long iova, )"  # noqa: E731
                                r"size_t size", r"\1unsigned int size", s, count=1)
        want = ("__iommu_unmap(struct iommu_domain *, unsigned long, unsigned int, struct iommu_iotlb_gather *) changed "
                "shape: smmufuzz expects __iommu_unmap(struct iommu_domain *, unsigned long, size_t, "
                "struct iommu_iotlb_gather *)")
    tree = _tree_copy(tmp_path, edit)
    for args in (("kernel", "check", "--layer", "core", "--sequences", "10", "--tree", tree),
                 ("replay", B1, "--target", "kc-core:arm-smmu", "--tree", tree)):
        r = subprocess.run([sys.executable, "-m", "smmufuzz.cli", *args], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = r.stderr.strip().splitlines()
        assert len([ln for ln in err if ccore.SOURCE in ln]) == 1 and want in r.stderr, r.stderr
    # the rest of the tree still builds: the io-pgtable variants run
    monkeypatch.setenv(session.ENV_TREE, tree)
    session._builds.clear()
    b = session.get(False)
    assert b.ccore_missing and want in b.ccore_missing and "\n" not in b.ccore_missing
    assert run_program(parse(open(B1).read()), ["kc:arm-smmu"]).runs[0].finding is None


def test_robins_draft_as_posted_compiles_and_corrupts_the_stack(tmp_path):
    """The port without its `&` repair: add_range on &iotlb_gather (the pointer's stack slot)."""
    _tree()
    with open(SEED000["robin-draft"]) as f:
        text = f.read()
    posted = text.replace("add_range(iotlb_gather, iova, unmapped_page)", "add_range(&iotlb_gather, iova, unmapped_page)")
    assert posted != text
    (tmp_path / "robin-draft-posted.diff").write_text(posted)
    session.configure(patches=[SKIP_EMPTY, str(tmp_path / "robin-draft-posted.diff")])
    assert session.get(True).ccore_missing is None
    assert _kinds(B1, "kc-core-patched:arm-smmu") == ["MISSED_INVALIDATION"]     # the real gather stays empty
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                 "iommu_attach_device(d0, sid=0)\n"
                 "iommu_map(d0, iova=0x1ff000, paddr=0x801ff000, size=0x202000, prot=RW)\n"
                 "iommu_unmap(d0, iova=0x1ff000, size=0x202000)\n")
    (f,) = run_program(prog, ["kc-core-patched:arm-smmu"]).findings
    assert f.kind == "CRASH" and "SIGSEGV" in f.message and "__iommu_unmap iommu.c:" in f.message
    assert [x.kind for x in run_program(prog, ["gather:robin-draft:arm-smmu"]).findings] == []   # the model's draft
