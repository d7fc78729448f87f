"""Coverage features beyond code edges: the reference's cache shape and the fresh-bucket signal."""

import os

from smmufuzz.harness import feature_cov, runner
from smmufuzz.harness.load import load_program
from smmufuzz.harness.runner import run_program


def test_fresh_is_reported_once_per_new_bucket():
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
    monkeypatch.setattr(runner, "CACHE_FEATURES", True)
    monkeypatch.setattr(runner, "cache_event", lambda kind, shape: shapes.append((kind, shape)))
    run_program(prog, [header["target"]])
    assert ("detach", frozenset({"orphan/same"})) in shapes and ("unmap", frozenset({"orphan/gone"})) in shapes
    shapes.clear()
    run_program(prog, ["invs:merged"])
    assert not any(s for k, s in shapes if k in ("detach", "unmap"))
