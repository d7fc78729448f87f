"""Campaigns: deduplicated findings store that resumes, corpus lock, bad corpus files, worker deaths,
Ctrl-C/SIGTERM consistency, disk full, and the HTML report."""

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from smmufuzz.fuzz import findings_store
from smmufuzz.fuzz.campaign import Campaign, Options, slice_seconds, target_dirname
from smmufuzz.cli import main as cli_main
from smmufuzz.prog.codec import encode
from smmufuzz.fuzz.corpus_lock import CorpusLock
from smmufuzz.prog.load import load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program

ROOT = os.path.dirname(os.path.dirname(__file__))
TARGET = "gather:skip-empty:virtio"          # finds the empty-gather regression within seconds
SKIP_EMPTY = """config(granule=4K, ias=32, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_unmap(d0, iova=0x200000, size=0x1000)
"""
# the same bug with noise around it: minimises to the same program
SKIP_EMPTY_NOISY = SKIP_EMPTY.replace("iommu_attach_device(d0, sid=0)\n",
                                      "iommu_attach_device(d1, sid=3)\niommu_attach_device(d0, sid=0)\n") + \
    "hw_evict(tlb, n=0)\n"


def crash_input(corpus, name, text, target=TARGET):
    d = os.path.join(corpus, "crashes", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(encode(parse(text)))


def campaign(corpus, seconds=1, target=TARGET, workers=1, extra=()):
    out, err = io.StringIO(), io.StringIO()
    c = Campaign(Options([(target, [target])], seconds, workers, 7, str(corpus), extra=list(extra)), out, err)
    return c, c.run(), out.getvalue(), err.getvalue()


def test_a_finding_is_reported_with_its_targets_executions_by_then(tmp_path):
    """A crash input a worker of this campaign wrote: the NEW line, the record and the summary give the
    seconds and the target's executions up to it; an earlier campaign's input gets no execution count."""
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)
    def triaged(root, name, seed, execs, out):
        c = Campaign(Options([(TARGET, [TARGET])], 1, 1, 7, str(root)), out, io.StringIO())
        c.store, c.known_path = findings_store.FindingsStore(str(root / "findings")), str(root / "known.json")
        c._triage(c.targets[0], str(tmp_path / "crashes" / TARGET / name), seed, 12.0, execs)
        (rec,) = c.store.records.values()
        return rec

    out = io.StringIO()
    rec = triaged(tmp_path, "crash-aaa", 3, 4321, out)
    assert rec["first_seen"]["execs"] == 4321 and rec["first_seen"]["seconds"] == 12.0
    assert f"12s, 4,321 execs of {TARGET}] NEW finding" in out.getvalue()
    assert "execs" not in triaged(tmp_path / "other", "crash-aaa", 0, None, io.StringIO())["first_seen"]


def test_two_crash_inputs_with_one_signature_are_one_finding_and_hits_add_up_on_resume(tmp_path):
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)
    crash_input(tmp_path, "crash-bbb", SKIP_EMPTY_NOISY)
    _c, s, out, _err = campaign(tmp_path)
    assert s["distinct_findings"] == 1 and s["hits"] == 2 and s["new_findings"] == 1
    (rec,) = s["findings"]
    assert rec["kind"] == "MISSED_INVALIDATION" and rec["variants"] == [TARGET]
    assert rec["shape"] == ["attach", "map", "unmap"] and rec["hits"] == 2
    assert rec["replay"] == f"smmufuzz replay {rec['reproducer']} --target {TARGET}"
    assert os.path.dirname(rec["reproducer"]) == str(tmp_path / "regressions" / target_dirname(TARGET))
    prog, header = load_program(rec["reproducer"])           # the reproducer replays, header as minimize writes
    assert header["target"] == TARGET and header["expect"] == "MISSED_INVALIDATION"
    assert [f.kind for f in run_program(prog, [TARGET]).findings] == ["MISSED_INVALIDATION"]
    assert "NEW finding" in out and rec["replay"] in out
    first = rec["first_seen"]
    stored = sorted(os.listdir(tmp_path / "findings"))
    assert stored == sorted([f"missed_invalidation-{rec['key']}.json", f"missed_invalidation-{rec['key']}.txt",
                             "processed.json"])

    # a second campaign: the processed inputs are not counted again; a new input of the same bug adds a hit
    crash_input(tmp_path, "crash-ccc", SKIP_EMPTY)
    _c, s2, _out, _err = campaign(tmp_path)
    (rec2,) = s2["findings"]
    assert rec2["key"] == rec["key"] and rec2["hits"] == 3 and rec2["hits_this_campaign"] == 1
    assert rec2["first_seen"] == first and not rec2["new"] and s2["new_findings"] == 0
    assert s2["campaign"] != s["campaign"]


def _svgs(page: str) -> dict[str, ET.Element]:
    """The report's <svg> elements by their aria-label (the page is well-formed XML)."""
    root = ET.fromstring(page)
    return {el.get("aria-label"): el for el in root.iter("{http://www.w3.org/2000/svg}svg")}


