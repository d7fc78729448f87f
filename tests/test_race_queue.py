"""The fuzz target's schedule searches spread over executions (race_queue.py, fuzz_target.race_steps)."""

from smmufuzz.prog.codec import encode
from smmufuzz.fuzz.fuzz_target import FindingError, one_input
from smmufuzz.prog.program import parse
from smmufuzz.fuzz.race_queue import RaceQueue


def _search(name, runs, log, result=None):
    for i in range(runs):
        log.append((name, i))
        yield
    return result


def test_searches_stay_within_their_share_of_the_runs_and_fresh_ones_go_first():
    q, log = RaceQueue(share=1 / 3), []
    assert q.offer(_search("dull", 50, log), fresh=False)
    assert not q.offer(_search("dull2", 50, log), fresh=False)      # something waits: not queued
    for k in range(30):
        q.ran(4)                                          # an input's own runs on four variants
        if k == 3:
            q.offer(_search("fresh", 5, log, result="found"), fresh=True)
        got = q.advance()
        assert q.searched <= 0.5 * q.own + 1
        if got:
            break
    names = [n for n, _i in log]
    assert "dull2" not in names
    assert got == "found"
    first_fresh = names.index("fresh")
    assert all(n == "fresh" for n in names[first_fresh:first_fresh + 5])   # ahead of the dull one's rest
    assert q.searched == len(log) and q.searched <= q.own / 2 + 1
    assert names.count("dull") < 50                      # a fresh search displaced it


def test_a_full_queue_takes_no_more_fresh_searches_and_keeps_the_one_under_way():
    q, log = RaceQueue(share=1 / 2, pending=2), []
    assert q.offer(_search("a", 3, log), fresh=True) and q.offer(_search("b", 3, log), fresh=True)
    assert not q.offer(_search("c", 3, log), fresh=True)
    q.ran(100)
    q.advance()
    assert [n for n, _i in log] == ["a"] * 3 + ["b"] * 3


def test_a_search_spread_over_later_inputs_raises_with_the_program_it_found_and_names_it(tmp_path, monkeypatch):
    """invs:no-mb (B12(d)) on corpus/seeds/invs_b12d.txt without its switch: the finding needs one more
    switch, which only the schedule search tries. With a share of 1/21 the search's run waits for 20 runs
    of later (dull) inputs; the input during which it ends raises with the found program's text and
    leaves a race-of-* note naming that program's crash-race-* input for the campaign's triage."""
    import hashlib
    import os

    from smmufuzz.fuzz import race_queue
    from smmufuzz.fuzz.fuzz_target import race_twin_of
    from smmufuzz.exec.runner import run_program
    monkeypatch.setattr(race_queue, "SHARE", 1 / 21)
    seed = os.path.join(os.path.dirname(__file__), "..", "corpus", "seeds", "invs_b12d.txt")
    with open(seed) as fh:
        prog = parse(fh.read().replace("preempt(after=1, to=cpu0)\n", ""))
    assert not prog.schedule and not run_program(prog, ["invs:no-mb"], "max-cache").findings
    art = str(tmp_path) + "/"
    f = one_input(["invs:no-mb"], "max-cache", art)
    f(encode(prog))                          # queued; its first run waits for the share
    dull = encode(parse(prog.text().splitlines()[0]))       # the configuration alone: no ops
    raised = None
    for n in range(1, 40):          # repeats of one clean program: not run again, but each advances the searches
        try:
            f(dull)
        except FindingError as e:
            raised = (n, str(e))
            break
    assert raised, "the queued search never ran"
    n, text = raised
    assert n >= 15, n                        # spread: not on the queued input's own execution
    assert "--- program ---" in text and "preempt(" in text.split("--- program ---")[1]
    crash = tmp_path / ("crash-" + hashlib.sha1(dull).hexdigest())
    crash.write_bytes(dull)
    twin = race_twin_of(str(crash))
    assert twin is not None and os.path.basename(twin).startswith("crash-race-")


def test_a_program_run_clean_is_not_run_again_and_one_with_a_finding_is(monkeypatch):
    """The fuzz target remembers programs whose own run gave no finding: another input decoding to one of them
    is not run again (the same verdict); a program with a finding is run and raised every time."""
    import os

    from smmufuzz.exec import runner
    calls = []
    real = runner.run_program
    monkeypatch.setattr(runner, "run_program", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    here = os.path.dirname(__file__)
    with open(os.path.join(here, "..", "corpus", "regressions", "gather", "b1_skip_empty_arm-smmu.txt")) as fh:
        buggy = parse(fh.read())
    clean = parse(buggy.text().replace("iommu_unmap(d0, iova=0x200000, size=0x1000)\n", ""))
    assert not real(clean, ["gather:skip-empty:arm-smmu"], "max-cache").findings
    f = one_input(["gather:skip-empty:arm-smmu"], "max-cache", None)
    for _ in range(3):
        f(encode(clean))
    assert calls.count(clean) == 1
    for k in range(1, 3):
        try:
            f(encode(buggy))
            raise AssertionError("the finding was not raised")
        except FindingError:
            pass
        assert calls.count(buggy) == k
