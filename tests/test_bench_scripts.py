"""The benchmark scripts' own arithmetic: criterion.py's columns and layers.py's charging of a profile."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

import criterion  # noqa: E402
import layers  # noqa: E402


def _runs(*rows):
    return {seed: {"found": found, "execs": execs, "seconds": secs} for seed, (found, execs, secs) in
            enumerate(rows, 1)}


def test_criterion_column_counts_a_miss_over_the_cap_and_leaves_startup_out():
    by_seed = _runs((True, 12, 0.5), (False, 999, 60.0), (True, 3, 0.1))
    assert criterion.column(by_seed) == ([12, None, 3], 12)
    assert criterion.column(by_seed, startup=2) == ([10, None, 1], 10)
    assert criterion.column(by_seed, "seconds") == ([0.5, None, 0.1], 0.5)
    vals, med = criterion.column(_runs((False, 5, 1.0), (False, 5, 1.0), (True, 1, 0.2)))
    assert med == float("inf")
    assert criterion.column(_runs((True, 1, 0.0)), startup=2)[0] == [0]      # never below zero


def test_layers_charges_a_sample_to_its_innermost_smmufuzz_frame(tmp_path, capsys):
    prof = tmp_path / "raw.txt"
    prof.write_text(
        "main (smmufuzz/fuzz/worker.py:10);race_steps (smmufuzz/fuzz/fuzz_target.py:5);"
        "fill_all (smmufuzz/reference/smmu.py:900);get (<frozen>:1) 6\n"
        "main (smmufuzz/fuzz/worker.py:10);map (smmufuzz/variants/core.py:74) 3\n"
        "main (smmufuzz/fuzz/worker.py:10) 1\n"
        "watch_campaign (smmufuzz/fuzz/campaign.py:3) 50\n")
    layers.raw_profile(str(prof))
    out = capsys.readouterr().out
    assert out.startswith("10 samples  emulator 60.0%  models 30.0%  harness 10.0%  other  0.0%")
    assert "(in schedule searches 60.0%)" in out and "ceiling 2.50x" in out
    prof.write_text("not a profile\n")
    with pytest.raises(SystemExit, match="not a py-spy raw profile"):
        layers.raw_profile(str(prof))


def test_layers_knows_the_package_inside_a_folder_named_like_it():
    assert layers.layer_of("/home/u/smmufuzz/smmufuzz/reference/smmu.py") == "emulator"
    assert layers.layer_of("/home/u/smmufuzz/smmufuzz/kernel/ccore.py") == "models"
    assert layers.layer_of("/home/u/smmufuzz/smmufuzz/cli.py") == "harness"
    assert layers.layer_of("/home/u/smmufuzz/.venv/lib/python3.11/json/decoder.py") == "other"
    assert layers.ceiling(10.0, 10.0) == "unbounded"


def test_criterion_at_most_over_the_cap_goes_by_runs_found():
    inf = float("inf")
    assert criterion.at_most([3, 4], 3.5, [3, 5], 4)
    assert not criterion.at_most([4, 5], 4.5, [3, 5], 4)
    assert criterion.at_most([None, None, 9], inf, [None, None, None], inf)       # found once against never
    assert not criterion.at_most([None] * 3, inf, [None] * 3, inf)                # neither found it
    assert not criterion.at_most([None] * 3, inf, [None, None, 2], inf)
