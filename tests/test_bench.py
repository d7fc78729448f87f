"""`smmufuzz bench` plumbing on a planted bug (tests.broken_variants' test-wrong-pa, found within a few
programs by every mode): each mode reports an exposure, runs repeat per seed, and the report files are written."""

import json
import xml.etree.ElementTree as ET

import pytest

import tests.broken_variants  # noqa: F401  (registers test-wrong-pa)
from smmufuzz.tools.bench import Exposure, expose
from smmufuzz.tools.bench_report import format_markdown, format_text, summarize, svg_plot
from smmufuzz.cli import main
from smmufuzz.prog.program import parse
from smmufuzz.fuzz.random_search import random_search
from smmufuzz.exec.runner import run_program

PLANTED = "test-wrong-pa"


def test_random_mode_finds_the_planted_bug_and_repeats_per_seed():
    f, secs, n, _p = random_search([PLANTED], 30, seed=1)
    assert f is not None and f.kind == "WRONG_PA" and secs < 30
    f2, _s2, n2, _p2 = random_search([PLANTED], 30, seed=1)
    assert (f2.kind, f2.op_index, n2) == (f.kind, f.op_index, n)


def test_hypothesis_mode_finds_the_planted_bug_and_repeats_per_seed():
    pytest.importorskip("hypothesis")
    a = expose("hypothesis", PLANTED, 1, 30)
    b = expose("hypothesis", PLANTED, 1, 30)
    assert a.found and a.kind == "WRONG_PA" and a.execs == b.execs


@pytest.mark.parametrize("mode", ["default", "hybrid"])
def test_atheris_modes_time_from_the_first_input(mode):
    e = expose(mode, PLANTED, 1, 30, plugins=("tests.broken_variants",))
    assert e.found and e.kind == "WRONG_PA" and e.execs >= 1
    assert 0 <= e.seconds < 30 and e.startup > 0
    # the minimised program is kept, and it replays to the same finding
    from smmufuzz.prog.program import parse
    from smmufuzz.exec.runner import run_program
    from smmufuzz.variants.registry import target
    assert [f.kind for f in run_program(parse(e.program), target(PLANTED)).findings] == ["WRONG_PA"]


def test_report_table_and_plot():
    runs = [Exposure("random", "v", 1, True, 0.5, 10, "WRONG_PA"), Exposure("random", "v", 2, True, 1.5, 30, "WRONG_PA"),
            Exposure("random", "v", 3, False, 10.0, 900), Exposure("hypothesis", "v", 1, False, 10.0, 50)]
    rows = summarize(runs)
    r = next(x for x in rows if x["mode"] == "random")
    assert (r["found"], r["runs"], r["median_s"], r["range_s"], r["median_execs"]) == (2, 3, 1.0, [0.5, 1.5], 20)
    h = next(x for x in rows if x["mode"] == "hypothesis")
    assert h["found"] == 0 and h["median_s"] is None
    assert "2/3" in format_text(rows) and "| random | `v` | 2/3 |" in format_markdown(rows)
    ET.fromstring(svg_plot(runs, 10))          # well-formed SVG


def test_cli_writes_json_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["bench", "--load", "tests.broken_variants", "--variants", PLANTED, "--modes", "random", "--seeds", "2",
               "--cap", "20", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "seeds [1, 2]" in text and "2/2" in text
    data = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in data["runs"]] == [1, 2] and all(r["found"] for r in data["runs"])
    assert data["meta"]["command"].startswith("smmufuzz bench")
    assert (out / "results.md").read_text().count("|") > 10
    assert (out / "index.html").read_text().count("<svg") == 1


def test_a_named_control_is_used_and_the_exposing_program_kept(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["bench", "--load", "tests.broken_variants", "--variants", PLANTED, "--modes", "random,generate",
               "--seeds", "1", "--cap", "20", "--control", "smmuv3", "--out", str(out)])
    assert rc == 0
    assert f"control for {PLANTED}: smmuv3" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["controls"] == {PLANTED: ["smmuv3"]}
    for r in data["runs"]:                    # each in-process mode's program replays to a finding
        assert r["found"] and r["program"]
        assert run_program(parse(r["program"]), [PLANTED]).findings
    assert "Minimised programs" in (out / "results.md").read_text()


def test_a_buggy_control_is_a_usage_error(capsys):
    assert main(["bench", "--variants", "smmuv3", "--control", "pt:A"]) == 2
    assert "must be a variant marked correct" in capsys.readouterr().err


def test_unknown_mode_is_a_usage_error(capsys):
    assert main(["bench", "--modes", "fast", "--variants", "smmuv3"]) == 2
    assert "unknown mode 'fast'" in capsys.readouterr().err


def test_a_finding_the_control_also_gives_does_not_count():
    f, secs, n, _p = random_search([PLANTED], 1.0, seed=1, control=[PLANTED])
    assert f is None and secs >= 1.0 and n > 1


def test_controls_are_correct_siblings():
    from smmufuzz.tools.bench import control_for
    assert control_for("gather:skip-empty:virtio") == ["gather:legacy:virtio"]
    assert control_for("pte-sync:deferred-v1") == ["pte-sync:eager"]
    assert control_for("pt:A") == ["pt:B"]
    assert control_for("test-fq-eager-free") == ["pt-fq:C"]      # its factory's correct base class
    assert control_for("test-wrong-pa") == ["smmuv3"]
    assert control_for("kc-patched:smmuv3") == ["kc:smmuv3"]     # the patched tree against the unpatched one
    assert control_for("kc-patched:pte-sync") == ["kc:pte-sync"]
    assert control_for("kc-core-patched:smmuv3") == ["kc-core:smmuv3"]   # the tree's core, unpatched
    assert control_for("kc-core-patched:virtio") == ["kc-core:virtio"]
    # the whole tree (core, io-pgtable, arm-smmu-v3) unpatched; not kc-core-patched, its factory's base, which
    # runs a core patch too and would hide it
    assert control_for("kc-full-patched:smmuv3") == ["kc-full:smmuv3"]
