"""Verdicts: every finding is UNEXPECTED (a variant marked correct), expected (a variant marked buggy) or a
known design finding (smmufuzz/known_findings.py), in replay, the reproducer header, the findings store,
the campaign's status, summary, summary.json and report, and the exit code."""

import io
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

import tests.broken_variants  # noqa: F401
from smmufuzz.fuzz.campaign import Campaign, Options
from smmufuzz.prog.codec import encode
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import Finding, run_program
from smmufuzz.fuzz.tolerated import Tally
from smmufuzz.exec.verdict import EXPECTED, KNOWN_DESIGN, UNEXPECTED, classify
from smmufuzz.variants import registry

ROOT = os.path.dirname(os.path.dirname(__file__))
ATS_RACE = os.path.join(ROOT, "corpus", "regressions", "invs", "ats_enable_races_inflight_unmap.txt")
MISSED = os.path.join(ROOT, "tests", "programs", "missed_invalidation.txt")


@pytest.fixture
def marked_correct(monkeypatch):
    """test-no-iotlb-sync's bug on a variant the registry marks correct."""
    monkeypatch.setitem(registry.VARIANTS, "test-marked-correct",
                        replace(registry.VARIANTS["test-no-iotlb-sync"], name="test-marked-correct", buggy=False))
    return "test-marked-correct"


def smmufuzz(*args):
    p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_a_finding_on_a_buggy_variant_is_expected_and_on_a_correct_one_unexpected(marked_correct):
    prog, _ = load_program(MISSED)
    (f,) = run_program(prog, ["test-no-iotlb-sync"]).findings
    assert classify(f, prog).cls == EXPECTED
    (g,) = run_program(prog, [marked_correct]).findings
    v = classify(g, prog)
    assert v.cls == UNEXPECTED and "marked correct" in v.why and v.label == "UNEXPECTED"


@pytest.mark.parametrize("target", ["invs:merged", "invs-nest", "invs"])
def test_the_ats_enable_race_is_a_known_design_finding_on_every_array_design(target):
    prog, _ = load_program(ATS_RACE)
    res = run_program(prog, registry.target(target))
    assert res.findings
    for f in res.findings:
        v = classify(f, prog)
        assert v.cls == KNOWN_DESIGN and "ats-enable-races-inflight-unmap" in v.why, f.text()


def test_the_known_design_finding_needs_its_race_and_its_family():
    prog, _ = load_program(ATS_RACE)
    (f,) = run_program(prog, ["invs:merged"]).findings
    sequential = replace(prog, ops=tuple(replace(op, ctx=0) for op in prog.ops), schedule=())
    assert classify(f, sequential).cls == UNEXPECTED           # no partner on another context: not the race
    no_ats = replace(prog, ops=tuple(op for op in prog.ops if op.kind != "ats"))
    assert classify(f, no_ats).cls == UNEXPECTED
    assert classify(replace(f, variant="smmuv3"), prog).cls == UNEXPECTED     # the classic path: another family
    assert classify(replace(f, message=f.message.replace("device ATC", "TLB")), prog).cls == UNEXPECTED
    assert classify(replace(f, kind="WRONG_PA"), prog).cls == UNEXPECTED


def test_a_divergence_is_expected_only_when_the_correct_variants_agree():
    def div(groups):
        names = [v for g in groups for v in g]
        return Finding("DIVERGENCE", "+".join(names), 1, "iommu_unmap(d0, iova=0x0, size=0x1000)",
                       "SMMU-visible translations differ after this op: " +
                       " vs ".join("{" + ", ".join(g) + "}" for g in groups))
    prog = parse("config(granule=4K)\n")
    buggy, ok1, ok2 = "gather:skip-empty:virtio", "gather:legacy:virtio", "gather:robin-v2:virtio"
    assert classify(div([[ok1, ok2], [buggy]]), prog).cls == EXPECTED
    v = classify(div([[ok1, buggy], [ok2]]), prog)
    assert v.cls == UNEXPECTED and ok1 in v.why and ok2 in v.why


