"""arm-smmu-v3.c's arm_smmu_domain_finalise() and domain->ops->iotlb_sync_map from the tree (kernel/cdriver.py,
csrc/driver.c, kernel/csmmu.py), and seed 003's whole series as real code on kc-full(-patched):pte-sync.

Needs a kernel tree (Debian: apt-get install linux-source-6.12) and gcc, skipped with the reason otherwise unless
SMMUFUZZ_REQUIRE_KERNEL=1; the seed-003 test also needs the thread (../shared/seeds) beside the project.
"""

import os

import pytest

from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program, run_variant
from smmufuzz.kernel import cdriver, clib, session
from smmufuzz.kernel.extract import ExtractError, Source
from tests.test_kernel_c import PORT, ROOT, SEED003, _make_patch, _tree, fresh_session  # noqa: F401
from tests.test_kernel_driver import _build

MAP = """config(granule=4K, ias=48, stage={stage}, coherent={coherent}, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x{size:x}, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
"""


def _domain(variant: str, text: str):
    """The model SmmuDomain of d0 (its C struct arm_smmu_domain and io-pgtable) after the program ran clean."""
    seen = []
    run = run_variant(parse(text), variant, probe=lambda ex, i, op, ret: seen.append(ex.os))
    assert run.finding is None, run.finding
    return seen[-1].domains[0].priv, seen[-1].driver


@pytest.mark.parametrize("stage,coherent", [(1, 1), (1, 0), (2, 1), (2, 0)])
def test_the_trees_finalise_chooses_the_io_pgtable_cfg(stage, coherent):
    _build()
    d, drv = _domain("kc-full:smmuv3", MAP.format(stage=stage, coherent=coherent, size=0x1000))
    # arm_smmu_domain_finalise() ran once, asked for the stage's format, coherent_walk from
    # ARM_SMMU_FEAT_COHERENCY; 6.12's io_pgtable_cfg has no defer_sync_pte
    assert (d.c.allocs, d.c.stage, d.c.coherent_walk, d.c.defer_sync_pte) == (1, stage, bool(coherent), None)
    assert d.c.fmt == (clib.ARM_64_LPAE_S1 if stage == 1 else clib.ARM_64_LPAE_S2)
    assert d.pgtbl.cfg.coherent_walk == bool(coherent) and d.pgtbl.cfg.defer_sync_pte is False
    assert getattr(drv, "iotlb_sync_map", None) is None       # 6.12 sets no domain->ops->iotlb_sync_map


def test_a_patched_finalise_is_what_the_io_pgtable_gets(tmp_path):
    tree = _tree()
    _build()
    p = _make_patch(tmp_path, tree, cdriver.SOURCE, lambda s: s.replace(
        "\t\t.coherent_walk\t= smmu->features & ARM_SMMU_FEAT_COHERENCY,\n",
        "\t\t.coherent_walk\t= false,\n", 1), "never-coherent")
    session.configure(patches=[p])
    d, _drv = _domain("kc-full-patched:smmuv3", MAP.format(stage=1, coherent=1, size=0x1000))
    assert d.c.coherent_walk is False and d.pgtbl.cfg.coherent_walk is False
    d, _drv = _domain("kc-full:smmuv3", MAP.format(stage=1, coherent=1, size=0x1000))
    assert d.c.coherent_walk is True


