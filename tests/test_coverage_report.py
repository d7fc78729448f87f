"""`smmufuzz cov`: replaying a tiny corpus under coverage.py gives branch coverage of the reference and
the variants, one context per input, skips a corrupt input, and --since names the arcs a second corpus adds."""

import os
import shutil

import pytest

from smmufuzz.cli import main
from smmufuzz.fuzz.coverage_report import file_summaries, load, measure, newly_covered

HERE = os.path.dirname(__file__)
COHERENT = os.path.join(HERE, "programs", "missed_invalidation.txt")
NON_COHERENT = os.path.join(HERE, "programs", "invisible_mapping.txt")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """Coverage data of a one-input corpus (a coherent walker) on mainline."""
    d = tmp_path_factory.mktemp("cov1")
    data = str(d / "first.coverage")
    done, bad = measure([COHERENT], data, variant="smmuv3")
    assert done == [COHERENT] and bad == []
    return data


def test_a_tiny_corpus_covers_branches_of_the_smmu_model(first):
    files = file_summaries(load(first))
    smmu = files["smmufuzz/reference/smmu.py"]["summary"]
    assert smmu["covered_branches"] > 0 and smmu["num_branches"] > smmu["covered_branches"]
    assert files["smmufuzz/variants/arm_smmu_v3.py"]["summary"]["covered_lines"] > 0
    assert files["smmufuzz/variants/io_pgtable_arm_v7s.py"]["summary"]["covered_branches"] == 0  # not on smmuv3


def test_contexts_are_per_input_and_since_reports_new_arcs(first, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (COHERENT, NON_COHERENT):
        shutil.copy(p, corpus)
    (corpus / "broken.txt").write_text("config(granule=4K)\niommu_map(d0, iova=zz)\n")
    data = str(tmp_path / "second.coverage")
    done, bad = measure(sorted(str(p) for p in corpus.iterdir()), data, variant="smmuv3")
    assert len(done) == 2 and len(bad) == 1 and "line 2" in bad[0][1]
    cov = load(data)
    cdata = cov.get_data()
    names = {os.path.basename(c) for c in cdata.measured_contexts()}
    assert {"missed_invalidation.txt", "invisible_mapping.txt"} <= names and "broken.txt" not in names
    mem = next(f for f in cdata.measured_files() if f.endswith(os.path.join("reference", "memory.py")))
    by_line = cdata.contexts_by_lineno(mem)
    only_nc = [ln for ln, ctxs in by_line.items() if [os.path.basename(c) for c in ctxs] == ["invisible_mapping.txt"]]
    assert only_nc, "cache maintenance of the non-coherent walker is attributed to its input alone"
    new = newly_covered(cov, first)
    assert sum(len(arcs) for _lines, arcs in new.values()) > 0
    assert newly_covered(load(first), first) == {}

    html = tmp_path / "html"
    rc = main(["cov", "--corpus", str(corpus), "--variant", "smmuv3", "--since", first, "--html", str(html)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "skipped" in out and "broken.txt" in out
    assert "smmufuzz/reference/smmu.py" in out and "TOTAL" in out
    assert "newly covered since" in out and "arc(s)" in out
    assert (html / "index.html").exists()


def test_cov_html_notes_cover_percentages_and_a_campaign_report_links_them(tmp_path, monkeypatch, capsys):
    """`cov --html` writes smmufuzz-cov.json beside index.html (cover % over all modules and over those the
    inputs reached); a campaign on that corpus root links the report and shows its target's percentage."""
    import io
    import json
    import xml.etree.ElementTree as ET
    from smmufuzz.fuzz import campaign as campaign_mod
    from smmufuzz.fuzz.campaign import Campaign, Options
    html = tmp_path / "cov" / "smmuv3"
    assert main(["cov", "--corpus", COHERENT, "--target", "smmuv3", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    note = json.load(open(html / "smmufuzz-cov.json"))
    assert note["target"] == "smmuv3" and note["variant"] is None and note["inputs"] == 1
    per = note["per_module"]
    assert per["smmufuzz/variants/arm_smmu_v3.py"]["reached"]
    assert not per["smmufuzz/variants/io_pgtable_arm_v7s.py"]["reached"]         # not on smmuv3: import only
    assert 0 < note["reached_modules"] < note["modules"] == len(per)
    assert note["percent"] < note["reached_percent"] < 100
    assert f"{note['reached_percent']:.1f}% covered" in out

    monkeypatch.setattr(campaign_mod, "libfuzzer_args", lambda *a, **k: ["true"])   # a worker that ends at once
    c = Campaign(Options([("smmuv3", ["smmuv3"]), ("pte-sync", ["pte-sync:eager"])], 3, 1, 7, str(tmp_path),
                         use_seeds=False), io.StringIO(), io.StringIO())
    s = c.run()
    page = open(s["report"]).read()
    ET.fromstring(page)
    link = os.path.relpath(html / "index.html", s["directory"])
    pct = f"{note['reached_percent']:.1f}%"
    assert f'<a href="{link}">{pct}</a>' in page                      # in smmuv3's row of the targets table
    assert f"{pct} of the {note['reached_modules']} modules its inputs reached" in page
    assert f"smmuv3: cov 0, {pct} of reached code" in page            # its coverage plot's title
    assert "smmufuzz cov --target pte-sync --corpus " in page          # how to make pte-sync's
