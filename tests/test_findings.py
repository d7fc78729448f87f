"""Each finding kind, produced by a hand-written program on a deliberately broken test-only variant,
at the op index the program's header states; the same program is clean on mainline."""

import glob
import os
import re

import pytest

import tests.broken_variants  # noqa: F401  (registers the test-only variants)
from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program

PROGRAMS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "programs", "*.txt")))


def _expect(path):
    with open(path) as f:
        m = re.search(r"#\s*expect:\s*(\w+) at op (\d+) on (\S+)", f.read())
    assert m, f"{path} has no '# expect:' line"
    return m.group(1), int(m.group(2)), m.group(3).split(",")


def test_every_kind_has_a_program():
    kinds = {_expect(p)[0] for p in PROGRAMS}
    assert kinds == {"MISSED_INVALIDATION", "WRONG_PA", "INVISIBLE_MAPPING", "TABLE_UAF", "CMD_ERROR",
                     "HANG", "CRASH", "DIVERGENCE"}


@pytest.mark.parametrize("path", PROGRAMS, ids=[os.path.basename(p)[:-4] for p in PROGRAMS])
def test_broken_variant_gives_exactly_that_finding(path):
    kind, op_index, variants = _expect(path)
    prog, _ = load_program(path)
    res = run_program(prog, variants)
    assert [(f.kind, f.op_index) for f in res.findings] == [(kind, op_index)], \
        "\n".join(f.text() for f in res.findings) + "\n" + prog.text()


@pytest.mark.parametrize("path", PROGRAMS, ids=[os.path.basename(p)[:-4] for p in PROGRAMS])
def test_same_program_is_clean_on_mainline(path):
    prog, _ = load_program(path)
    res = run_program(prog, ["smmuv3"])
    assert res.findings == [], "\n".join(f.text() for f in res.findings)
