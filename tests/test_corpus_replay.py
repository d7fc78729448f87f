"""Replay of the committed corpus: seeds must run clean on mainline; each regression reproduces what
its header records (`# expect: clean`, `# expect: KIND` or `# expect: KIND,KIND`) on its `# target:`."""

import glob
import os

import pytest

import tests.broken_variants  # noqa: F401  (test-only variants named by some regressions)
from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program
from smmufuzz.variants.registry import target

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus")
SEEDS = sorted(glob.glob(os.path.join(ROOT, "seeds", "**", "*.txt"), recursive=True))
# reproducers naming a test-only variant (tests/broken_variants.py) live beside the tests, not in the corpus
TEST_ONLY = os.path.join(os.path.dirname(__file__), "programs", "regressions")
REGRESSIONS = sorted(glob.glob(os.path.join(ROOT, "regressions", "**", "*.txt"), recursive=True)) + \
    sorted(glob.glob(os.path.join(TEST_ONLY, "*.txt")))


def _id(p):
    return os.path.relpath(p, ROOT if p.startswith(ROOT + os.sep) else os.path.dirname(TEST_ONLY))


@pytest.mark.parametrize("path", SEEDS, ids=[_id(p) for p in SEEDS])
def test_seed_is_clean_on_mainline(path):
    prog, header = load_program(path)
    res = run_program(prog, target(header.get("target", "smmuv3")))
    assert not res.findings, "\n".join(f.text() for f in res.findings) + "\n" + prog.text()


@pytest.mark.parametrize("path", REGRESSIONS, ids=[_id(p) for p in REGRESSIONS])
def test_regression_reproduces_its_record(path):
    prog, header = load_program(path)
    assert "target" in header and "expect" in header, f"{path}: needs '# target:' and '# expect:' lines"
    res = run_program(prog, target(header["target"]))
    got = sorted({f.kind for f in res.findings}) or ["clean"]
    assert got == sorted(header["expect"].split(",")), "\n".join(f.text() for f in res.findings) + "\n" + prog.text()