def test_report_has_the_plots_and_the_findings_table(tmp_path):
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)
    _c, s, _out, _err = campaign(tmp_path)
    page = open(s["report"]).read()
    svgs = _svgs(page)
    for title in ("exec/s (all workers)", "corpus size (inputs, all targets)",
                  "libFuzzer cov: summed over the targets", "distinct findings, by verdict",
                  "which target ran when"):
        assert title in svgs, sorted(svgs)
    assert any(k.startswith(TARGET + ": cov ") for k in svgs)          # the target's own coverage plot
    assert s["findings"][0]["replay"] in page and "MISSED_INVALIDATION" in page
    assert s["state"] == "finished" and "Finished; final report" in page and 'http-equiv="refresh"' not in page
    # findings by verdict class: the triaged finding is under "expected", no section for the other classes
    assert "expected (1)</h3>" in page and "UNEXPECTED (" not in page and "known design finding (" not in page
    os.unlink(s["report"])
    rc = cli_main(["report", s["directory"]])                  # re-render from summary.json + timeseries.json
    assert rc == 0 and open(s["report"]).read() == page


def test_second_campaign_on_the_same_corpus_is_refused_with_the_holders_pid(tmp_path):
    with CorpusLock(str(tmp_path)):
        p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "fuzz", TARGET, "--time", "5",
                            "--corpus", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert f"another campaign is running on this corpus (pid {os.getpid()}" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "campaigns")


def test_unreadable_corpus_file_and_bad_seed_are_reported_and_kept(tmp_path):
    corpus = tmp_path / "fuzz" / TARGET
    corpus.mkdir(parents=True)
    (corpus / "dangling").symlink_to(tmp_path / "nowhere")      # unreadable even for root
    (corpus / "good").write_bytes(b"\x01\x02\x03")
    regs = tmp_path / "regressions" / target_dirname(TARGET)
    regs.mkdir(parents=True)
    (regs / "broken.txt").write_text("config(granule=4K)\niommu_map(d0, iova=zz)\n")
    c = Campaign(Options([(TARGET, [TARGET])], 1, 1, 7, str(tmp_path)), io.StringIO(), io.StringIO())
    c._prepare(c.targets[0])
    problems = "\n".join(c.problems)
    assert "dangling cannot be read" in problems and "skipped, kept" in problems
    assert "broken.txt: line 2" in problems
    assert os.path.islink(corpus / "dangling") and (corpus / "good").exists() and (regs / "broken.txt").exists()


