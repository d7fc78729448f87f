"""The core layer of the fidelity check: variants/gather.py vs the tree's include/linux/iommu.h gather helpers.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc. Without one these tests are
skipped with the reason, unless SMMUFUZZ_REQUIRE_KERNEL=1 (CI), where a missing tree is a failure.
"""

import os
import subprocess
import sys

import pytest

from smmufuzz.harness import fidelity_core as F
from smmufuzz.harness.program import parse
from smmufuzz.harness.runner import run_program
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
    r = subprocess.run([sys.executable, "-m", "smmufuzz.harness.cli", "kernel", "check", "--layer", "core",
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
