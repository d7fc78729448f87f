"""`smmufuzz corpus merge`: two small corpus roots merged into one through libFuzzer's -merge=1 and our fuzz
wrapper: only inputs that add coverage are kept, an input that gives a finding is left out (kept for triage),
merging again adds nothing, and bad sources are one-line errors."""

import hashlib
import os

from smmufuzz.cli import main
from smmufuzz.prog.codec import encode
from smmufuzz.fuzz.corpus_lock import CorpusLock
from smmufuzz.prog.program import parse

CFG = "config(granule=4K, ias=32, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\niommu_attach_device(d0, sid=0)\n"
MAP = "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)\n"
P1 = CFG + MAP + "iommu_unmap(d0, iova=0x200000, size=0x2000)\n"
P2 = CFG + MAP + "dev_dma(sid=0, iova=0x201000, write=1)\niommu_unmap(d0, iova=0x200000, size=0x2000)\n"
P3 = CFG + MAP + "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\niommu_iotlb_sync(d0, gather=g0)\n"
P4 = CFG + MAP + "hw_fill(sid=0, iova=0x200000)\niommu_flush_iotlb_all(d0)\n"
MAP_SG = CFG + "iommu_map_sg(d0, iova=0x400000, sg=[0x80000000+0x1000, 0x80004000+0x2000], prot=R)\n" \
    "iommu_unmap(d0, iova=0x400000, size=0x3000)\n"
# the empty-gather regression: a finding on gather:skip-empty:virtio
BUG = CFG + "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n" \
    "dev_dma(sid=0, iova=0x200000, write=0)\niommu_unmap(d0, iova=0x200000, size=0x1000)\n"
BUGGY = "gather:skip-empty:virtio"
CLEAN = CFG + MAP + "dev_dma(sid=0, iova=0x200000, write=0)\n"        # no unmap: clean on BUGGY too


def _root(path, target, programs: dict[str, str]):
    d = path / "fuzz" / target
    d.mkdir(parents=True, exist_ok=True)
    for name, text in programs.items():
        (d / name).write_bytes(encode(parse(text)))
    return str(path)


def _contents(d) -> set[bytes]:
    return {open(os.path.join(d, n), "rb").read() for n in os.listdir(d)} if os.path.isdir(d) else set()


def test_two_corpora_merge_into_one_keeping_only_inputs_that_add_coverage(tmp_path, capsys):
    a = _root(tmp_path / "a", "smmuv3", {"p1": P1, "p2": P2, "p3": P3})
    b = _root(tmp_path / "b", "smmuv3", {"p3-again": P3, "p4": P4, "p1-again": P1})     # two byte-for-byte repeats
    _root(tmp_path / "b", BUGGY, {"clean": CLEAN, "bug": BUG})
    into = tmp_path / "into"
    assert main(["corpus", "merge", a, b, "--into", str(into)]) == 0
    out = capsys.readouterr().out
    dest = into / "fuzz" / "smmuv3"
    got = _contents(dest)
    offered = _contents(tmp_path / "a" / "fuzz" / "smmuv3") | _contents(tmp_path / "b" / "fuzz" / "smmuv3")
    assert len(offered) == 4 and got <= offered and 1 <= len(got) <= 4           # nothing made up, no repeat
    assert sorted(os.listdir(dest)) == sorted(hashlib.sha1(x).hexdigest() for x in got)   # libFuzzer's names
    assert f"smmuv3: 0 + {len(got)} of 6 input(s) from 2 source(s) = {len(got)} (" in out
    # the input that gives a finding is left out of the corpus, and kept where the next campaign triages it
    buggy = into / "fuzz" / BUGGY
    assert _contents(buggy) == {encode(parse(CLEAN))}
    assert encode(parse(BUG)) in _contents(into / "crashes" / BUGGY)
    assert f"{BUGGY}: 0 + 1 of 2 input(s) from 1 source(s) = 1 (" in out and "1 gave a finding not yet stored" in out
    assert f"merged 2 corpus root(s) into {into / 'fuzz'}: {len(got) + 1} input(s) added" in out

    # the same sources again: nothing adds coverage any more
    assert main(["corpus", "merge", a, b, "--into", str(into), "--target", "smmuv3"]) == 0
    out = capsys.readouterr().out
    assert f"smmuv3: {len(got)} + 0 of 6 input(s)" in out and "0 new edges" in out and _contents(dest) == got
    # a corpus reaching code none of them runs (iommu_map_sg): its input is added
    c = _root(tmp_path / "c", "smmuv3", {"sg": MAP_SG, "p2": P2})
    assert main(["corpus", "merge", c, "--into", str(into)]) == 0
    out = capsys.readouterr().out
    assert _contents(dest) == got | {encode(parse(MAP_SG))}
    assert f"smmuv3: {len(got)} + 1 of 2 input(s) from 1 source(s) = {len(got) + 1} (" in out


def test_bad_sources_are_one_line_errors_and_nothing_is_written(tmp_path, capsys):
    a = _root(tmp_path / "a", "smmuv3", {"p1": P1})
    (tmp_path / "plain").mkdir()
    into = tmp_path / "into"
    cases = [
        ([str(tmp_path / "nope")], "nope: no such directory"),
        ([str(tmp_path / "plain")], "plain: not a corpus root (no fuzz/ directory"),
        ([a, "--target", "no-such-target"], "unknown target 'no-such-target'"),
        ([a, "--target", "pte-sync"], "no source has a corpus for pte-sync (fuzz/pte-sync/)"),
    ]
    for args, msg in cases:
        assert main(["corpus", "merge", *args, "--into", str(into)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("smmufuzz: error: ") and msg in err, err
        assert not into.exists()
    assert main(["corpus", "merge", a, "--into", a]) == 2
    assert "is the destination (--into) itself" in capsys.readouterr().err
    into.mkdir()
    with CorpusLock(str(into)):                  # a campaign is running on the destination
        assert main(["corpus", "merge", a, "--into", str(into)]) == 2
    err = capsys.readouterr().err
    assert "another campaign is running on this corpus" in err and len(err.strip().splitlines()) == 1
    assert not (into / "fuzz").exists()


def test_an_input_giving_only_a_known_finding_is_judged_by_its_coverage_as_while_fuzzing(tmp_path, capsys):
    """The source's findings store has the bug: its input is tolerated like a campaign worker tolerates it, and
    kept because it adds coverage (the unmap of a mapped page on an empty-gather variant)."""
    from smmufuzz.fuzz.findings_store import FindingsStore
    from tests.test_sarif import record
    a = _root(tmp_path / "a", BUGGY, {"clean": CLEAN, "bug": BUG})
    (tmp_path / "bug.txt").write_text(BUG)
    record(FindingsStore(str(tmp_path / "a" / "findings")), str(tmp_path / "bug.txt"), BUGGY)
    into = tmp_path / "into"
    assert main(["corpus", "merge", a, "--into", str(into)]) == 0
    out = capsys.readouterr().out
    assert _contents(into / "fuzz" / BUGGY) == {encode(parse(CLEAN)), encode(parse(BUG))}
    assert "gave a finding" not in out and not os.listdir(into / "crashes" / BUGGY)
    assert not (into / "findings").exists()              # the merge reads findings stores, writes none
