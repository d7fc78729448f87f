"""Coverage features beyond code edges: the reference's cache shape and the fresh-bucket signal."""

import os
import re
import subprocess
import sys

import pytest

from smmufuzz.exec import feature_cov
from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program


def test_fresh_is_reported_once_per_new_bucket(monkeypatch):
    # buckets are hashed (256): runs earlier in this process may have hit this key's bucket already
    monkeypatch.setattr(feature_cov, "_seen", set())
    feature_cov.take_fresh()
    key = "test|a key no run produces"
    feature_cov.interleaving_event(key)
    first = feature_cov.take_fresh()
    feature_cov.interleaving_event(key)
    assert first and not feature_cov.take_fresh()


def test_cache_shape_shows_the_orphan_stale_entry_b12c_leaves(monkeypatch):
    """No tag flush at detach: the TLB keeps d0's entry under a tag no STE selects (orphan), and after the
    unmap that entry's page is gone; the fixed driver's TLB holds neither."""
    prog, header = load_program(os.path.join(os.path.dirname(__file__), "..", "corpus", "regressions", "invs",
                                                "hand_b12c.txt"))
    shapes = []
    monkeypatch.setattr(feature_cov, "_cache_shapes", [True])
    monkeypatch.setattr(feature_cov, "cache_event", lambda kind, shape: shapes.append((kind, shape)))
    run_program(prog, [header["target"]])
    assert ("detach", frozenset({"orphan/same"})) in shapes and ("unmap", frozenset({"orphan/gone-none"})) in shapes
    shapes.clear()
    run_program(prog, ["invs:merged"])
    assert not any(s for k, s in shapes if k in ("detach", "unmap"))


def test_cache_shape_tells_a_block_cached_while_a_table_replaces_it(monkeypatch):
    """A 2 MiB block in the TLB (and a 4 KiB piece of it in the ATC) unmapped without a sync, then a page
    mapped at its address: the walk now ends in a smaller leaf (gone-split); the sync drops both."""
    from smmufuzz.prog.program import parse
    prog = parse("""config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
pci_ats(sid=0, on=1)
iommu_map(d0, iova=0x200000, paddr=0x80200000, size=0x200000, prot=RW)
ats_translate(sid=0, iova=0x200000)
iommu_unmap_fast(d0, iova=0x200000, size=0x200000, gather=g0)
iommu_map(d0, iova=0x200000, paddr=0x80200000, size=0x1000, prot=RW)
iommu_iotlb_sync(d0, gather=g0)
""")
    shapes = []
    monkeypatch.setattr(feature_cov, "_cache_shapes", [True])
    monkeypatch.setattr(feature_cov, "cache_event", lambda kind, shape: shapes.append(shape))
    run_program(prog, ["smmuv3"])
    assert shapes[3] == {"atc/same", "live/same"}                    # after ats_translate
    assert shapes[4] == {"atc/gone-none", "live/gone-none"}          # unmap_fast, no sync yet
    assert {"live/gone-split", "live/same"} <= shapes[5] and "atc/gone-none" not in shapes[5]
    assert shapes[6] == {"atc/same", "live/same"}                    # the sync


def test_alias_event_marks_an_install_inside_another_attachs_window(monkeypatch):
    """KRACE-style alias coverage: with writers unserialised, cpu1's attach loads and installs d0's array
    between cpu0's load and install (the lost update); the event names both accesses. Run one after the
    other, the two attaches give no alias event."""
    from smmufuzz.exec import sched
    from smmufuzz.prog.program import parse
    events = []
    monkeypatch.setattr(sched, "interleaving_event", lambda *parts: events.append(parts))
    text = ("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
            "iommu_attach_device(d0, sid=0)\npreempt(after=2, to=cpu1)\ncpu1: iommu_attach_device(d0, sid=1)\n")
    run_program(parse(text), ["invs:no-mutex-refcount"])
    assert ("alias", "prepare: load new_domain->invs", "install new: rcu_assign_pointer(new_domain->invs)") in events
    events.clear()
    run_program(parse(text.replace("preempt(after=2, to=cpu1)\n", "")), ["invs:no-mutex-refcount"])
    assert not [e for e in events if e[0] == "alias"]


def test_a_fuzz_worker_instruments_the_models_and_not_the_emulator(tmp_path):
    """The fuzz target imports the variants inside atheris' instrumented-import block; a module imported before it
    (the kernel-C preload used to import the registry, and with it every variant) runs without coverage, and the
    fuzzer is blind to the kernel models (13e0393 until issue 16). The emulator is imported plain: its edges
    cost 1.4x in exec/s and found nothing sooner (fuzz_target.emulator_modules)."""
    code = ("import sys; from smmufuzz.fuzz.fuzz_target import main; "
            "main(['smmuv3'], 'max-cache', [sys.argv[0], '-runs=2', '-seed=1'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    done = set(re.findall(r"INFO: Instrumenting (\S+)", p.stderr))
    for mod in ("smmufuzz.variants.io_pgtable_arm", "smmufuzz.variants.arm_smmu_v3", "smmufuzz.variants.core",
                "smmufuzz.exec.feature_cov"):
        assert mod in done, (mod, sorted(done))
    assert not {m for m in done if m.startswith("smmufuzz.reference")}
    assert not done & {"smmufuzz.exec.runner"}      # the harness: not


def _instrumented(value: str) -> subprocess.CompletedProcess:
    """import_instrumented() in a fresh interpreter with SMMUFUZZ_INSTRUMENT=value."""
    env = dict(os.environ, SMMUFUZZ_INSTRUMENT=value)
    return subprocess.run([sys.executable, "-c", "from smmufuzz.fuzz import fuzz_target as ft; ft.import_instrumented()"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_instrumentation_knob_adds_the_emulator_but_not_the_judge():
    p = _instrumented("all")
    done = set(re.findall(r"INFO: Instrumenting (\S+)", p.stderr))
    assert p.returncode == 0 and {"smmufuzz.reference.smmu", "smmufuzz.reference.lpae",
                                  "smmufuzz.variants.arm_smmu_v3"} <= done
    assert "smmufuzz.reference.oracle" not in done
    p = _instrumented("everything")
    assert p.returncode != 0 and p.stderr.strip().splitlines()[-1] == \
        "SMMUFUZZ_INSTRUMENT='everything': one of variants, all"


def test_the_feature_ablation_knob_keeps_only_the_classes_asked_for(monkeypatch):
    from smmufuzz.fuzz import fuzz_target
    monkeypatch.setattr(feature_cov, "_cache_shapes", [False])
    monkeypatch.setattr(feature_cov, "_interleavings", [True])
    monkeypatch.setenv("SMMUFUZZ_FEATURES", "cache")
    fuzz_target.select_features()
    assert feature_cov.collecting_cache_shapes() and not feature_cov._interleavings[0]
    feature_cov.take_fresh()
    feature_cov.interleaving_event("test|ablated", "never a feature")
    assert not feature_cov.take_fresh()
    monkeypatch.setenv("SMMUFUZZ_FEATURES", "everything")
    with pytest.raises(SystemExit, match="one of all, edges, cache, sched"):
        fuzz_target.select_features()
