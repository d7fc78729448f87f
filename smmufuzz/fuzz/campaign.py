"""`smmufuzz fuzz` campaigns: a pool of libFuzzer workers rotating over targets in time slices, every crash
input triaged (minimised) and deduplicated into the findings store, a live status line and a final summary.

Slice policy (round robin with adaptive slices): a free worker takes the target with the fewest slices so
far in this campaign (ties: least time in this campaign, then in earlier campaigns on this corpus, then the
order given), preferring targets no other worker is on. The slice is the worker-time left before the
deadline (counting busy workers from the end of their slices) divided by the targets still waiting for
their turn in this round, clamped to [10 s, 300 s]; it starts at `time * workers / targets`. So a
30-minute, 2-worker campaign over all 23 targets gives each target one slice of about 156 s (start-up
and overruns are absorbed by later slices), an overnight one rotates every target in 300 s slices, and a
short one visits targets in turn, least-served first across reruns.

libFuzzer stops at its first crash input; the worker is restarted on the same target (new seed, same corpus)
for the rest of its slice. A worker that dies (timeout, OOM, signal, bad exit) is restarted the same way and
counted; a target whose worker dies three times in a row within 10 s is dropped from the campaign.
"""

import json
import os
import random
import signal
import stat
import sys
import time
from dataclasses import dataclass, field

from ..variants.registry import UnknownName, target as resolve_target
from .corpus_lock import CorpusLock
from .lifeline import campaign_env
from .findings_store import DiskFull, FindingsStore, StoreError, atomic_write, signature_key
from .fuzz import SHIPPED_CORPUS, libfuzzer_args, seed_files, seed_inputs, target_dirname, write_dict, write_wrapper
from ..prog.load import LoadError, load_program
from ..exec.anchors import named
from .minimize import reproducer_text
from ..exec.runner import run_program
from .tolerated import HITS_ENV, KEEP_GOING_ENV, KNOWN_ENV, read_tally, write_known
from .fuzz_target import input_name, race_twin_of
from .triage import search_schedules, triage
from ..exec.verdict import ORDER, UNEXPECTED, Verdict, classify, counts, counts_text, sort_key, worst
from .worker import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_OK, Launch, fresh_artifacts

SLICE_MIN, SLICE_MAX = 10, 300   # seconds; a launch spends ~1-3 s starting up (interpreter, corpus replay)
MIN_LAUNCH = 3            # seconds: a shorter remainder of a slice is not worth a restart
STATUS_EVERY = 2.0        # seconds between status updates (a terminal's line is redrawn in place)
STATUS_LOG_EVERY = 10.0   # seconds between status lines when stderr is not a terminal
SAMPLE_EVERY = 5.0        # seconds between time-series samples
QUICK_FAILS = 3           # consecutive launches that die within QUICK_SECONDS drop the target
QUICK_SECONDS = 10.0
OVERRUN_GRACE = 5.0       # a worker still running this long after its slice (or the deadline) is stopped
SEED_SECONDS = 2.0        # a seed slower than this on its target is left out
SEED_RETRY = 0.05         # ... the timer again this long after it fired (its exception may be swallowed)
UNCOUNTED_GUESS = 2.0     # seconds of a launch outside -max_total_time until one has been measured
TRIAGE_GRACE = 30.0       # seconds spent on crash inputs still queued when the workers have stopped
REPORT_EVERY = 60.0       # seconds between rewrites of report.html (and summary.json) while the campaign runs
COLLECT_EVERY = 2.0       # seconds between looks for crash inputs that running workers saved and carried on from


def slice_seconds(budget: int, workers: int, n_targets: int) -> int:
    return int(max(SLICE_MIN, min(SLICE_MAX, budget * workers / max(1, n_targets))))


class _SlowSeed(BaseException):        # not an Exception: variant code must not catch it as a CRASH
    pass


@dataclass
class TargetState:
    name: str
    variants: list[str]
    order: int
    seconds: float = 0.0          # fuzzing time this campaign
    earlier: float = 0.0          # fuzzing time in earlier campaigns on this corpus
    launches: int = 0
    slices: int = 0
    execs: int = 0
    cov: int = 0
    ft: int = 0
    quick_fails: int = 0
    blocked: str = ""
    prepared: bool = False
    seed_dir: str = ""
    seeds: int = 0                # seed inputs given to libFuzzer (encoded text programs)
    seeds_left_out: int = 0       # seed files that give a finding on the target (or do not parse)
    wrapper: str = ""


@dataclass
class Slot:
    index: int
    target: TargetState | None = None
    slice_end: float = 0.0
    launch: Launch | None = None


@dataclass
class Options:
    targets: list[tuple[str, list[str]]]
    seconds: int
    workers: int
    seed: int
    corpus_root: str
    use_seeds: bool = True
    policy: str = "max-cache"
    extra: list[str] = field(default_factory=list)
    plugins: tuple = ()
    tolerate_known: bool = True     # workers count inputs giving only known findings instead of stopping
    mutator: str = "default"        # default | hybrid | auto (hybrid)
    report_every: float = REPORT_EVERY   # seconds between live rewrites of report.html


def mutator_for(choice: str, variants: list[str]) -> str:
    """`auto`: the hybrid mutator for every target: it generates whole programs while the search is young
    (generate.py), then edits them at the op level (and forks ops onto other CPUs, moves preemptions), where
    libFuzzer's byte mutators alone keep programs at 2-3 ops for the first minutes."""
    return "hybrid" if choice == "auto" else choice


