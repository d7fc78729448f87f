"""The libFuzzer/atheris entry point: decode bytes, run the target's variants, raise on a finding.

Started through an executable wrapper (see fuzz.py) so that libFuzzer's child modes, which
re-execute argv[0] through sh, work (fuzz-anchors §1.4). Only the code under test (smmufuzz.variants,
smmufuzz.kernel's glue, plugins) and the feature buckets are instrumented; the emulator is not
(emulator_modules). `mutator="hybrid"` adds the structure-aware custom mutator (mutator.py). For the
benchmark: if SMMUFUZZ_CLOCK names a file, the time of the first input and, at a finding, the time and the
number of inputs run are appended to it (time to exposure without start-up); if SMMUFUZZ_CONTROL names
variants (comma-separated), a finding they also give is not raised.
"""

import os
import sys
import time


class FindingError(Exception):
    """A finding, raised so that libFuzzer records the input as a crash artifact."""


# hot modules whose coverage says little, left uninstrumented for speed: the command decoder, memory, the
# judge (oracle, intent bookkeeping, program model: their branches are verdicts, not states to explore)
# and the scheduler, whose interesting branches (a switch, a lock wait, a deferred switch) record
# features in feature_cov instead. Instrumenting them cost 2.2x per seed-002 input (17.9 vs 8.2 ms).
UNINSTRUMENTED = ["smmufuzz.reference.cmdq", "smmufuzz.reference.memory", "smmufuzz.reference.oracle",
                  "smmufuzz.reference.spec", "smmufuzz.prog.program", "smmufuzz.exec.sched"]


RACE_SCHEDULES = 32        # schedules tried per concurrent input, each adding one switch to its own
COLLIDE_SCHEDULES = 8      # sampled collisions (an op run inside its predecessor's window) per input
RACE_PAGES = 64            # programs mapping more pages get fewer (race_budget)
RACED_CLEAN_MAX = 200_000
RAN_CLEAN_MAX = 1 << 13    # programs remembered as run without a finding (a repeat is not run again;
#                            3-12 KiB each: up to about 100 MiB)
PAIR_TRIES = 4             # programs searched first for each race pair (the same kinds in another state)


def explores(variants: list[str]) -> bool:
    """Targets whose variants run step by step (seed 002) try each concurrent input's schedules."""
    from smmufuzz.variants.caps import caps
    from smmufuzz.variants.registry import variant
    return any(caps(variant(v).factory).concurrent for v in variants)