def test_a_drivers_iotlb_sync_map_is_called_by_the_trees_core(tmp_path):
    """Our own op, added by the test: it fails maps of more than 64K, so iommu_map() unrolls and returns it."""
    tree = _tree()
    _build()

    def add_op(s):
        fn = ("static int arm_smmu_kc_sync_map(struct iommu_domain *domain,\n\t\t\t\tunsigned long iova, size_t size)\n"
              "{\n\treturn size > 0x10000 ? -EIO : 0;\n}\n\n")
        s = s.replace("static size_t arm_smmu_unmap_pages(", fn + "static size_t arm_smmu_unmap_pages(", 1)
        return s.replace("\t\t.iotlb_sync\t\t= arm_smmu_iotlb_sync,\n",
                         "\t\t.iotlb_sync_map\t\t= arm_smmu_kc_sync_map,\n\t\t.iotlb_sync\t\t= arm_smmu_iotlb_sync,\n", 1)
    session.configure(patches=[_make_patch(tmp_path, tree, cdriver.SOURCE, add_op, "sync-map-op")])
    b = session.get(True)
    assert b.driver_missing is None
    gen = open(os.path.join(os.path.dirname(b.lib), "gen", cdriver.GENERATED)).read()
    assert "#define KC_DRV_IOTLB_SYNC_MAP arm_smmu_kc_sync_map" in gen
    small, big = MAP.format(stage=1, coherent=1, size=0x10000), MAP.format(stage=1, coherent=1, size=0x11000)
    for text, want in ((small, 0), (big, -5)):
        run = run_variant(parse(text), "kc-full-patched:smmuv3")
        assert run.returns[1] == want, run.returns
    # the unrolled map leaves nothing mapped: the DMA faults as the intent says it must
    assert run_variant(parse(big), "kc-full-patched:smmuv3").finding is None
    assert run_variant(parse(big), "kc-full:smmuv3").returns[1] == 0


def test_two_functions_for_one_op_is_one_line():
    src = Source("static const struct iommu_domain_ops a = { .iotlb_sync_map = f1, };\n"
                 "static const struct iommu_domain_ops b = { .iotlb_sync_map = f2 };\n", "x.c")
    with pytest.raises(ExtractError, match=r"^x.c: .iotlb_sync_map is set to f1 and f2: smmufuzz calls one$"):
        cdriver.domain_ops(src)


def test_seed003_whole_series_runs_as_real_code():
    """Both patches of seed 003 applied: PATCH 2/2's defer_sync_pte and arm_smmu_iotlb_sync_map are the C's."""
    _tree()
    seed = [f for f in os.listdir(SEED003) if f.startswith("003_")] if os.path.isdir(SEED003) else []
    if not seed:
        pytest.skip("the seed-003 thread is not beside the project")
    session.configure(patches=[os.path.join(SEED003, seed[0]) + ":skip=include/linux/io-pgtable.h", PORT])
    b = session.get(True)
    assert b.driver_missing is None
    d, drv = _domain("kc-full-patched:pte-sync", MAP.format(stage=1, coherent=1, size=0x3000))
    assert d.c.defer_sync_pte is True and d.pgtbl.cfg.defer_sync_pte is True and d.c.coherent_walk is False
    assert drv.iotlb_sync_map is not None
    for name in ("b14_a.txt", "b14_b.txt", "b14_c.txt", "b14_64k_ias32.txt"):
        prog, _h = load_program(os.path.join(ROOT, "corpus", "regressions", "pte-sync", name))
        by = {r.name: r.finding for r in run_program(prog, ["kc-full-patched:pte-sync", "kc-full:pte-sync"]).runs}
        assert by["kc-full-patched:pte-sync"] is not None, name
        assert by["kc-full-patched:pte-sync"].kind == "INVISIBLE_MAPPING", name
        assert by["kc-full:pte-sync"] is None, (name, by["kc-full:pte-sync"])


def test_the_unpatched_6_12_driver_has_no_iotlb_sync_map():
    b = _build()
    src = Source(open(os.path.join(b.tree.path, cdriver.SOURCE)).read(), cdriver.SOURCE, cdriver.CONFIG)
    assert cdriver.domain_ops(src) == {}
    gen = open(os.path.join(os.path.dirname(b.lib), "gen", cdriver.GENERATED)).read()
    assert "KC_DRV_IOTLB_SYNC_MAP" not in gen and "arm_smmu_domain_finalise(struct" in gen