class Campaign:
    def __init__(self, opts: Options, out=None, err=None):
        self.o = opts
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tty = hasattr(self.err, "isatty") and self.err.isatty()
        root = opts.corpus_root
        self.id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-seed{opts.seed}"
        n = 1
        while os.path.exists(os.path.join(root, "campaigns", self.id)):     # a rerun within the same second
            n += 1
            self.id = self.id.split("~")[0] + f"~{n}"
        self.dir = os.path.join(root, "campaigns", self.id)
        self.run_dir = os.path.join(root, ".run")
        self.seconds_path = os.path.join(root, "fuzz", ".seconds.json")
        self.targets = [TargetState(t, v, i) for i, (t, v) in enumerate(opts.targets)]
        self.slice = slice_seconds(opts.seconds, opts.workers, len(self.targets))
        self.rng = random.Random(opts.seed)
        self.launch_count = 0
        self.finished_execs = 0
        self.restarts_after_finding = 0
        self.restarts_after_death = 0
        self.triage_seconds = 0.0     # replay + minimisation of crash inputs in the campaign process
        self.startup_seconds = 0.0    # launch to INITED (interpreter, instrumentation, corpus replay), summed
        self.uncounted = UNCOUNTED_GUESS   # seconds a launch runs beyond the time libFuzzer counts (average)
        self.deaths: list[dict] = []
        self.problems: list[str] = []
        self.unreproduced: list[str] = []
        self.race_only: list[tuple[str, str]] = []     # (raw crash input, its crash-race-* twin)
        self.pending: list[tuple] = []    # (target, artifact, launch seed (0: an earlier campaign's), seconds,
        #                                   the target's execs by then, None for an earlier campaign's input)
        self.queued: set[str] = set()
        self.hits: dict[str, int] = {}         # signature key -> hits this campaign
        self.tolerated: dict[str, int] = {}    # signature key -> inputs workers tolerated as known, this campaign
        self.new_keys: list[str] = []
        self.series: list[dict] = []
        self.signals = 0
        self.signal_log: list[str] = []
        self.t0 = 0.0
        self.interrupted = False
        self._last_status = self._last_sample = self._last_logged = 0.0
        self._prev_execs, self._prev_t = 0, 0.0
        self._execs_shown = 0
        self._rate = 0.0
        self._corpus_size = 0
        self.slots: list[Slot] = []
        self.timeline: list[dict] = []          # finished launches: worker, target, start, end, how it ended
        self._tcov_sampled: dict[str, int] = {}  # each target's coverage as last written to the time series
        self._last_report = 0.0
        self._last_collect = 0.0
        self._earlier: dict = {}                 # fuzz/.seconds.json as the campaign found it
        self._report_failed = False

    # -- helpers ---------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.time() - self.t0

    def corpus_dir(self, t: TargetState) -> str:
        return os.path.join(self.o.corpus_root, "fuzz", t.name)

    def crash_dir(self, t: TargetState) -> str:
        return os.path.join(self.o.corpus_root, "crashes", t.name)

    def _on_signal(self, signum, frame) -> None:
        self.signals += 1
        self.interrupted = True
        if self.t0:
            self.signal_log.append(f"{signal.Signals(signum).name} at {self.elapsed():.0f}s")

    def note(self, msg: str) -> None:
        self._clear_status()
        print(f"smmufuzz: {msg}", file=self.err, flush=True)

    # -- preparation -----------------------------------------------------------------------------------
    def _prepare(self, t: TargetState) -> None:
        """Corpus and crash dirs, the wrapper, seeds (those that already give a finding would stop libFuzzer
        at start-up and are left out), and a report of corpus files that cannot be read (kept)."""
        os.makedirs(self.corpus_dir(t), exist_ok=True)
        os.makedirs(self.crash_dir(t), exist_ok=True)
        t.wrapper = write_wrapper(self.run_dir, t.variants, self.o.policy, self.o.plugins,
                                  mutator_for(self.o.mutator, t.variants))
        for entry in sorted(os.listdir(self.corpus_dir(t))):
            path = os.path.join(self.corpus_dir(t), entry)
            try:
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(0, "not a regular file")
                with open(path, "rb") as f:
                    f.read(1)
            except OSError as e:
                self.problems.append(f"corpus file {path} cannot be read ({e.strerror or e}): skipped, kept")
        if self.o.use_seeds:
            t.seed_dir = os.path.join(self.run_dir, "seeds-" + target_dirname(t.name))
            os.makedirs(t.seed_dir, exist_ok=True)
            for old in os.listdir(t.seed_dir):          # generated last time; regenerated now
                os.unlink(os.path.join(t.seed_dir, old))
            files = seed_files(self.o.corpus_root, t.name, t.variants)
            t.seeds = seed_inputs(files, t.seed_dir, problems=self.problems,
                                  keep=lambda p, path: self._quick_and_clean(p, path, t))
            t.seeds_left_out = len(files) - t.seeds
        t.prepared = True

    def _quick_and_clean(self, prog, path: str, t: TargetState) -> bool:
        """Whether a seed gives no finding on the target within SEED_SECONDS (a slower one would slow every
        launch's corpus replay and each of its mutants: left out, reported)."""
        fired, done = [], [False]

        def slow(signum, frame):
            if done[0]:                 # the run is over: a late or pending alarm does nothing
                return
            fired.append(signum)
            signal.setitimer(signal.ITIMER_REAL, SEED_RETRY)    # again soon, should this one be swallowed
            raise _SlowSeed()
        old = signal.signal(signal.SIGALRM, slow)
        signal.setitimer(signal.ITIMER_REAL, SEED_SECONDS)
        try:
            try:
                clean = not run_program(prog, t.variants, self.o.policy).findings
            finally:
                done[0] = True
                signal.setitimer(signal.ITIMER_REAL, 0)
            if fired:       # the alarm's exception landed in a gc or __del__ callback, which swallows it
                raise _SlowSeed()
            return clean
        except _SlowSeed:
            self.problems.append(f"seed {path} takes over {SEED_SECONDS:.3g}s on {t.name}: left out")
            return False
        finally:
            signal.signal(signal.SIGALRM, old)     # the inner finally has disarmed the timer

    def _report_problems(self, start: int) -> None:
        for p in self.problems[start:]:
            self.note(p)

    # -- scheduling ------------------------------------------------------------------------------------
    def _next_target(self) -> TargetState | None:
        """Round robin: the target with the fewest slices this campaign, then the least time (this campaign,
        then earlier ones on this corpus), then the order given; one no other worker is on, if any."""
        live = [t for t in self.targets if not t.blocked]
        if not live:
            return None
        busy = {id(s.target) for s in self.slots if s.launch is not None and s.target is not None}
        free = [t for t in live if id(t) not in busy] or live
        return min(free, key=lambda t: (t.slices, t.seconds, t.earlier, t.order))

    def _slice_for(self, now: float) -> float:
        """The worker-seconds left (free now, or once the slices under way end) shared among the targets
        still waiting for their turn in this round, within [SLICE_MIN, SLICE_MAX]."""
        live = [t for t in self.targets if not t.blocked]
        busy = {id(s.target) for s in self.slots if s.launch is not None and s.target is not None}
        low = min(t.slices for t in live)
        waiting = sum(1 for t in live if t.slices == low and id(t) not in busy) or len(live)
        avail = sum(max(0.0, self.deadline - (max(now, s.slice_end) if s.launch else now)) for s in self.slots)
        return max(SLICE_MIN, min(SLICE_MAX, avail / waiting))

    def _start(self, slot: Slot) -> None:
        now = time.time()
        if slot.target is None or slot.slice_end - now < MIN_LAUNCH:
            slot.target = self._next_target()
            if slot.target is None:
                return
            slot.slice_end = now + self._slice_for(now)
            slot.target.slices += 1
        t = slot.target
        if not t.prepared:                  # (its seeds screened on the target: part of the slice)
            n = len(self.problems)
            self._prepare(t)
            self._report_problems(n)
            now = time.time()
        # libFuzzer's -max_total_time leaves out the start-up before its clock runs (and counts whole seconds):
        # the launch gets its slice less what that took in the launches so far
        seconds = int(min(slot.slice_end, self.deadline) - now - self.uncounted)
        if seconds < MIN_LAUNCH:
            slot.target = None
            return
        self.launch_count += 1
        seed = self.rng.randrange(1, 2**31)
        dirs = [self.corpus_dir(t)] + ([t.seed_dir] if t.seed_dir and os.listdir(t.seed_dir) else [])
        args = libfuzzer_args(t.wrapper, dirs, seconds, seed, self.crash_dir(t), self.dict_path, self.o.extra,
                              t.variants)
        log = os.path.join(self.dir, "logs", f"worker{slot.index}.log")
        env = dict(os.environ)
        if self.o.tolerate_known:
            env[KNOWN_ENV] = self.known_path
            env[HITS_ENV] = os.path.join(self.dir, "tally", f"launch{self.launch_count}.json")
            env[KEEP_GOING_ENV] = "1"     # a new finding (not UNEXPECTED) is saved and the worker carries on
        env.update(campaign_env())
        slot.launch = Launch(slot.index, self.launch_count, t.name, seed, args, log, seconds, env,
                             keep_fds=(self.lock.fd,))
        self.lock.set_workers(s.launch.proc.pid for s in self.slots if s.launch)
        t.launches += 1

    def _ended(self, slot: Slot) -> None:
        """Account for a finished launch, queue its crash inputs, and decide whether the slot restarts."""
        la, t = slot.launch, slot.target
        slot.launch = None
        self.lock.set_workers(s.launch.proc.pid for s in self.slots if s.launch)
        ran = (la.ended or time.time()) - la.started
        if la.fuzzer_seconds is not None and not la.stopped:
            self.uncounted = 0.5 * self.uncounted + 0.5 * max(0.0, ran - la.fuzzer_seconds)
        self.startup_seconds += ((la.inited_at or la.ended or time.time()) - la.started)
        t.seconds += ran
        t.execs += la.execs
        self.finished_execs += la.execs
        t.cov, t.ft = max(t.cov, la.cov), max(t.ft, la.ft)
        self.timeline.append(self._slice_entry(la, "stopped by the campaign" if la.stopped else la.describe_exit()))
        new = self._collect(t, la.seed, la.ended or time.time())
        if self.o.tolerate_known:
            for coarse, n in read_tally(os.path.join(self.dir, "tally", f"launch{la.number}.json")).items():
                key = self.store.add_tolerated(coarse, n)
                if key:
                    self.tolerated[key] = self.tolerated.get(key, 0) + n
        rc = la.returncode
        if la.stopped or (rc == EXIT_INTERRUPTED and self.interrupted):
            return
        if rc == EXIT_OK:                 # -max_total_time reached: the slice is over
            t.quick_fails = 0
            slot.target = None
            return
        if rc == EXIT_CRASH and new:
            self.restarts_after_finding += 1
            t.quick_fails = 0
        else:
            self.restarts_after_death += 1
            self.deaths.append({"target": t.name, "launch": la.number, "seed": la.seed, "returncode": rc,
                                "exit": la.describe_exit(), "seconds": round(ran, 1),
                                "at": round(la.ended - self.t0, 1) if la.ended else None,
                                "log": la.log_path, "tail": la.tail(6)})
            self.note(f"worker {slot.index} on {t.name} died ({la.describe_exit()} after {ran:.1f}s); "
                      f"restarting (log {la.log_path})")
            t.quick_fails = t.quick_fails + 1 if ran < QUICK_SECONDS else 0
        if t.quick_fails >= QUICK_FAILS:
            t.blocked = (f"{QUICK_FAILS} launches in a row ended within {QUICK_SECONDS:.0f}s "
                         f"(last: {la.describe_exit()}); see {la.log_path}")
            self.problems.append(f"target {t.name} dropped from this campaign: {t.blocked}")
            self.note(self.problems[-1])
            slot.target = None

    def _collect(self, t: TargetState, seed: int, when: float, running_execs: int = 0) -> int:
        """Queue the crash inputs of t's directory not queued or triaged yet; `running_execs`: the executions of
        a launch still running (a worker that saves a finding and carries on), counted in the first-seen
        figure."""
        known = {a.split("/", 1)[1] for a in self.store.processed if a.startswith(t.name + "/")}
        n = 0
        for path in fresh_artifacts(self.crash_dir(t), known):
            if path not in self.queued:
                self.queued.add(path)
                self.pending.append((t, path, seed, when - self.t0, t.execs + running_execs if seed else None))
                n += 1
        return n

    def _collect_running(self, now: float) -> None:
        """What running workers saved and carried on from (tolerated.KEEP_GOING_ENV), every COLLECT_EVERY s."""
        if now - self._last_collect < COLLECT_EVERY:
            return
        self._last_collect = now
        for slot in self.slots:
            la = slot.launch
            if la is not None and slot.target is not None and la.poll() is None:
                self._collect(slot.target, la.seed, now, la.execs_now())

    # -- triage ----------------------------------------------------------------------------------------
    def _triage_one(self) -> None:
        t0 = time.time()
        try:
            self._triage(*self.pending.pop(0))
        finally:
            self.triage_seconds += time.time() - t0

    def _triage(self, t: TargetState, path: str, seed: int, seconds: float, execs: int | None = None) -> None:
        art_id = f"{t.name}/{os.path.basename(path)}"
        try:
            prog, _ = load_program(path)
        except LoadError as e:
            self.problems.append(f"crash input {e}: skipped, kept")
            self.note(self.problems[-1])
            self.store.mark_processed([art_id])
            return
        tri = triage(prog, t.variants, self.o.policy)
        if tri is None:
            # a race-only input: the finding shows under the schedule search the worker ran on it, which
            # wrote the program it found as crash-race-<sha1>; that twin carries the hit (if it is missing,
            # the program found here is triaged instead)
            twin = race_twin_of(path)       # a search spread over executions found it during this input
            found = None if twin else search_schedules(prog, t.variants, self.o.policy)
            twin = twin or (found and input_name(os.path.join(self.crash_dir(t), "crash-race-"), found))
            if not twin or os.path.exists(twin):
                if not twin:
                    self.unreproduced.append(path)
                else:
                    self.race_only.append((path, twin))
                self.store.mark_processed([art_id])
                return
            tri = triage(found, t.variants, self.o.policy)
            if tri is None:               # (the search is deterministic: not expected)
                self.unreproduced.append(path)
                self.store.mark_processed([art_id])
                return
        key = signature_key(tri.signature)
        repro_path = os.path.join(self.o.corpus_root, "regressions", target_dirname(t.name),
                                  f"{tri.finding.kind.lower()}-{key}.txt")
        origin = f"seed {seed} of campaign {self.id}" if seed else "an earlier campaign"
        shown = named(tri.program, tri.finding, t.variants, self.o.policy)    # its switches named, as stored
        text = reproducer_text(shown, tri.finding, t.name, f"smmufuzz fuzz {t.name}, libFuzzer {origin} "
                               f"(minimised from {tri.raw_ops} ops)", expect=",".join(tri.kinds), verdict=tri.verdict,
                               variants=t.variants, policy=self.o.policy)
        replay = f"smmufuzz replay {repro_path} --target {t.name}"
        if key not in self.store.records:
            atomic_write(repro_path, text)
        rec, new = self.store.record(tri.signature, target=t.name, finding_text=tri.finding.text(), reproducer=text,
                                     reproducer_path=repro_path, replay=replay, artifact=path, campaign=self.id,
                                     seconds=seconds, execs=execs, coarse=tri.coarse, verdict=tri.verdict.as_dict())
        self.store.mark_processed([art_id])
        self.hits[key] = self.hits.get(key, 0) + 1
        if new:
            self.new_keys.append(key)
            write_known(self.known_path, self.store.coarse_signatures())
            self._clear_status()
            when = f"{seconds:6.0f}s" + (f", {execs:,} execs of {t.name}" if execs is not None else "")
            print(f"[{when}] NEW finding on {t.name}, {tri.verdict.text()}:\n"
                  f"{tri.finding.text()}".replace("\n", "\n  "), file=self.out)
            print(f"  reproducer: {repro_path}\n  replay: {replay}", file=self.out)
            print("    " + shown.text().rstrip().replace("\n", "\n    "), file=self.out, flush=True)

    def verdict_of(self, key: str) -> str:
        """A stored finding's verdict class: the record's, or (a record from before verdicts) its reproducer's
        on its target, written back to the record."""
        rec = self.store.records[key]
        if rec.get("verdict") not in ORDER:
            found = None
            try:
                prog, _h = load_program(self.store.path_of(key, ".txt"))
                res = run_program(prog, resolve_target(rec["target"]), self.o.policy)
                found = worst(classify(f, prog) for f in res.findings)
            except (LoadError, UnknownName, OSError, KeyError):
                pass
            found = found or Verdict(UNEXPECTED, "its reproducer no longer gives a finding: check it by hand")
            rec.update(found.as_dict())
            atomic_write(self.store.path_of(key), json.dumps(rec, indent=1) + "\n")
        return rec["verdict"]

    def verdict_counts(self) -> dict[str, int]:
        return counts(self.verdict_of(k) for k in set(self.hits) | set(self.tolerated))

    # -- status ----------------------------------------------------------------------------------------
    def total_execs(self) -> int:
        """Inputs run so far, all launches: finished ones' final counts plus running ones' estimates. Never
        less than a figure already shown (a running launch's estimate can exceed its final count)."""
        running = [s.launch for s in self.slots if s.launch]
        self._execs_shown = max(self._execs_shown, self.finished_execs + sum(la.execs_now() for la in running))
        return self._execs_shown

    def _running_on(self, t: TargetState) -> list[Launch]:
        return [s.launch for s in self.slots if s.launch and s.launch.target == t.name]

    def target_cov(self, t: TargetState) -> tuple[int, int]:
        """The target's libFuzzer cov and ft so far: its finished launches' best, or a running one's."""
        lc = self._running_on(t)
        return max([t.cov] + [la.cov for la in lc]), max([t.ft] + [la.ft for la in lc])

    def _slice_entry(self, la: Launch, how: str) -> dict:
        """One launch on the timeline: which worker ran which target from when to when (campaign seconds)."""
        end = la.ended or time.time()
        return {"worker": la.slot, "launch": la.number, "target": la.target, "start": round(la.started - self.t0, 1),
                "end": round(end - self.t0, 1), "exit": how, "execs": la.execs_now(), "cov": la.cov}

    def _target_cov_changes(self) -> dict[str, int]:
        """For the time series: each target's cov where it changed since the last sample (a target that
        is not running keeps its figure), so a night of samples stays small."""
        out = {}
        for t in self.targets:
            cov, _ft = self.target_cov(t)
            if cov and self._tcov_sampled.get(t.name) != cov:
                out[t.name] = self._tcov_sampled[t.name] = cov
        return out

    def figures(self) -> dict:
        running = [s.launch for s in self.slots if s.launch]
        execs = self.total_execs()
        cov = ft = 0
        for t in self.targets:
            c, f = self.target_cov(t)
            cov, ft = cov + c, ft + f
        return {"t": round(self.elapsed(), 1), "execs": execs, "exec_per_sec": round(self._rate, 1),
                "corpus": self._corpus_size, "seeds": sum(t.seeds for t in self.targets), "cov": cov, "ft": ft, "findings": len(set(self.hits) | set(self.tolerated)), **self.verdict_counts(),
                "new_findings": len(self.new_keys), "workers": len(running),
                "restarts": self.restarts_after_finding + self.restarts_after_death}

    def _count_corpus(self) -> int:
        n = 0
        for t in self.targets:
            try:
                n += sum(1 for e in os.scandir(self.corpus_dir(t)) if not e.name.startswith("."))
            except OSError:
                pass
        return n

    def _tick(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_status < STATUS_EVERY:
            return
        running = [s.launch for s in self.slots if s.launch]
        execs = self.total_execs()
        dt = now - (self._prev_t or self.t0)
        if dt > 0:
            inst = (execs - self._prev_execs) / dt
            self._rate = max(0.0, inst if not self._prev_t else 0.5 * self._rate + 0.5 * inst)
        self._prev_execs, self._prev_t = execs, now
        self._last_status = now
        if force or now - self._last_sample >= SAMPLE_EVERY:
            self._corpus_size = self._count_corpus()
            self._last_sample = now
            self.series.append({**self.figures(), "tcov": self._target_cov_changes()})
            atomic_write(os.path.join(self.dir, "timeseries.json"), json.dumps(self.series) + "\n")
        f = self.figures()
        on = ",".join(sorted({la.target for la in running})) or "-"
        # the verdicts first: a terminal shows the first 200 characters
        line = (f"[{f['t']:5.0f}s/{self.o.seconds}s] findings {f['findings']}: {f[UNEXPECTED]} UNEXPECTED, "
                f"{f['expected']} expected, {f['known_design']} known design ({f['new_findings']} new) | "
                f"{f['exec_per_sec']:.0f} exec/s | {f['execs']} execs | corpus {f['corpus']} + seeds {f['seeds']} | "
                f"cov {f['cov']} ft {f['ft']} | restarts {f['restarts']} | {f['workers']} worker(s) on {on}")
        if self.tty:
            print("\r" + line[:200] + "\x1b[K", end="", file=self.err, flush=True)
            self._status_shown = True
        elif force or now - self._last_logged >= STATUS_LOG_EVERY:
            print(line, file=self.err, flush=True)
            self._last_logged = now

    def _clear_status(self) -> None:
        if self.tty and getattr(self, "_status_shown", False):
            print("\r\x1b[K", end="", file=self.err, flush=True)
            self._status_shown = False

    # -- the campaign ----------------------------------------------------------------------------------
    def run(self) -> dict:
        with CorpusLock(self.o.corpus_root) as self.lock:
            os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
            # SIGHUP too (the terminal went away), unless ignored (nohup): each stops the campaign in order
            stops = [signal.SIGINT, signal.SIGTERM] + [signal.SIGHUP] * (signal.getsignal(signal.SIGHUP)
                                                                         is not signal.SIG_IGN)
            old = {s: signal.signal(s, self._on_signal) for s in stops}
            try:
                return self._run()
            except BaseException as e:
                self._report_on_error(e)
                raise
            finally:
                for s in self.slots:
                    if s.launch:
                        s.launch.stop(grace=2.0)
                for s, h in old.items():
                    signal.signal(s, h)

    def _run(self) -> dict:
        root = self.o.corpus_root
        self.store = FindingsStore(os.path.join(root, "findings"))
        self.problems += self.store.problems
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(os.path.join(self.dir, "tally"), exist_ok=True)
        self.dict_path = write_dict(self.run_dir)
        self.known_path = os.path.join(self.run_dir, "known.json")
        write_known(self.known_path, self.store.coarse_signatures() if self.o.tolerate_known else [])
        try:
            with open(self.seconds_path) as f:
                earlier = json.load(f)
            for t in self.targets:
                t.earlier = float(earlier.get(t.name, 0))
        except (OSError, ValueError, AttributeError):
            earlier = {}
        self._earlier = earlier if isinstance(earlier, dict) else {}
        self.slots = [Slot(i) for i in range(self.o.workers)]
        self.t0 = time.time()
        self.deadline = self.t0 + self.o.seconds
        print(f"smmufuzz fuzz: {len(self.targets)} target(s) ({', '.join(t.name for t in self.targets)}); "
              f"{self.o.workers} worker(s); slices of about {self.slice}s, round robin; "
              f"{self.o.seconds}s; seed {self.o.seed}; policy {self.o.policy}; corpus {root}", file=self.out)
        if self.o.use_seeds:
            where = " and ".join(sorted({os.path.realpath(SHIPPED_CORPUS), os.path.realpath(root)}))
            files = {os.path.realpath(p) for t in self.targets for p in seed_files(root, t.name, t.variants)}
            print(f"seeds: {len(files)} seed and regression programs under {where}; each target starts from "
                  f"those of its variant families that give no finding on it (`seeds` in the status line)",
                  file=self.out)
        else:
            print("seeds: none (--no-seeds: empty start)", file=self.out)
        print(f"campaign directory: {self.dir}", file=self.out, flush=True)
        self._report_problems(0)
        for t in self.targets:            # crash inputs an interrupted campaign left untriaged
            if os.path.isdir(self.crash_dir(t)):
                self._collect(t, 0, self.t0)
        while True:
            now = time.time()
            for slot in self.slots:
                la = slot.launch
                if la and la.poll() is None and la.overdue(now, OVERRUN_GRACE):
                    # libFuzzer checks -max_total_time between inputs only: a slow input overruns the slice
                    self.problems.append(f"worker {slot.index} on {la.target} overran its {la.seconds}s of fuzzing "
                                         f"by {now - la.budget_end():.0f}s (a slow input?); stopped")
                    self.note(self.problems[-1])
                    la.stop()
                if la and la.poll() is not None:
                    self._ended(slot)
            if self.interrupted:
                break
            if now < self.deadline - MIN_LAUNCH:
                for slot in self.slots:
                    if slot.launch is None:
                        self._start(slot)
            elif now > self.deadline + OVERRUN_GRACE:
                break
            self._collect_running(now)
            if self.pending:
                self._triage_one()
            self._tick()
            if time.time() - self._last_report >= self.o.report_every:
                self._live_report()
            idle = not self.pending and all(s.launch is None for s in self.slots)
            if idle and (now >= self.deadline - MIN_LAUNCH or all(t.blocked for t in self.targets)):
                break
            time.sleep(0.2)
        return self._finish(self._earlier)

    def _finish(self, earlier: dict) -> dict:
        running = [s for s in self.slots if s.launch]
        for s in running:
            if s.launch.proc.poll() is None:
                s.launch.stopped = True
                s.launch.proc.send_signal(signal.SIGTERM)
        for s in running:
            s.launch.stop(grace=5.0)
            self._ended(s)
        until = time.time() + TRIAGE_GRACE
        while self.pending and self.signals < 2 and time.time() < until:
            self._triage_one()           # what is left (a second Ctrl-C, or past the grace) the next campaign triages
        self._tick(force=True)
        self._save_seconds(earlier)
        summary = self.summary("interrupted" if self.interrupted else "finished")
        self._export_findings(summary)
        summary["report"] = self._write_report(summary)
        self._clear_status()
        print_summary(summary, self.out)
        return summary

    # -- the report ------------------------------------------------------------------------------------
    def _write_report(self, summary: dict) -> str:
        """summary.json and report.html (each written whole, then renamed: a reader, or a kill, never
        sees half of one); returns the report's path."""
        from .report import render
        atomic_write(os.path.join(self.dir, "summary.json"), json.dumps(summary, indent=1) + "\n")
        return render(self.dir, summary, self.series)

    def _save_seconds(self, earlier: dict) -> None:
        """Each target's fuzzing time on this corpus (earlier campaigns' and this one's so far, running launches
        included), which the next campaign's round robin starts from: at the end, and with every live report
        (a campaign killed outright still counts)."""
        data = dict(earlier)
        now = time.time()
        for t in self.targets:
            data[t.name] = round(t.earlier + t.seconds + sum(now - la.started for la in self._running_on(t)), 1)
        atomic_write(self.seconds_path, json.dumps(data, indent=1, sort_keys=True) + "\n")

    def _live_report(self) -> None:
        """The report as the campaign stands, every `report_every` seconds: a campaign killed outright (kill -9,
        power) leaves one up to its last minute. A report that cannot be rendered is a problem, not a stop."""
        self._last_report = time.time()
        self._save_seconds(self._earlier)
        try:
            self._write_report(self.summary("running"))
        except DiskFull:
            raise
        except Exception as e:           # (a bug in the report must not end a night of fuzzing)
            if not self._report_failed:
                self._report_failed = True
                self.problems.append(f"live report.html not written: {type(e).__name__}: {e}")
                self.note(self.problems[-1])

    def _report_on_error(self, exc: BaseException) -> None:
        """A campaign stopped by an error (disk full, a bug) still leaves a last report, if it can."""
        if not self.t0:
            return
        try:
            for s in self.slots:
                if s.launch:
                    s.launch.stop(grace=2.0)
                    self.timeline.append(self._slice_entry(s.launch, "stopped by the campaign's error"))
                    s.launch = None
            why = str(exc).splitlines()[0] if str(exc) else ""
            self._write_report(self.summary(f"stopped by an error: {type(exc).__name__}" + (f": {why}" if why else "")))
        except BaseException:
            pass                         # (the error itself is what the user needs to see)

    def _export_findings(self, summary: dict) -> None:
        """This campaign's findings as findings.sarif and findings.junit.xml beside summary.json."""
        from .sarif import export
        try:
            summary["exported"] = export(self.o.corpus_root, os.path.join(self.dir, "findings.sarif"),
                                         os.path.join(self.dir, "findings.junit.xml"),
                                         [self.store.records[r["key"]] for r in summary["findings"]])
        except StoreError as e:
            self.problems.append(f"findings.sarif and findings.junit.xml not written: {e}")
            self.note(self.problems[-1])

    def summary(self, state: str = "finished") -> dict:
        """The campaign's figures; `state` running (a live report), finished, interrupted or stopped by an error.
        Running launches count with what they have done so far."""
        now = time.time()
        f = self.figures() if state == "running" or not self.series else self.series[-1]
        elapsed = self.elapsed()
        findings = []
        for key in list(self.hits) + [k for k in self.tolerated if k not in self.hits]:
            hits = self.hits.get(key, 0)
            rec = self.store.records[key]
            findings.append({**{k: rec[k] for k in ("key", "kind", "variants", "shape", "target", "targets",
                                                    "first_seen", "hits", "finding", "reproducer", "replay")},
                             "tolerated_hits": rec.get("tolerated_hits", 0), "hits_this_campaign": hits,
                             "tolerated_this_campaign": self.tolerated.get(key, 0), "new": key in self.new_keys,
                             "verdict": self.verdict_of(key), "verdict_why": rec.get("verdict_why", "")})
        findings.sort(key=lambda r: (sort_key(r["verdict"]), not r["new"],
                                     r["first_seen"]["seconds"] if r["new"] else 0, r["key"]))
        running = [s.launch for s in self.slots if s.launch]

        def so_far(t: TargetState) -> tuple[float, int]:
            lc = [la for la in running if la.target == t.name]
            return t.seconds + sum(now - la.started for la in lc), t.execs + sum(la.execs_now() for la in lc)
        per_target = []
        for t in self.targets:
            seconds, execs = so_far(t)
            cov, ft = self.target_cov(t)
            per_target.append({"target": t.name, "seconds": round(seconds, 1), "slices": t.slices,
                               "seed_inputs": t.seeds, "seeds_left_out": t.seeds_left_out, "launches": t.launches,
                               "execs": execs, "exec_per_sec": round(execs / seconds, 1) if seconds else 0.0,
                               "cov": cov, "ft": ft, "blocked": t.blocked,
                               "findings": sum(1 for k in set(self.hits) | set(self.tolerated)
                                               if t.name in self.store.records[k]["targets"])})
        return {
            "campaign": self.id, "directory": self.dir, "seed": self.o.seed, "corpus_root": self.o.corpus_root,
            "state": state, "updated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
            "report_every": self.o.report_every,
            "targets": [t.name for t in self.targets], "workers": self.o.workers, "slice_seconds": self.slice,
            "time_budget": self.o.seconds, "elapsed": round(elapsed, 1), "interrupted": self.interrupted,
            "signals": self.signal_log,
            "execs": f["execs"], "exec_per_sec": round(f["execs"] / elapsed, 1) if elapsed else 0.0,
            "corpus": f["corpus"], "cov": f["cov"], "ft": f["ft"], "launches": self.launch_count,
            "restarts_after_finding": self.restarts_after_finding, "restarts_after_death": self.restarts_after_death,
            "startup_seconds": round(self.startup_seconds, 1), "triage_seconds": round(self.triage_seconds, 1),
            "worker_deaths": self.deaths, "distinct_findings": len(set(self.hits) | set(self.tolerated)),
            "new_findings": len(self.new_keys), "verdicts": counts(r["verdict"] for r in findings),
            "hits": sum(self.hits.values()),
            "tolerated_hits": sum(self.tolerated.values()), "tolerate_known": self.o.tolerate_known, "untriaged": [p[1] for p in self.pending],
            "unreproduced_artifacts": self.unreproduced, "race_only_artifacts": [r for r, _t in self.race_only], "problems": self.problems,
            "seed_inputs": sum(t.seeds for t in self.targets),
            "per_target": per_target,
            "timeline": self.timeline + [{**self._slice_entry(s.launch, "running"),
                                          "until": round(min(s.slice_end, self.deadline) - self.t0, 1)}
                                         for s in self.slots if s.launch],
            "findings": findings, "replay_cwd": os.getcwd(),
        }


def print_summary(s: dict, out) -> None:
    p = lambda *a: print(*a, file=out)   # noqa: E731
    p(f"\n=== campaign {s['campaign']} "
      f"{'(interrupted: ' + ', '.join(s.get('signals', [])) + ') ' if s['interrupted'] else ''}===")
    p(f"{s['elapsed']:.0f}s, {s['workers']} worker(s), seed {s['seed']}: {s['execs']} execs, "
      f"{s['exec_per_sec']:.0f} exec/s, corpus {s['corpus']} + {s.get('seed_inputs', 0)} seed inputs, cov {s['cov']} ft {s['ft']}, {s['launches']} "
      f"launches; restarts: {s['restarts_after_finding']} after a finding, {s['restarts_after_death']} after a "
      f"worker died; {s['startup_seconds']:.0f} worker-seconds starting up (to libFuzzer's INITED), "
      f"{s['triage_seconds']:.0f} s triaging crash inputs")
    p(f"{'target':<26} {'seconds':>8} {'launches':>8} {'execs':>9} {'exec/s':>7} {'cov':>6} {'findings':>8}")
    for t in s["per_target"]:
        p(f"{t['target']:<26} {t['seconds']:>8.0f} {t['launches']:>8} {t['execs']:>9} {t['exec_per_sec']:>7.0f} "
          f"{t['cov']:>6} {t['findings']:>8}" + (f"  DROPPED: {t['blocked']}" if t["blocked"] else ""))
    p(f"findings: {s['distinct_findings']} distinct ({counts_text(s['verdicts'])}; {s['new_findings']} new), "
      f"{s['hits']} hits triaged"
      + (f", {s['tolerated_hits']} more inputs tolerated as known by the workers" if s["tolerate_known"] else ""))
    for r in s["findings"]:
        fs = r["first_seen"]
        label = Verdict(r["verdict"], r["verdict_why"]).label
        p(f"  {label}: {'NEW ' if r['new'] else ''}{r['kind']} on {', '.join(r['variants'])} [{' '.join(r['shape'])}]")
        p(f"    why: {r['verdict_why']}")
        at = f"{fs['seconds']}s" + (f" and {fs['execs']:,} execs of its target" if "execs" in fs else "")
        p(f"    first seen {at} into {fs['campaign']} ({fs['wall']}); hits {r['hits_this_campaign']} "
          f"this campaign, {r['hits']} in all; tolerated as known: {r['tolerated_this_campaign']} this campaign, "
          f"{r['tolerated_hits']} in all")
        p(f"    replay: {r['replay']}")
    for d in s["worker_deaths"]:
        p(f"worker died: {d['target']} launch {d['launch']}: {d['exit']} after {d['seconds']}s (log {d['log']})")
    if s.get("race_only_artifacts"):
        p(f"{len(s['race_only_artifacts'])} race-only crash input(s): their finding shows under the schedule "
          f"search that found it, saved and triaged as its crash-race-* input")
    for u in s["unreproduced_artifacts"]:
        p(f"artifact gives no finding on replay nor under the fuzz target's schedule search "
          f"(timeout/oom, or flaky): {u}")
    if s["untriaged"]:
        p(f"{len(s['untriaged'])} crash input(s) left for the next campaign to triage")
    for pr in s["problems"]:
        p(f"problem: {pr}")
    p(f"summary: {os.path.join(s['directory'], 'summary.json')}   report: {s.get('report', '-')}"
      + (f"   findings: {', '.join(s['exported'])}" if s.get("exported") else ""))