def test_replay_labels_each_finding_and_prints_unexpected_ones_first(tmp_path):
    prog, _ = load_program(MISSED)
    for name, target in (("a_expected.txt", "test-no-iotlb-sync"), ("b_unexpected.txt", "test-marked-correct"),
                         ("c_design.txt", "invs:merged")):
        text = open(ATS_RACE).read() if name.startswith("c") else f"# target: {target}\n" + prog.text()
        (tmp_path / name).write_text(text)
    rc, out, err = smmufuzz("replay", str(tmp_path), "--load", "tests.mislabelled_variant")
    assert rc == 1, err
    assert "  expected (test-no-iotlb-sync is marked buggy):" in out
    assert "  UNEXPECTED (test-marked-correct is marked correct):" in out
    assert "  known design finding (ats-enable-races-inflight-unmap" in out
    recap = out[out.index("UNEXPECTED findings"):]
    assert "b_unexpected.txt: MISSED_INVALIDATION in variant test-marked-correct" in recap
    assert "a_expected" not in recap and "c_design" not in recap
    assert "3 program(s), 3 finding(s): 1 unexpected, 1 expected, 1 known design" in out
    # a target of two variants: the unexpected finding is printed before the expected one
    (tmp_path / "d.txt").write_text("# target: test-marked-correct+smmuv3\n" + prog.text())
    rc, out, _ = smmufuzz("replay", str(tmp_path / "d.txt"), "--load", "tests.mislabelled_variant",
                          "--variant", "test-no-iotlb-sync,test-marked-correct")
    assert rc == 1 and out.index("UNEXPECTED (") < out.index("expected (test-no-iotlb-sync")


def test_workers_never_tolerate_an_unexpected_finding(marked_correct):
    prog, _ = load_program(MISSED)
    (f,) = run_program(prog, [marked_correct]).findings
    tally = Tally(frozenset({f.signature()}), None)
    assert not tally.tolerate([f], prog)
    (g,) = run_program(prog, ["test-no-iotlb-sync"]).findings
    assert Tally(frozenset({g.signature()}), None).tolerate([g], prog)


def test_a_campaign_worker_saves_a_new_expected_finding_and_carries_on_but_stops_on_an_unexpected_one(
        tmp_path, marked_correct):
    """keep_going (a campaign's worker): a finding that is not UNEXPECTED is saved as libFuzzer saves a crash
    input (crash-<sha1 of the bytes>, the bytes themselves) and learnt, so the next hit is tallied, not saved
    again; an UNEXPECTED one still raises (the worker stops and it is triaged on its own)."""
    import hashlib

    from smmufuzz.fuzz.fuzz_target import FindingError, one_input
    prog, _ = load_program(MISSED)
    data = encode(prog)
    art = str(tmp_path / "crashes") + "/"
    os.makedirs(art)
    tally = Tally(frozenset(), None)
    run = one_input(["test-no-iotlb-sync"], "max-cache", art, None, tally, keep_going=True)
    assert run(data) is None
    assert os.listdir(art) == [f"crash-{hashlib.sha1(data).hexdigest()}"]
    assert (tmp_path / "crashes" / os.listdir(art)[0]).read_bytes() == data
    (f,) = run_program(prog, ["test-no-iotlb-sync"]).findings
    assert f.signature() in tally.known
    os.remove(art + os.listdir(art)[0])
    run(data)                                  # a hit of a known finding: tallied, nothing saved
    assert os.listdir(art) == [] and sum(tally.counts.values()) == 1
    wrong = one_input([marked_correct], "max-cache", art, None, Tally(frozenset(), None), keep_going=True)
    with pytest.raises(FindingError):
        wrong(data)
    stop = one_input(["test-no-iotlb-sync"], "max-cache", art, None, Tally(frozenset(), None))
    with pytest.raises(FindingError):          # outside a campaign (the bench, smmufuzz fuzz's libFuzzer runs)
        stop(data)