def test_a_worker_that_dies_is_restarted_counted_and_finally_dropped(tmp_path):
    # libFuzzer's RSS limit of 1 MB: every launch dies of "out-of-memory" about a second in
    # (the campaign ends when its only target is dropped, long before --time: 60 s, loaded machines took 25)
    _c, s, _out, err = campaign(tmp_path, seconds=60, target="smmuv3", extra=["-rss_limit_mb=1"])
    assert s["restarts_after_death"] == 3 and len(s["worker_deaths"]) == 3
    assert all(d["exit"] == "out of memory" for d in s["worker_deaths"])
    assert "3 launches in a row" in s["per_target"][0]["blocked"] and s["elapsed"] < 45
    assert s["distinct_findings"] == 0 and s["unreproduced_artifacts"]        # oom inputs: no finding on replay
    assert "died (out of memory" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_workers_prints_the_summary_and_leaves_a_consistent_store(tmp_path, sig):
    p = subprocess.Popen([sys.executable, "-m", "smmufuzz.cli", "fuzz", TARGET, "--time", "120",
                          "--seed", "3", "--corpus", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    findings = tmp_path / "findings"
    deadline = time.time() + 40
    while time.time() < deadline and not any(n.endswith(".json") and n != "processed.json"
                                             for n in (os.listdir(findings) if findings.exists() else [])):
        time.sleep(0.3)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert f"(interrupted: {sig.name} at " in out and "interrupted: corpus and findings kept" in out
    (cdir,) = os.listdir(tmp_path / "campaigns")
    summary = json.load(open(tmp_path / "campaigns" / cdir / "summary.json"))
    assert summary["interrupted"] and summary["distinct_findings"] >= 1
    assert os.path.exists(tmp_path / "campaigns" / cdir / "report.html")
    for name in os.listdir(findings):                           # every record whole, every reproducer replays
        assert ".tmp" not in name
        if name.endswith(".json") and name != "processed.json":
            rec = json.load(open(findings / name))
            prog, _ = load_program(rec["reproducer"])
            assert any(f.kind == rec["kind"] for f in run_program(prog, [TARGET]).findings)
    json.load(open(findings / "processed.json"))
    assert os.listdir(tmp_path / "fuzz" / TARGET)                # corpus kept
    lock = open(tmp_path / ".campaign.lock").read()
    assert lock == ""                                           # released
    assert not [ln for ln in out.splitlines() if ln.startswith("Traceback")]


def test_disk_full_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(findings_store.os, "replace", full)
    rc = cli_main(["fuzz", TARGET, "--time", "1", "--corpus", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = [ln for ln in err.splitlines() if ln.startswith("smmufuzz: error")]
    assert "disk full writing" in line and "No space left on device" in line and "kept" in line
    assert not [n for n in os.listdir(tmp_path / "findings") if ".tmp" in n]   # no temp files left behind


def test_slice_policy():
    assert slice_seconds(1800, 2, 23) == 156           # 30 min, 2 workers, all targets: one slice each
    assert slice_seconds(60, 1, 4) == 15               # the README run: 15 s per default target
    assert slice_seconds(8 * 3600, 2, 23) == 300       # overnight: 300 s slices, rotating
    assert slice_seconds(60, 1, 23) == 10              # short runs: least-served targets first


@pytest.mark.parametrize("budget, overhead", [(360, 3.0), (1800, 3.0), (1800, 0.0)])
def test_every_target_gets_a_slice_even_when_launches_overrun(tmp_path, budget, overhead):
    """Scheduling only (no processes): 2 workers, all 23 targets, each launch taking `overhead` seconds
    more than its slice (interpreter start-up, a slow last input)."""
    from smmufuzz.fuzz.campaign import Slot
    from smmufuzz.variants.registry import TARGETS
    c = Campaign(Options(list(TARGETS.items()), budget, 2, 1, str(tmp_path)), io.StringIO(), io.StringIO())
    c.slots, c.deadline = [Slot(0), Slot(1)], float(budget)
    ends, now, first = [0.0, 0.0], 0.0, []
    while now < budget - 3:
        i = ends.index(min(ends))
        now = ends[i]
        slot = c.slots[i]
        if slot.target is not None:
            slot.target.seconds += now - slot.started
            slot.launch = slot.target = None
        if now >= budget - 3:
            break
        slot.target = c._next_target()
        length = c._slice_for(now)
        first.append(length)
        slot.slice_end, slot.started, slot.launch = now + length, now, object()
        slot.target.slices += 1
        ends[i] = now + min(length, budget - now) + overhead
    for slot, end in zip(c.slots, ends):
        if slot.target is not None:
            slot.target.seconds += end - slot.started
    assert all(t.slices >= 1 for t in c.targets), [(t.name, t.slices) for t in c.targets]
    n = len(TARGETS)
    assert abs(first[0] - budget * 2 / n) < 1
    if budget == 1800:
        # 1800 * 2 / n s each, except that an odd number of slices on 2 workers leaves the last one half a
        # slice (the other worker spends that time on short second-round slices)
        each = budget * 2 / n
        assert sorted(t.seconds for t in c.targets)[1] > 0.9 * each and min(t.seconds for t in c.targets) > each / 3


def test_workers_tolerate_known_findings_and_their_tally_goes_to_the_earliest_record(tmp_path):
    from smmufuzz.fuzz import tolerated
    crash_input(tmp_path, "crash-aaa", SKIP_EMPTY)
    _c, s, _out, _err = campaign(tmp_path)
    known = tolerated.read_known(str(tmp_path / ".run" / "known.json"))
    coarse = ("MISSED_INVALIDATION", TARGET, "iommu_unmap")
    assert known == {coarse}
    tally = tolerated.Tally(known, str(tmp_path / "tally.json"))
    same_bug = run_program(parse(SKIP_EMPTY_NOISY), [TARGET]).findings
    assert tally.tolerate(same_bug) and tally.tolerate(same_bug)
    other = run_program(parse(SKIP_EMPTY.replace("iommu_unmap(d0, iova=0x200000, size=0x1000)",
                                                 "dma_map(d0, paddr=0x0, size=0x1000, prot=RW)\ndma_unmap(handle=0)")),
                        [TARGET]).findings
    assert other and not tally.tolerate(other)          # another kernel call: not known, the worker stops
    tally.last -= tolerated.FLUSH_EVERY
    tally.maybe_flush()
    assert tolerated.read_tally(str(tmp_path / "tally.json")) == {coarse: 2}
    from smmufuzz.fuzz.findings_store import FindingsStore
    store = FindingsStore(str(tmp_path / "findings"))
    assert store.add_tolerated(coarse, 2) == s["findings"][0]["key"]
    assert FindingsStore(str(tmp_path / "findings")).records[s["findings"][0]["key"]]["tolerated_hits"] == 2


def test_an_unreadable_finding_record_is_reported_and_kept(tmp_path):
    from smmufuzz.fuzz.findings_store import FindingsStore
    (tmp_path / "findings").mkdir()
    (tmp_path / "findings" / "crash-0123456789ab.json").write_text('{"key": "0123456789ab", "kind": ')
    (tmp_path / "findings" / "processed.json").write_text("[1, 2")
    store = FindingsStore(str(tmp_path / "findings"))
    assert store.records == {} and len(store.problems) == 2
    assert "crash-0123456789ab.json: unreadable finding record, skipped" in store.problems[0]
    assert (tmp_path / "findings" / "crash-0123456789ab.json").read_text().endswith('"kind": ')


@pytest.mark.parametrize("lines, execs, cov", [
    ("#2\tINITED cov: 10 ft: 20 corp: 2/40b exec/s: 0 rss: 44Mb\n"
     "#512\tNEW    cov: 57 ft: 90 corp: 9/300b lim: 20 exec/s: 256 rss: 45Mb L: 20/20 MS: 1 ChangeBit-\n"
     "stat::number_of_executed_units: 700\n", 700, 57),
    ("#18301: cov: 674 ft: 2270 corp: 237 exec/s 463 oom/timeout/crash: 0/0/8 time: 60s job: 13 dft_time: 0\n",
     18301, 674),                                                                     # -fork=1
])
def test_worker_log_figures(tmp_path, lines, execs, cov):
    from smmufuzz.fuzz.worker import Launch
    la = Launch(0, 1, "t", 1, ["printf", lines.replace("%", "%%")], str(tmp_path / "w.log"), 5)
    la.proc.wait()
    assert la.poll() == 0 and la.inited_at is not None
    assert (la.execs, la.cov) == (execs, cov) and la.describe_exit() == "time slice done"


def test_a_fresh_corpus_directory_still_starts_from_the_shipped_seeds(tmp_path):
    from smmufuzz.variants.registry import target as resolve
    shipped = os.path.join(ROOT, "corpus")
    c = Campaign(Options([("smmuv3", resolve("smmuv3"))], 1, 1, 7, str(tmp_path)), io.StringIO(), io.StringIO())
    t = c.targets[0]
    c._prepare(t)
    names = sorted(os.listdir(t.seed_dir))
    seeds = sorted(n[:-4] + ".bin" for n in os.listdir(os.path.join(shipped, "seeds")))
    assert t.seeds == len(names) and set(seeds) <= set(names)        # every shipped seed is clean on mainline
    assert "map_sg_beyond_ias_overflows_pgd.bin" in names              # a regression of its family (spine)
    assert "b1_skip_empty_virtio.bin" not in names                      # another family's regression
    c = Campaign(Options([("smmuv3", resolve("smmuv3"))], 1, 1, 7, str(tmp_path), use_seeds=False),
                 io.StringIO(), io.StringIO())
    c._prepare(c.targets[0])
    assert c.targets[0].seeds == 0


def test_the_campaign_says_how_many_seed_inputs(tmp_path, monkeypatch):
    from smmufuzz.fuzz import campaign as campaign_mod
    monkeypatch.setattr(campaign_mod, "libfuzzer_args", lambda *a, **k: ["true"])     # a worker that ends at once
    out, err = io.StringIO(), io.StringIO()
    c = Campaign(Options([("smmuv3", ["smmuv3"])], 4, 1, 7, str(tmp_path)), out, err)
    c.uncounted = 0.0
    s = c.run()
    out, err = out.getvalue(), err.getvalue()
    assert s["seed_inputs"] == s["per_target"][0]["seed_inputs"] >= 20
    assert "seeds: " in out and f"+ seeds {s['seed_inputs']} |" in err


def _processes_mentioning(needle: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z" and int(pid) != os.getpid():
            out.append(int(pid))
    return out


def test_kill_9_of_a_campaign_kills_its_workers_and_their_fork_jobs(tmp_path):
    from smmufuzz.fuzz.corpus_lock import CorpusBusy
    p = subprocess.Popen([sys.executable, "-m", "smmufuzz.cli", "fuzz", "smmuv3", "--time", "120",
                          "--seed", "3", "--corpus", str(tmp_path), "--", "-fork=1", "-ignore_crashes=1"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(_processes_mentioning(str(tmp_path))) < 4:
        time.sleep(0.3)          # campaign, worker (libFuzzer -fork parent), sh, the fork job
    workers = [q for q in _processes_mentioning(str(tmp_path)) if q != p.pid]
    assert len(workers) >= 3, workers
    with pytest.raises(CorpusBusy):
        CorpusLock(str(tmp_path)).__enter__()
    p.kill()
    p.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _processes_mentioning(str(tmp_path)):
        time.sleep(0.2)
    left = _processes_mentioning(str(tmp_path))
    for q in left:                                           # (what this test started, should it fail)
        os.kill(q, signal.SIGKILL)
    assert not left
    with CorpusLock(str(tmp_path)):                          # free once the last of them is gone
        pass


def test_the_corpus_lock_is_held_until_the_last_process_of_a_worker_is_gone(tmp_path):
    # a campaign that starts a worker (through Launch), which starts a job of its own that no death signal
    # reaches, then dies without cleaning up: the job still holds the lock
    script = f"""
import os, sys
sys.path.insert(0, {ROOT!r})
from smmufuzz.fuzz.corpus_lock import CorpusLock
from smmufuzz.fuzz.worker import Launch
lock = CorpusLock({str(tmp_path)!r}).__enter__()
la = Launch(0, 1, "t", 1, ["sh", "-c", "sleep 37.25 & wait"], {str(tmp_path / 'w.log')!r}, 30, keep_fds=(lock.fd,))
lock.set_workers([la.proc.pid])
import time; time.sleep(1.0)
os._exit(9)
"""
    from smmufuzz.fuzz.corpus_lock import CorpusBusy
    p = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert p.returncode == 9
    deadline = time.time() + 5
    while time.time() < deadline and len(_processes_mentioning("sleep 37.25")) > 1:
        time.sleep(0.1)          # the worker (sh) dies with its campaign; its job (sleep) does not
    (job,) = _processes_mentioning("sleep 37.25")
    try:
        with pytest.raises(CorpusBusy, match="exited: its workers still run; workers "):
            CorpusLock(str(tmp_path)).__enter__()
    finally:
        os.kill(job, signal.SIGKILL)
    # the lock is free once the job's files are closed: do_exit() releases its memory (an empty cmdline, so it
    # no longer shows above) before its files, so under load the lock may still be held for a moment
    deadline = time.time() + 20
    while True:
        try:
            with CorpusLock(str(tmp_path)):
                break
        except CorpusBusy:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_a_race_only_crash_is_triaged_under_the_schedule_search_that_found_it_not_called_flaky(tmp_path):
    from dataclasses import replace as _replace
    from smmufuzz.fuzz.fuzz_target import input_name
    from smmufuzz.fuzz.triage import search_schedules
    target = "invs:merged"
    prog, _ = load_program(os.path.join(ROOT, "corpus", "regressions", "invs", "ats_enable_races_inflight_unmap.txt"))
    late = _replace(prog, schedule=((3, 20, 1),))            # a switch past the window: clean as it stands
    bare = _replace(prog, schedule=())                         # no switch at all: clean as it stands
    assert not run_program(late, [target]).findings and not run_program(bare, [target]).findings
    d = tmp_path / "crashes" / target
    d.mkdir(parents=True)
    (d / "crash-aaa").write_bytes(encode(late))
    (d / "crash-bbb").write_bytes(encode(bare))
    # the worker that found crash-bbb's race saved the program its search found beside it (fuzz_target._race;
    # the search is deterministic, so triage's own search finds the same program and its twin)
    found = search_schedules(bare, [target])
    assert found is not None and run_program(found, [target]).findings
    twin = input_name(str(d / "crash-race-"), found)
    open(twin, "wb").write(encode(found))
    _c, s, out, _err = campaign(tmp_path, target=target)
    assert s["unreproduced_artifacts"] == [] and "flaky" not in out
    assert s["race_only_artifacts"] == [str(d / "crash-bbb")]   # its twin carries the hit
    (rec,) = s["findings"]
    assert rec["kind"] == "MISSED_INVALIDATION" and rec["hits_this_campaign"] == 2   # crash-aaa's search, the twin


def test_only_a_real_overrun_is_reported_not_a_slow_start_up(tmp_path, monkeypatch):
    """Two fake workers: one spends 4 s starting up before libFuzzer's clock runs, then fuzzes for its
    -max_total_time (not an overrun); one starts at once and never stops (an overrun)."""
    from smmufuzz.fuzz import campaign as campaign_mod
    inited = "#2\tINITED cov: 1 ft: 1 corp: 1/1b exec/s: 0 rss: 1Mb"

    def fake_args(wrapper, dirs, seconds, seed, crash_dir, dict_path, extra, variants=()):
        if "smmuv3" in wrapper:
            return ["sh", "-c", f"sleep 4; echo 'INFO: Seed: 1'; echo '{inited}'; sleep {seconds}; "
                                f"echo 'Done 9 runs in {seconds} second(s)'"]
        return ["sh", "-c", f"echo 'INFO: Seed: 1'; echo '{inited}'; exec sleep 60"]
    monkeypatch.setattr(campaign_mod, "libfuzzer_args", fake_args)
    monkeypatch.setattr(campaign_mod, "OVERRUN_GRACE", 2.0)
    out, err = io.StringIO(), io.StringIO()
    c = Campaign(Options([("smmuv3", ["smmuv3"]), ("pte-sync", ["pte-sync:eager"])], 6, 2, 7, str(tmp_path),
                         use_seeds=False), out, err)
    s = c.run()
    overruns = [p for p in s["problems"] if "overran" in p]
    assert len(overruns) == 1 and "on pte-sync" in overruns[0], s["problems"]


def test_the_exec_counter_never_goes_down_in_the_status_and_stays_below_libfuzzers_next_pulse(tmp_path):
    """A launch logs 1024 inputs at 2000/s, then nothing for 2.5 s, then a final count of 1100: the running
    estimate must not pass 2047 (libFuzzer logs a pulse line at every power of two) nor the total drop."""
    from smmufuzz.fuzz.campaign import Slot
    from smmufuzz.fuzz.worker import Launch
    c = Campaign(Options([("smmuv3", ["smmuv3"])], 10, 1, 7, str(tmp_path)), io.StringIO(), io.StringIO())
    c.t0 = time.time()
    c.finished_execs = 500                                     # an earlier launch's final count
    lines = ("#1024\tpulse  cov: 5 ft: 5 corp: 1/1b lim: 4 exec/s: 2000 rss: 1Mb\n", "sleep 2.5",
             "stat::number_of_executed_units: 1100\n")
    script = f"printf '{lines[0]}'; {lines[1]}; printf '{lines[2]}'"
    la = Launch(0, 1, "smmuv3", 1, ["sh", "-c", script], str(tmp_path / "w.log"), 5)
    c.slots = [Slot(0, c.targets[0], 0.0, la)]
    seen = []
    while la.poll() is None:
        seen.append(c.figures()["execs"])
        time.sleep(0.1)
    c.finished_execs += la.execs                              # what _ended adds
    c.slots[0].launch = None
    seen.append(c.figures()["execs"])
    assert seen == sorted(seen), seen
    assert max(seen) <= 500 + 2047 and seen[-1] >= 500 + 1100


def test_a_seed_too_slow_on_its_target_is_left_out_and_reported(tmp_path, monkeypatch):
    """4096 pages mapped and 40 full flushes on six variants: such a seed would stall every launch. It took about
    10 s before the incremental oracle (issue 16) and well under a second since, so the limit is lowered here to
    a tenth of what the seed takes, measured first. (The first slow seed, a 1 TiB unmap over a hole, is now
    outside the caller contract and not issued.)"""
    from smmufuzz.fuzz import campaign
    from smmufuzz.prog.program import parse
    from smmufuzz.exec.runner import run_program
    regs = tmp_path / "regressions" / target_dirname("gather:arm-smmu")
    regs.mkdir(parents=True)
    maps = "".join(f"iommu_map(d0, iova={0x40000000 + k * 0x400000:#x}, paddr={0x80001000 + k * 0x400000:#x}, "
                   f"size=0x400000, prot=RW)\n" for k in range(4))
    (regs / "slow.txt").write_text("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
                                   "iommu_attach_device(d0, sid=0)\n" + maps + "iommu_flush_iotlb_all(d0)\n" * 40)
    from smmufuzz.variants.registry import target as resolve
    t0 = time.time()
    run_program(parse((regs / "slow.txt").read_text()), resolve("gather:arm-smmu"))
    monkeypatch.setattr(campaign, "SEED_SECONDS", (time.time() - t0) / 10)
    c = Campaign(Options([("gather:arm-smmu", resolve("gather:arm-smmu"))], 1, 1, 7, str(tmp_path)),
                 io.StringIO(), io.StringIO())
    t0 = time.time()
    c._prepare(c.targets[0])
    assert time.time() - t0 < campaign.SEED_SECONDS + 10
    assert [p for p in c.problems if "slow.txt takes over" in p and "left out" in p]
    assert "slow.bin" not in os.listdir(c.targets[0].seed_dir)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_slow_seed_whose_alarm_lands_in_a_callback_is_still_left_out(tmp_path, monkeypatch):
    """The seed timer's exception is swallowed when the alarm lands in a gc or __del__ callback (a CI run saw
    it in hypothesis' gc callback); the seed is still reported and left out."""
    from types import SimpleNamespace

    from smmufuzz.fuzz import campaign
    from smmufuzz.prog.program import parse
    from smmufuzz.variants.registry import target as resolve

    class Swallows:
        def __del__(self):
            signal.raise_signal(signal.SIGALRM)      # the handler raises inside __del__: "Exception ignored"

    def run(prog, variants, policy):
        Swallows()
        return SimpleNamespace(findings=[])
    monkeypatch.setattr(campaign, "run_program", run)
    c = Campaign(Options([("gather:arm-smmu", resolve("gather:arm-smmu"))], 1, 1, 7, str(tmp_path)),
                 io.StringIO(), io.StringIO())
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n")
    assert not c._quick_and_clean(prog, "slow.txt", c.targets[0])
    assert [p for p in c.problems if "slow.txt takes over" in p and "left out" in p]

    class SwallowsTheTimer:
        def __del__(self):
            time.sleep(5)                        # the seed timer fires in here: its exception is swallowed

    def run_on(prog, variants, policy):      # ... and the run goes on: the timer's next alarm stops it
        SwallowsTheTimer()
        until = time.time() + 20
        while time.time() < until:
            time.sleep(0.001)
        return SimpleNamespace(findings=[])
    monkeypatch.setattr(campaign, "run_program", run_on)
    monkeypatch.setattr(campaign, "SEED_SECONDS", 0.2)
    t0 = time.time()
    assert not c._quick_and_clean(prog, "slower.txt", c.targets[0])
    assert time.time() - t0 < 5
    assert [p for p in c.problems if "slower.txt takes over" in p]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the swallowed alarms it provokes
def test_a_late_seed_alarm_does_not_escape_or_stay_armed(tmp_path, monkeypatch):
    """The re-armed seed timer fires again while the interrupted run is unwinding: here the collection of
    what it held, gc being off during a run as run_program keeps it, takes over SEED_RETRY. The alarm is then
    pending when the timer is cancelled; it must neither leave _quick_and_clean as an exception nor stay armed
    (with the old SIGALRM handler back, a live timer would kill the process). A review's reproducer: escaped
    3 of 3 before the fix."""
    import gc
    from types import SimpleNamespace

    from smmufuzz.fuzz import campaign
    from smmufuzz.prog.program import parse
    from smmufuzz.variants.registry import target as resolve

    def run(prog, variants, policy):
        gc.disable()
        try:
            held = [[i] for i in range(2_000_000)]       # a long run's state, alive while it unwinds
            while held:
                time.sleep(0.001)
            return SimpleNamespace(findings=[])
        finally:
            gc.enable()
    monkeypatch.setattr(campaign, "run_program", run)
    monkeypatch.setattr(campaign, "SEED_SECONDS", 0.3)
    before = signal.getsignal(signal.SIGALRM)
    c = Campaign(Options([("gather:arm-smmu", resolve("gather:arm-smmu"))], 1, 1, 7, str(tmp_path)),
                 io.StringIO(), io.StringIO())
    prog = parse("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n")
    assert not c._quick_and_clean(prog, "slow.txt", c.targets[0])
    assert [p for p in c.problems if "slow.txt takes over" in p]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
    time.sleep(2 * campaign.SEED_RETRY)          # nothing left to fire


def _fake_worker(wrapper, dirs, seconds, seed, crash_dir, dict_path, extra, variants=()):
    """libFuzzer as far as the campaign sees it: its coverage (by target) rising over a second, then its slice
    done."""
    base = 100 if "smmuv3" in wrapper else 500
    line = "#{n}\tNEW    cov: {c} ft: {c} corp: 2/2b lim: 4 exec/s: 100 rss: 1Mb"
    return ["sh", "-c", f"echo 'INFO: Seed: 1'; echo '{line.format(n=2, c=base)}'; sleep 0.5; "
                        f"echo '{line.format(n=64, c=base + 7)}'; sleep {max(0, seconds - 0.5)}; "
                        f"echo 'Done 64 runs in {seconds} second(s)'"]


def test_the_report_is_rewritten_while_the_campaign_runs_with_each_targets_coverage_and_slices(tmp_path,
                                                                                               monkeypatch):
    from smmufuzz.fuzz import campaign as campaign_mod, report
    monkeypatch.setattr(campaign_mod, "libfuzzer_args", _fake_worker)
    monkeypatch.setattr(campaign_mod, "SAMPLE_EVERY", 0.5)
    monkeypatch.setattr(campaign_mod, "SLICE_MIN", 4)
    renders = []
    real = report.render

    def render(d, s=None, series=None):
        path = real(d, s, series)
        renders.append((s["state"], s["elapsed"], open(path).read()))
        return path
    monkeypatch.setattr(report, "render", render)
    c = Campaign(Options([("smmuv3", ["smmuv3"]), ("pte-sync", ["pte-sync:eager"])], 12, 1, 7, str(tmp_path),
                         use_seeds=False, report_every=2.0), io.StringIO(), io.StringIO())
    c.uncounted = 0.0
    s = c.run()
    live = [r for r in renders if r[0] == "running"]
    assert len(live) >= 4 and renders[-1][0] == "finished", [r[:2] for r in renders]
    assert all(b[1] - a[1] >= 1.9 for a, b in zip(live, live[1:]))       # every 2 s, not every loop
    assert 'http-equiv="refresh" content="5"' in live[-1][2] and "Live report, written" in live[-1][2]
    assert re.search(r"smmuv3: its slice runs until 6(\.\d)? s", live[0][2])     # the rest of the running slice
    # which target ran when: both targets, one after the other on worker 0, each slice done
    tl = s["timeline"]
    assert [x["target"] for x in tl][:2] == ["smmuv3", "pte-sync"] and {x["worker"] for x in tl} == {0}
    assert all(x["end"] > x["start"] for x in tl) and tl[0]["exit"] == "time slice done"
    assert all(a["end"] <= b["start"] for a, b in zip(tl, tl[1:]))
    svgs = _svgs(renders[-1][2])
    bars = [r.find("{http://www.w3.org/2000/svg}title").text for r in svgs["which target ran when"]
            if r.tag.endswith("rect") and r.find("{http://www.w3.org/2000/svg}title") is not None]
    assert bars[0].startswith("worker 0, launch 1: smmuv3 from ") and "time slice done" in bars[0]
    assert any(" pte-sync from " in b for b in bars)
    # each target's own coverage: from its first figure up to where its launch got (not a sum that only climbs)
    from smmufuzz.fuzz.report import target_cov_series
    series = json.load(open(os.path.join(s["directory"], "timeseries.json")))
    for name, base in (("smmuv3", 100), ("pte-sync", 500)):
        pts = target_cov_series(name, series, tl, None, s["elapsed"])
        assert pts[0][1] in (base, base + 7) and pts[-1][1] == base + 7, pts
        assert f"{name}: cov {base + 7}" in svgs
    # an early live report shows the campaign as it stood: smmuv3 started, pte-sync not yet
    first = _svgs(live[0][2])
    assert "pte-sync: cov 0" in first and any(k.startswith("smmuv3: cov ") for k in first)
    assert "Live report" not in renders[-1][2]


def test_a_campaign_stopped_by_an_error_leaves_a_last_report_saying_so(tmp_path, monkeypatch):
    from smmufuzz.fuzz import campaign as campaign_mod
    monkeypatch.setattr(campaign_mod, "libfuzzer_args", _fake_worker)
    c = Campaign(Options([("smmuv3", ["smmuv3"])], 30, 1, 7, str(tmp_path), use_seeds=False, report_every=1.0),
                 io.StringIO(), io.StringIO())

    def boom(self):
        if self.elapsed() > 2:
            raise RuntimeError("a bug in the campaign\nsecond line")
    monkeypatch.setattr(Campaign, "_tick", lambda self, force=False: boom(self))
    with pytest.raises(RuntimeError):
        c.run()
    (cdir,) = os.listdir(tmp_path / "campaigns")
    summary = json.load(open(tmp_path / "campaigns" / cdir / "summary.json"))
    assert summary["state"] == "stopped by an error: RuntimeError: a bug in the campaign"
    assert summary["timeline"][-1]["exit"] == "stopped by the campaign's error"
    page = open(tmp_path / "campaigns" / cdir / "report.html").read()
    ET.fromstring(page)
    assert "The campaign stopped by an error: RuntimeError: a bug in the campaign; its last report" in page


def test_a_campaign_killed_with_sigkill_leaves_its_last_live_report(tmp_path):
    """A real campaign (a subprocess) with a live report every 1.5 s: the report changes while it runs; after
    kill -9 the last one is whole (well-formed), says it is live, and shows the finding, the slices and the
    coverage up to then; `smmufuzz report` re-renders it from the summary.json left beside it."""
    script = f"""
import sys
sys.path.insert(0, {ROOT!r})
from smmufuzz.fuzz.campaign import Campaign, Options
Campaign(Options([({TARGET!r}, [{TARGET!r}]), ("smmuv3", ["smmuv3"])], 120, 1, 3, {str(tmp_path)!r},
                 report_every=1.5)).run()
"""
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    versions, page = set(), ""
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            time.sleep(0.3)
            reports = [os.path.join(r, "report.html") for r in
                       (str(tmp_path / "campaigns" / d) for d in os.listdir(tmp_path / "campaigns"))] \
                if (tmp_path / "campaigns").exists() else []
            if reports and os.path.exists(reports[0]):
                page = open(reports[0]).read()
                versions.add(page)
                if len(versions) >= 3 and re.search(r"expected \(\d+\)</h3>", page) and "worker 0, launch" in page:
                    break
    finally:
        p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL
    assert len(versions) >= 3, "the report was not rewritten while the campaign ran"
    (cdir,) = os.listdir(tmp_path / "campaigns")
    path = tmp_path / "campaigns" / cdir / "report.html"
    page = path.read_text()
    ET.fromstring(page)                                  # whole: written to a temp file, then renamed
    assert "Live report, written" in page and "killed outright" in page
    assert "MISSED_INVALIDATION" in page and re.search(r"expected \(\d+\)</h3>", page)
    svgs = _svgs(page)
    assert any(k.startswith(TARGET + ": cov ") and not k.endswith("cov 0") for k in svgs)
    assert "worker 0, launch 1: " + TARGET in page
    summary = json.load(open(tmp_path / "campaigns" / cdir / "summary.json"))
    assert summary["state"] == "running" and summary["distinct_findings"] >= 1
    # the time fuzzed so far counts for the next campaign's round robin, though this one never ended
    seconds = json.load(open(tmp_path / "fuzz" / ".seconds.json"))
    assert seconds[TARGET] > 0 and set(seconds) == {TARGET, "smmuv3"}
    os.unlink(path)
    assert cli_main(["report", str(tmp_path / "campaigns" / cdir)]) == 0
    assert ET.fromstring(path.read_text()) is not None


def test_the_summary_lists_crash_inputs_still_waiting_for_triage(tmp_path):
    """A live summary (report.html's, every few seconds) while crash inputs wait: each pending entry is (target,
    artifact, seed, seconds, execs); the summary names the artifacts (it raised on the five-field entries)."""
    c = Campaign(Options([(TARGET, [TARGET])], 1, 1, 7, str(tmp_path)), io.StringIO(), io.StringIO())
    t = c.targets[0]
    c.pending.append((t, "/x/crash-aaa", 7, 1.5, 10))
    assert c.summary("running")["untriaged"] == ["/x/crash-aaa"]
