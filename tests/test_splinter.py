"""Splintered TLB entries (issue 18 item 2): the planted RIL bug is seen only on an SMMU that may cache a
block as granule pieces; mainline is clean on the same program either way."""

import os

import pytest

from smmufuzz.harness import runner
from smmufuzz.harness.load import load_program
from smmufuzz.harness.runner import run_program

REPRO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "smmuv3",
                     "fuzz_ril_block_one_page.txt")


def _whole_blocks_only(monkeypatch):
    make = runner.hw_config

    def hw_config(cfg, policy):
        hw = make(cfg, policy)
        hw.splinter = False
        return hw
    monkeypatch.setattr(runner, "hw_config", hw_config)


def test_the_fuzzer_found_reproducer_needs_splintering(monkeypatch):
    prog, header = load_program(REPRO)
    assert [f.kind for f in run_program(prog, [header["target"]]).findings] == [header["expect"]]
    _whole_blocks_only(monkeypatch)
    assert not run_program(prog, [header["target"]]).findings


@pytest.mark.parametrize("splinter", [True, False])
def test_mainline_is_clean_on_it(monkeypatch, splinter):
    prog, _header = load_program(REPRO)
    if not splinter:
        _whole_blocks_only(monkeypatch)
    assert not run_program(prog, ["smmuv3", "invs:merged"]).findings