def _crash(corpus, target, prog, name="crash-0001"):
    d = os.path.join(corpus, "crashes", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(encode(prog))


@pytest.mark.parametrize("target, verdict, rc, strict_rc", [
    ("test-marked-correct", UNEXPECTED, 1, 1),
    ("test-no-iotlb-sync", EXPECTED, 0, 1),
])
def test_campaign_labels_findings_everywhere_and_exits_1_only_on_an_unexpected_one(tmp_path, target, verdict, rc,
                                                                                    strict_rc):
    prog, _ = load_program(MISSED)
    _crash(str(tmp_path), target, prog)
    args = ["--load", "tests.mislabelled_variant", "--time", "2", "--corpus", str(tmp_path), "--no-seeds"]
    got, out, err = smmufuzz("fuzz", target, *args)
    assert got == rc, err
    label = {UNEXPECTED: "UNEXPECTED", EXPECTED: "expected"}[verdict]
    assert f"NEW finding on {target}, {label} (" in out
    n = {UNEXPECTED: "1 unexpected, 0 expected", EXPECTED: "0 unexpected, 1 expected"}[verdict]
    assert f"findings: 1 distinct ({n}, 0 known design; 1 new)" in out
    assert f"  {label}: NEW MISSED_INVALIDATION on {target}" in out
    status = {UNEXPECTED: "findings 1: 1 UNEXPECTED, 0 expected", EXPECTED: "findings 1: 0 UNEXPECTED, 1 expected"}
    assert status[verdict] in err
    (camp,) = os.listdir(tmp_path / "campaigns")
    s = json.load(open(tmp_path / "campaigns" / camp / "summary.json"))
    assert s["verdicts"] == {UNEXPECTED: int(verdict == UNEXPECTED), KNOWN_DESIGN: 0,
                             EXPECTED: int(verdict == EXPECTED)}
    (rec,) = s["findings"]
    assert rec["verdict"] == verdict
    stored = json.load(open(tmp_path / "findings" / f"missed_invalidation-{rec['key']}.json"))
    assert stored["verdict"] == verdict
    _prog, header = load_program(rec["reproducer"])
    assert header["verdict"].startswith(label + " (")
    page = open(tmp_path / "campaigns" / camp / "report.html").read()
    assert f"<b>{label}</b>" in page
    # the same corpus again: the finding is known now, still labelled; --strict exits 1 on any finding
    _crash(str(tmp_path), target, replace(prog, ops=prog.ops + prog.ops[-1:]), "crash-0002")
    got, out, err = smmufuzz("fuzz", target, *args, "--strict")
    assert got == strict_rc, err
    assert f"  {label}: MISSED_INVALIDATION on {target}" in out


def test_race_labels_the_first_schedule_of_each_finding():
    rc, out, err = smmufuzz("race", ATS_RACE, "--variant", "invs:merged", "--preemptions", "1")
    assert rc == 1, err
    assert "first MISSED_INVALIDATION, known design finding (ats-enable-races-inflight-unmap" in out


def test_list_names_the_known_design_findings():
    rc, out, _ = smmufuzz("list")
    assert rc == 0 and "known design findings" in out
    assert "ats-enable-races-inflight-unmap" in out and "ats_enable_races_inflight_unmap.txt" in out


_ATS = "config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)\n"


@pytest.mark.parametrize("text", [
    _ATS + "pci_ats(sid=1, on=1)\niommu_attach_device(d0, sid=0)\n"                  # through a caller's gather
    "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
    "iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)\niommu_iotlb_sync(d0, gather=g0)\n"
    "cpu1: iommu_attach_device(d0, sid=1)\n",
    _ATS + "iommu_attach_device(d0, sid=0)\niommu_attach_device(d0, sid=1)\n"            # ATS turned on, no attach
    "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
    "iommu_unmap(d0, iova=0x200000, size=0x1000)\ncpu1: pci_ats(sid=1, on=1)\n",
    _ATS + "pci_ats(sid=1, on=1)\niommu_attach_device(d0, sid=0)\n"                  # with noise around it
    "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n"
    "iommu_map(d1, iova=0x400000, paddr=0x90000000, size=0x2000, prot=R)\ndev_dma(sid=0, iova=0x200000, write=0)\n"
    "iommu_unmap(d0, iova=0x200000, size=0x1000)\ncpu1: iommu_attach_device(d0, sid=1)\nhw_evict(walk, n=0)\n",
])
def test_the_ats_enable_race_is_recognised_in_the_shapes_a_campaign_finds_it_in(text):
    """The fuzzer finds the race under its own schedule search and minimises it into different op
    sequences; each is the known design finding, not UNEXPECTED."""
    from smmufuzz.fuzz.triage import search_schedules, triage
    found = search_schedules(parse(text), ["invs:merged"])
    assert found is not None
    tri = triage(found, ["invs:merged"])
    assert tri.verdict.cls == KNOWN_DESIGN, tri.program.text()
