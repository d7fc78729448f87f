"""Splintered TLB entries (issue 18 item 2): the planted RIL bug is seen only on an SMMU that may cache a
block as granule pieces (config splinter=1, latitude.py); its finding says it needs that unverified latitude;
mainline is clean on the same program either way."""

import os
from dataclasses import replace

import pytest

from smmufuzz.harness.latitude import UNVERIFIED
from smmufuzz.harness.load import load_program
from smmufuzz.harness.runner import run_program

REPRO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "smmuv3",
                     "fuzz_ril_block_one_page.txt")


def _splinter(prog, on: bool):
    return replace(prog, config=replace(prog.config, splinter=on))


def test_the_fuzzer_found_reproducer_needs_splintering():
    prog, header = load_program(REPRO)
    assert prog.config.splinter
    found = run_program(prog, [header["target"]]).findings
    assert [f.kind for f in found] == [header["expect"]]
    assert UNVERIFIED["splinter"] in found[0].message
    assert not run_program(_splinter(prog, False), [header["target"]]).findings


@pytest.mark.parametrize("splinter", [True, False])
def test_mainline_is_clean_on_it(splinter):
    prog, _header = load_program(REPRO)
    assert not run_program(_splinter(prog, splinter), ["smmuv3", "invs:merged"]).findings