def race_budget(prog) -> int:
    """RACE_SCHEDULES, scaled down for programs that map many pages (every run refills the max-cache
    TLB with all of them at every step), so that one big input does not cost a second of searching."""
    g = prog.config.pg_shift
    pages = 0
    for op in prog.ops:
        if op.kind in ("map", "dma_map"):
            pages += op.get("size") >> g
        elif op.kind == "map_sg":
            pages += sum(ln for _pa, ln in op.get("sg")) >> g
    return max(2, RACE_SCHEDULES * RACE_PAGES // pages) if pages > RACE_PAGES else RACE_SCHEDULES


CONTROL_SCHEDULES = 64     # schedules a correct control is searched with before a race finding counts
CONTROL_MINIMIZE = 400     # runs to minimise a finding's program before the control is searched again
CONTROL_EXHAUSTIVE_OPS = 6  # a minimised race of at most this many ops: the control under all its schedules
CONTROL_EXHAUSTIVE = 12000  # ... up to this many (a 4-op race under 3 switches takes about 6,000)


def control_shows(prog, findings, control: list[str], policy: str, variants: list[str] = ()) -> bool:
    """Whether a correct control variant gives a finding of the same kind on prog: on its own run, or, for
    step-by-step variants, on prog's ops under a schedule search of its own (one more switch, collisions,
    from prog's schedule and from none). A switch is counted in steps, and the control's steps are not
    the buggy variant's (a fair rwlock takes more), so the same race sits at another step there: a
    design race both share is not the planted bug. With `variants` (the target's), the same check on
    prog minimised on them too: the raw input's extra ops and switches can hide a race the control shares."""
    from smmufuzz.exec.exhaustive import explore_collisions, explore_races
    from smmufuzz.fuzz.minimize import minimize
    from smmufuzz.prog.program import Program
    from smmufuzz.exec.runner import run_program
    if shared_design(findings, prog):
        return True
    kinds = {f.kind for f in findings}
    searched = explores(control)

    def shows(p) -> bool:
        if run_program(p, control, policy).findings:
            return True
        if not searched:
            return False
        bases = [p] + ([Program(p.config, p.ops, ())] if p.schedule else [])
        return any(f.kind in kinds for v in control for base in bases
                   for search in (explore_races, explore_collisions)
                   for _p, f in search(base, v, CONTROL_SCHEDULES, policy).findings)

    if shows(prog):
        return True
    if not (variants and searched):
        return False
    try:
        small, f_small = minimize(prog, list(variants), policy, budget=CONTROL_MINIMIZE)
    except ValueError:
        return False
    if small != prog and (shared_design([f_small], small) or shows(small)):
        return True
    # a small race: the control under every schedule with as many switches as the finding needed (the quick
    # searches above add one switch at a time and can miss a three-switch race both variants share)
    if small.schedule and len(small.ops) <= CONTROL_EXHAUSTIVE_OPS:
        from smmufuzz.exec.exhaustive import explore
        bare = Program(small.config, small.ops, ())
        return any(f.kind in kinds for v in control
                   for _p, f in explore(bare, v, len(small.schedule), policy, CONTROL_EXHAUSTIVE).findings)
    return False


def shared_design(findings, prog) -> bool:
    """Every finding is a known design finding of its variant's family (known_findings.py, matched as if the
    variant were correct): the correct siblings share that race, whether or not a control's own bounded
    search meets it again (a three-switch design race often escapes it), so it exposes no planted bug."""
    from smmufuzz.known_findings import known_finding
    from smmufuzz.variants.registry import VARIANTS
    return bool(findings) and all(f.variant in VARIANTS and
                                  known_finding(f, prog, VARIANTS[f.variant].family, False) is not None
                                  for f in findings)


def input_name(prefix: str, prog) -> str:
    """A program's name as a fuzz input: `prefix` + sha1 of its bytes."""
    import hashlib

    from smmufuzz.prog.codec import encode
    return prefix + hashlib.sha1(encode(prog)).hexdigest()


def _write_input(prefix: str, prog) -> None:
    """Save a program as a fuzz input named by its content (input_name)."""
    from smmufuzz.prog.codec import encode
    _write_atomic(input_name(prefix, prog), encode(prog))


def _write_atomic(path: str, data: bytes) -> None:
    """Write a file a campaign may read while the worker runs: whole or not at all."""
    tmp = f"{os.path.dirname(path) or '.'}/.tmp-{os.path.basename(path)}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def race_pairs(prog) -> dict:
    """What a program offers a race search: each pair (i, j) of an op and the next op on a common domain, by
    kind (op kind, the next op's kind, whether they already run on different contexts). A program with a kind
    fewer than PAIR_TRIES earlier searched programs had is searched first, those pairs' collisions first
    (race_queue.py)."""
    from smmufuzz.exec.exhaustive import _colliding_pairs
    ops = prog.ops
    return {(i, j): (ops[i].kind, ops[j].kind, ops[i].ctx != ops[j].ctx) for i, j in _colliding_pairs(prog)}


def race_steps(prog, res, variants: list[str], policy: str, artifacts: str | None, observe=None,
               writers: dict | None = None, prefer: frozenset = frozenset()):
    """The fuzz target's quick race searches (exhaustive.py), so that the fuzzer has to find the racing
    ops, not also the instant: for a concurrent input, schedules with one more switch (at most
    RACE_SCHEDULES per variant, earliest steps first); for any input, a sample of COLLIDE_SCHEDULES
    programs running an op inside its predecessor's window from another context. A program giving a
    finding is written as its own input beside libFuzzer's artifacts (the raw input alone replays clean),
    input_name(artifacts + "crash-race-", found) (`artifacts` None: not written);
    `observe(program)` after each run. Then, with `writers` (the lock writers learned so far), the
    collisions of the program completed with a writer after a reader of a rwlock (complete.py).
    `prefer`: the pairs (i, j) whose collisions go first. A generator yielding after every run
    (race_queue.py spreads it over executions); returns (found program, its result) or None."""
    from smmufuzz.exec.complete import iter_completions
    from smmufuzz.exec.exhaustive import iter_collisions, iter_races
    from smmufuzz.exec.runner import run_program
    budget = race_budget(prog)
    for v, run in zip(variants, res.runs):
        ex = None
        if prog.concurrent():
            ex = yield from iter_races(prog, v, budget, policy, run.trace, observe=observe)
        if not (ex and ex.findings):
            ex = yield from iter_collisions(prog, v, min(budget, COLLIDE_SCHEDULES), policy, run.trace,
                                            observe=observe, prefer=prefer)
        if not ex.findings and writers is not None:
            ex = yield from iter_completions(prog, v, policy, ex.trace or run.trace, writers, observe)
        if ex and ex.findings:
            found = ex.findings[0][0]
            if artifacts is not None:
                _write_input(f"{artifacts}crash-race-", found)
            return found, run_program(found, variants, policy)
    return None


def _race(prog, res, variants: list[str], policy: str, artifacts: str | None, observe=None,
          writers: dict | None = None):
    """race_steps, run to its end (triage's search of one crash input)."""
    from smmufuzz.exec.exhaustive import drain
    return drain(race_steps(prog, res, variants, policy, artifacts, observe, writers))


RACE_OF = "race-of-"       # beside the artifacts: race-of-<sha1 of the crash input> names the crash-race-* twin


def race_twin_of(crash_path: str) -> str | None:
    """The crash-race-* input a spread search found while libFuzzer ran the crash input at `crash_path`
    (its race-of-* note), if there is one: the raw input is not the program that gave the finding."""
    d, name = os.path.split(crash_path)
    try:
        with open(os.path.join(d, RACE_OF + name.split("-", 1)[-1])) as f:
            twin = os.path.join(d, f.read().strip())
    except OSError:
        return None
    return twin if os.path.exists(twin) else None


def _kernel_preload(target_variants: list[str], argv: list[str], custom_mutator: bool = False) -> None:
    """Targets with kernel C: an instrumented library (SMMUFUZZ_KERNEL_INSTRUMENT=1) needs atheris's libFuzzer
    runtime preloaded (with `custom_mutator`, atheris's custom mutator too: session.fuzzer_preload), so
    re-execute with LD_PRELOAD once; then load the libraries before fuzzing starts (their edge counters
    register at load)."""
    from smmufuzz.kernel import session
    from smmufuzz.variants.registry import kernel_builds
    needs = kernel_builds(target_variants)
    if not needs:
        return
    if os.environ.get(session.ENV_WORKERS_INSTRUMENT) == "1":
        os.environ[session.ENV_INSTRUMENT] = "1"
    if os.environ.get(session.ENV_INSTRUMENT) == "1":
        pre = session.fuzzer_preload(custom_mutator)
        if pre is None:
            os.environ.pop(session.ENV_INSTRUMENT, None)       # no runtime: the plain build, no C edges
        elif pre not in os.environ.get("LD_PRELOAD", ""):
            env = dict(os.environ, LD_PRELOAD=":".join(x for x in (pre, os.environ.get("LD_PRELOAD")) if x))
            os.execve(argv[0], argv, env)
        # loaded now; the custom mutator (a Python extension) is no library for this process's children (clang)
        os.environ["LD_PRELOAD"] = ":".join(x for x in os.environ.get("LD_PRELOAD", "").split(":")
                                            if x and "custom_mutator." not in os.path.basename(x))
    session.prepare(needs, log=None)


def one_input(target_variants: list[str], policy: str, artifacts: str = "./", corpus: str | None = None,
              tally=None, clock: str | None = None, control: list[str] = (), keep_going: bool = False):
    """The fuzz target's function of one input: decode the bytes, run the target's variants (and, for seed-002
    targets, search the input's schedules), raise FindingError on a finding that is neither tolerated (`tally`,
    a campaign's known findings) nor shown by a correct `control`. With `keep_going` (a campaign's worker), a
    finding that is not UNEXPECTED is saved as libFuzzer saves a crash input (crash-<sha1>) and learnt by the
    tally, and the worker carries on: a restart costs seconds of instrumented start-up, and a target with
    planted bugs finds them every few seconds. `smmufuzz replay` of the input saved under a name without .txt
    runs the same program (load.py)."""
    from smmufuzz.exec import feature_cov
    from smmufuzz.prog.codec import decode
    from smmufuzz.fuzz.race_queue import RaceQueue
    from smmufuzz.exec.runner import run_program
    from smmufuzz.exec.sched import DEFAULT_PREEMPTIONS
    if tally is None:
        from smmufuzz.fuzz.tolerated import Tally
        tally = Tally(frozenset(), None)       # no known findings: every finding is raised
    calls = [0]
    searches_races = explores(target_variants)
    writers: dict = {}                  # lock name -> op kinds seen taking it exclusive (complete.py)
    raced_clean: set = set()            # programs whose race search found nothing (runs are deterministic)
    ran_clean: set = set()              # programs whose own run gave no finding: a repeat gives none either
    raced_pairs: dict = {}              # race pair kind -> programs with it queued first so far
    queue = RaceQueue()

    def keep_fresh(found) -> None:
        """A searched schedule that reached an interleaving or cache shape this process had not seen is
        written to the corpus directory, which libFuzzer re-reads (-reload): the next switch is
        searched from there."""
        if feature_cov.take_fresh() and corpus:
            _write_input(os.path.join(corpus, "sched-"), found)

    def search(prog, res, prefer):
        """race_steps of one input; a clean end is remembered (many byte strings decode to one program)."""
        found = yield from race_steps(prog, res, target_variants, policy, None, keep_fresh, writers, prefer)
        if found is None:
            if len(raced_clean) >= RACED_CLEAN_MAX:
                raced_clean.clear()
            raced_clean.add(prog)
        return found

    def test_one_input(data: bytes) -> None:
        tally.maybe_flush()
        if clock:
            calls[0] += 1
            if calls[0] == 1:
                with open(clock, "a") as f:
                    f.write(f"first {time.time()}\n")
        prog = decode(data)
        found = None
        feature_cov.take_fresh()
        if prog in ran_clean:           # another byte string of a program already run clean (about 9% of a
            res = None                  # hybrid invs campaign's inputs): the same verdict, nothing new to cover
        else:
            res = run_program(prog, target_variants, policy, keep_log=False)   # triage re-runs with the trace
            if not res.findings:
                if len(ran_clean) >= RAN_CLEAN_MAX:
                    ran_clean.clear()
                ran_clean.add(prog)
        if searches_races:
            queue.ran(len(target_variants))     # a repeat too: the searches keep their pace per input (docs/bench.md)
            if res is not None and not res.findings and len(prog.schedule) < DEFAULT_PREEMPTIONS \
                    and prog not in raced_clean:
                pairs = {ij: k for ij, k in race_pairs(prog).items() if raced_pairs.get(k, 0) < PAIR_TRIES}
                if queue.offer(search(prog, res, frozenset(pairs)), feature_cov.take_fresh() or bool(pairs)):
                    for k in set(pairs.values()):
                        raced_pairs[k] = raced_pairs.get(k, 0) + 1
            found = queue.advance() if res is None or not res.findings else None
            if found:
                prog, res = found
        if res is None:
            return
        if res.findings and not tally.tolerate(res.findings, prog) \
                and not (control and control_shows(prog, res.findings, control, policy, target_variants)):
            import hashlib
            if found and artifacts is not None:     # libFuzzer saves this input: save and name the program that
                _write_input(f"{artifacts}crash-race-", prog)   # gave it (only now: one the control rules out
                _write_atomic(f"{artifacts}{RACE_OF}{hashlib.sha1(data).hexdigest()}",     # is no crash)
                              (os.path.basename(input_name(f"{artifacts}crash-race-", prog)) + "\n").encode())
            if clock:
                with open(clock, "a") as f:
                    f.write(f"found {time.time()} {calls[0]}\n")
            if keep_going and artifacts is not None and tally.learn(res.findings, prog):
                _write_atomic(f"{artifacts}crash-{hashlib.sha1(data).hexdigest()}", data)   # the campaign triages it
                return
            raise FindingError("\n".join(f.text() for f in res.findings) + "\n--- program ---\n" + prog.text())

    return test_one_input


def hybrid_mutator(target_variants: list[str]):
    """The hybrid mutator for a target: where inputs get schedule searches (explores), fewer and shorter
    generated programs (RACE_GEN_*: a race needs few ops, every op costs scheduler steps and more pairs to
    search) with more resource-aware ops, and another CPU's op on the domain of an invalidation in flight; of
    any length otherwise."""
    from smmufuzz.prog import mutator
    if explores(target_variants):
        return mutator.HybridMutator(gen_ops=mutator.RACE_GEN_OPS, gen_floor=mutator.RACE_GEN_FLOOR,
                                     gen_live=mutator.RACE_GEN_LIVE, gen_partner=mutator.RACE_GEN_PARTNER,
                                     gen_long=mutator.RACE_GEN_LONG)
    return mutator.HybridMutator()


def import_instrumented(plugins: tuple = ()) -> None:
    """Import the variants and the feature buckets (and `plugins`) under atheris' coverage instrumentation,
    the emulator and UNINSTRUMENTED left plain (emulator_modules); switch the cache-shape features on. Must
    come before anything imports them: a module imported before this block is not instrumented at all (the
    registry imports every variant and the emulator). The harness, imported later, stays uninstrumented.
    atheris matches `include` by top-level package, so a module the variants first import inside the block
    is instrumented unless excluded by name: smmufuzz.kernel's glue (intended) and prog.ops and prog.latitude
    (the op table and the header's latitude: not on the hot path, under 0.1% of an invs profile).
    SMMUFUZZ_FEATURES (all, edges, cache, sched) keeps only some feature classes beside the edges, and
    SMMUFUZZ_INSTRUMENT=all instruments the emulator too, for benchmark ablations."""
    import importlib

    import atheris
    plain = UNINSTRUMENTED + emulator_modules(os.environ.get("SMMUFUZZ_INSTRUMENT", "variants"))
    with atheris.instrument_imports(include=["smmufuzz.reference", "smmufuzz.variants",
                                             "smmufuzz.exec.feature_cov", *plugins],
                                    exclude=plain):
        for mod in ("smmufuzz.reference.smmu", "smmufuzz.variants.registry", "smmufuzz.exec.feature_cov",
                    *plain, *plugins):
            importlib.import_module(mod)
    select_features()


def emulator_modules(instrument: str) -> list[str]:
    """The emulator's modules left uninstrumented, by SMMUFUZZ_INSTRUMENT: every one for `variants` (the
    default: edges come from the code under test; the SMMU states that matter to the search are feature_cov's
    cache shapes), none beyond UNINSTRUMENTED for `all` (the emulator's edges too, as before 2026-12-04).
    The seed-002 bench with and without them (docs/bench.md): 36/36 found against 33/36, the same executions
    to exposure, 143 against 102 exec/s."""
    if instrument not in ("all", "variants"):
        raise SystemExit(f"SMMUFUZZ_INSTRUMENT={instrument!r}: one of variants, all")
    if instrument == "all":
        return []
    import pkgutil

    import smmufuzz.reference as ref
    return [f"smmufuzz.reference.{m.name}" for m in pkgutil.iter_modules(ref.__path__)]


def select_features() -> None:
    """The feature classes counted beside the edges: both, unless SMMUFUZZ_FEATURES (an ablation knob for
    benchmarks, docs/bench.md) names fewer."""
    from smmufuzz.exec import feature_cov
    features = os.environ.get("SMMUFUZZ_FEATURES", "all")
    if features not in FEATURE_SETS:
        raise SystemExit(f"SMMUFUZZ_FEATURES={features!r}: one of {', '.join(FEATURE_SETS)}")
    if "cache" in FEATURE_SETS[features]:
        feature_cov.collect_cache_shapes()
    feature_cov.collect_interleavings("sched" in FEATURE_SETS[features])


FEATURE_SETS = {"all": ("cache", "sched"), "edges": (), "cache": ("cache",), "sched": ("sched",)}


def main(target_variants: list[str], policy: str, argv: list[str], plugins: tuple = (),
         mutator: str = "default") -> None:
    from smmufuzz.fuzz.lifeline import watch_campaign
    watch_campaign()                    # a campaign's worker (or a -fork job of one) dies with the campaign
    import_instrumented(plugins)
    _kernel_preload(target_variants, argv, mutator == "hybrid")   # may re-execute with libFuzzer preloaded
    import atheris
    from smmufuzz.fuzz.tolerated import KEEP_GOING_ENV, from_environment
    artifacts = next((a.split("=", 1)[1] for a in argv if a.startswith("-artifact_prefix=")), "./")
    corpus = next((a for a in argv[1:] if not a.startswith("-") and os.path.isdir(a)), None)
    if any(a.startswith("-merge") for a in argv):
        corpus = None           # `corpus merge` (-merge=1): the destination gets only what libFuzzer adds
    control = [v for v in os.environ.get("SMMUFUZZ_CONTROL", "").split(",") if v]
    test_one_input = one_input(target_variants, policy, artifacts, corpus, from_environment(),
                               os.environ.get("SMMUFUZZ_CLOCK"), control, os.environ.get(KEEP_GOING_ENV) == "1")

    kwargs = {}
    if mutator == "hybrid":
        kwargs["custom_mutator"] = hybrid_mutator(target_variants)
    elif mutator != "default":
        raise ValueError(f"unknown mutator {mutator!r}")
    atheris.Setup(argv, test_one_input, **kwargs)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1].split(","), sys.argv[2], [sys.argv[0]] + sys.argv[3:])
