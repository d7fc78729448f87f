"""`smmufuzz findings merge`: findings stores of several corpora (machines, CI jobs) merged into one: one record
per signature, hits added up once per source, the earliest first-seen kept, reproducers copied."""

import json
import os

from smmufuzz.cli import main as cli_main
from smmufuzz.fuzz.findings_store import FindingsStore, load_records
from smmufuzz.fuzz.fuzz import target_dirname
from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program
from smmufuzz.variants import registry
from tests.test_sarif import ATS_RACE, JASON_V2_MTK, record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_EMPTY = os.path.join(ROOT, "corpus", "regressions", "gather", "b1_skip_empty_virtio.txt")
EARLY = {"campaign": "20200101-000000-seed1", "seconds": 12.0, "wall": "2020-01-01T00:00:00Z"}


def store_of(root):
    return FindingsStore(str(root / "findings"))


def rewrite(root, rec, **fields):
    path = root / "findings" / f"{rec['kind'].lower()}-{rec['key']}.json"
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def two_machines(tmp_path):
    """Corpus a: the skip-empty bug twice and Jason v2's CRASH (with its regressions/ file, as a campaign
    writes it); corpus b: the skip-empty bug once, seen earlier, and the ATS enable race."""
    a, b = tmp_path / "a", tmp_path / "b"
    sa, sb = store_of(a), store_of(b)
    skip_a = record(sa, SKIP_EMPTY, "gather:skip-empty:virtio", campaign="a1")
    record(sa, SKIP_EMPTY, "gather:skip-empty:virtio", campaign="a2")
    crash = record(sa, JASON_V2_MTK, "gather:jason-v2:mtk", campaign="a1")
    regr = a / "regressions" / target_dirname("gather:jason-v2:mtk") / f"crash-{crash['key']}.txt"
    regr.parent.mkdir(parents=True)
    regr.write_text((a / "findings" / f"crash-{crash['key']}.txt").read_text())
    skip_b = record(sb, SKIP_EMPTY, "gather:skip-empty:virtio", campaign="b1")
    rewrite(b, skip_b, first_seen=EARLY)
    race = record(sb, ATS_RACE, "invs:merged", campaign="b1")
    assert skip_a["key"] == skip_b["key"]
    return a, b, skip_a["key"], crash["key"], race["key"]


def merged(root):
    return {r["key"]: r for r in load_records(str(root))}


def test_two_stores_merge_into_one_with_hits_added_and_the_earliest_first_seen(tmp_path, capsys):
    a, b, skip, crash, race = two_machines(tmp_path)
    c = tmp_path / "c"
    assert cli_main(["findings", "merge", str(a), str(b), "--into", str(c)]) == 0
    out = capsys.readouterr().out
    assert "merged 2 findings store(s)" in out and "3 new" in out and "3 finding(s) in all" in out
    recs = merged(c)
    assert set(recs) == {skip, crash, race}
    assert recs[skip]["hits"] == 3 and recs[skip]["first_seen"] == EARLY
    assert recs[crash]["hits"] == 1 and recs[race]["hits"] == 1
    assert recs[race]["verdict"] == "known_design" and recs[crash]["verdict"] == "expected"
    # each reproducer is in c and replays to its finding: the regressions/ copy where the source had one
    assert recs[crash]["reproducer"] == str(c / "regressions" / target_dirname("gather:jason-v2:mtk") /
                                            f"crash-{crash}.txt")
    assert recs[race]["reproducer"] == str(c / "findings" / f"missed_invalidation-{race}.txt")
    for key, rec in recs.items():
        assert rec["replay"] == f"smmufuzz replay {rec['reproducer']} --target {rec['target']}"
        assert os.path.exists(c / "findings" / f"{rec['kind'].lower()}-{key}.txt")
        prog, header = load_program(rec["reproducer"])
        kinds = [f.kind for f in run_program(prog, registry.target(header["target"])).findings]
        assert rec["kind"] in kinds, (rec["reproducer"], kinds)


def test_merging_the_same_sources_again_counts_their_hits_once_and_keeps_the_destinations_own(tmp_path, capsys):
    a, b, skip, _crash, _race = two_machines(tmp_path)
    c = tmp_path / "c"
    assert cli_main(["findings", "merge", str(a), str(b), "--into", str(c)]) == 0
    assert cli_main(["findings", "merge", str(a), str(b), "--into", str(c)]) == 0
    assert "0 new, 3 already there" in capsys.readouterr().out
    assert merged(c)[skip]["hits"] == 3
    record(store_of(c), SKIP_EMPTY, "gather:skip-empty:virtio", campaign="c1")    # a campaign on c itself
    record(store_of(a), SKIP_EMPTY, "gather:skip-empty:virtio", campaign="a3")    # and one more on a
    assert cli_main(["findings", "merge", str(a), "--into", str(c)]) == 0
    rec = merged(c)[skip]
    assert rec["hits"] == 1 + 3 + 1 and rec["first_seen"] == EARLY
    assert sorted(v["hits"] for v in rec["merged_from"].values()) == [1, 3]


def test_a_bad_source_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys):
    a, b, _skip, _crash, race = two_machines(tmp_path)
    c = tmp_path / "c"
    assert cli_main(["findings", "merge", str(a), "--into", str(c)]) == 0
    before = {p: p.read_bytes() for p in c.rglob("*") if p.is_file() and p.name != ".campaign.lock"}
    capsys.readouterr()
    bad = b / "findings" / f"missed_invalidation-{race}.json"
    bad.write_text(bad.read_text()[:30])
    assert cli_main(["findings", "merge", str(b), "--into", str(c)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{bad}: unreadable finding record (JSONDecodeError" in err
    after = {p: p.read_bytes() for p in c.rglob("*") if p.is_file() and p.name != ".campaign.lock"}
    assert after == before
    assert cli_main(["findings", "merge", str(a), "--into", str(a)]) == 2
    assert "is the destination (--into) itself" in capsys.readouterr().err
