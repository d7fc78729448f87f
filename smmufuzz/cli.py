"""The `smmufuzz` command line: list, show, replay, race, fuzz, report, minimize, matrix, cost, cov, bench, findings,
corpus, oss-fuzz."""

import argparse
import os
import random
import sys
from dataclasses import replace

from .variants.registry import DEFAULT_TARGETS, TARGETS, VARIANTS, UnknownName, target as resolve_target
from .kernel.session import KernelError
from .tools import kernel_cli
from .prog.contract import CONTRACT_TAG
from .prog.load import TEXT_SUFFIX, LoadError, is_text_path, load_program, misread_note, program_files
from .fuzz.findings_store import StoreError
from .exec.runner import MAX_LEAVES_PER_OP, MAX_LEAVES_PER_PROGRAM, SKIPPED, run_program

POLICIES = ("max-cache", "none")


class UsageError(Exception):
    pass


def _variants_for(args, header: dict | None = None) -> list[str]:
    if header:
        note = kernel_cli.session.from_header(header)
        if note:
            print(note, file=sys.stderr)
    if getattr(args, "variant", None):
        names = [v for v in args.variant.split(",") if v]
        for n in names:
            from .variants.registry import variant
            variant(n)
    else:
        t = getattr(args, "target", None) or (header or {}).get("target") or DEFAULT_TARGETS[0]
        names = resolve_target(t)
    kernel_cli.prepare(names)
    return names


def cmd_list(args) -> int:
    print("targets:")
    for t, vs in TARGETS.items():
        mark = " (default)" if t in DEFAULT_TARGETS else ""
        print(f"  {t:<24} {', '.join(vs)}{mark}")
    from .variants.registry import KERNEL_TARGETS
    from .kernel.session import available, patch_specs
    print("kernel-C targets (need a kernel tree: smmufuzz kernel setup" + ("" if available() else "; none found") + "):")
    for t in KERNEL_TARGETS:
        print(f"  {t:<24} {', '.join(resolve_target(t))}")
    if patch_specs():
        print("  kc-patched:* variants apply: " + ", ".join(patch_specs()))
    print("variants:")
    for v in VARIANTS.values():
        print(f"  {v.name:<24} {'BUGGY  ' if v.buggy else 'correct'}  [{v.family}] {v.summary}")
    from .known_findings import KNOWN_FINDINGS
    print("known design findings (labelled so, not UNEXPECTED, on correct variants; smmufuzz/known_findings.py):")
    for k in KNOWN_FINDINGS:
        print(f"  {k.name:<24} {k.kind} on [{k.family}] at {', '.join(sorted(k.at_ops))}: {k.reproducer}")
    return 0


def _note_misread(path: str) -> None:
    note = misread_note(path)
    if note:
        print(f"smmufuzz: note: {note}", file=sys.stderr)


def cmd_show(args) -> int:
    prog, header = load_program(args.file)
    _note_misread(args.file)
    for k, v in header.items():
        print(f"# {k}: {v}")
    sys.stdout.write(prog.text())
    return 0


def _load_plugins(mods) -> None:
    import importlib
    sys.path.insert(0, os.getcwd())
    for m in mods:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise UsageError(f"--load {m}: {e}") from None


def _replay_one(path: str, prog, variants: list[str], args) -> list:
    """Run one program on `variants` and print its findings, worst verdict first, and notes; returns
    [(finding, verdict)]."""
    from .exec.verdict import classify, counts, counts_text, sort_key
    res = run_program(prog, variants, args.policy)
    judged = sorted(((f, classify(f, prog)) for f in res.findings), key=lambda fv: sort_key(fv[1].cls))
    if res.findings:
        print(f"{path}: {len(res.findings)} finding(s) on {', '.join(variants)} "
              f"({counts_text(counts(v.cls for _f, v in judged))})")
        for f, v in judged:
            print(f"  {v.text()}:\n  " + f.text().replace("\n", "\n  "))
        if args.verbose:
            sys.stdout.write("  program:\n    " + prog.text().rstrip().replace("\n", "\n    ") + "\n")
            for r in res.runs:
                if r.trace is not None and r.finding is not None and r.trace.log:
                    print(f"  schedule trace on {r.name} (step context: what it did):")
                    for step, ctx, label in r.trace.log:
                        print(f"    #{step} {ctx}: {label}")
    else:
        print(f"{path}: clean on {', '.join(variants)}")
    for r in res.runs:
        if r.stopped is not None:
            print(f"  note: {r.name} stopped at op {r.stopped}: {r.returns[-1].split(': ', 1)[1]}")
    skipped = [i for i, r in enumerate(res.runs[0].returns) if r == SKIPPED]
    if skipped:
        print(f"  note: op(s) {', '.join(map(str, skipped))} skipped: over the program budget "
              f"({MAX_LEAVES_PER_OP} leaves per map, {MAX_LEAVES_PER_PROGRAM} per program)")
    for why, ops in _contract_skips(res.runs[0].returns).items():
        print(f"  note: op(s) {', '.join(map(str, ops))} skipped: {why.split(': ', 1)[1]}")
    return judged


def cmd_replay(args) -> int:
    """A file, or every file below a directory. In a directory, a file that cannot be replayed (unreadable,
    a syntax error, a header naming an unknown target) is reported in one line on stderr and the rest run;
    exit 1 if any finding, 2 if nothing could be replayed (or on a usage error)."""
    _load_plugins(args.load)
    if args.variant or args.target:
        _variants_for(args)                  # a bad --variant/--target is a usage error before any output
    files = program_files(args.path)
    if not files:
        raise LoadError(f"{args.path}: no programs")
    one = not os.path.isdir(args.path)
    if one:
        _note_misread(args.path)
    from .exec.verdict import UNEXPECTED, counts, counts_text
    replayed = 0
    judged: list[tuple[str, object, object]] = []
    bad: list[str] = []
    for path in files:
        try:
            prog, header = load_program(path)
            variants = _variants_for(args, header)
        except (LoadError, UnknownName) as e:
            if one:
                raise
            msg = e.args[0] if e.args else str(e)
            if isinstance(e, UnknownName):     # the header names it: one short line, not the registry
                msg = f"{path}: {msg.split(' (known:')[0]} in its header"
            bad.append(path)
            print(f"smmufuzz: skipped {msg}", file=sys.stderr, flush=True)
            continue
        judged += [(path, f, v) for f, v in _replay_one(path, prog, variants, args)]
        replayed += 1
    unexpected = [(p, f) for p, f, v in judged if v.cls == UNEXPECTED]
    if unexpected and replayed > 1:
        print(f"UNEXPECTED findings (on variants marked correct):")
        for p, f in unexpected:
            print(f"  {p}: {f.kind} in variant {f.variant} at op {f.op_index}: {f.op_text}")
    print(f"{replayed} program(s), {len(judged)} finding(s): {counts_text(counts(v.cls for _p, _f, v in judged))}"
          + (f"; {len(bad)} file(s) skipped (see the lines above)" if bad else ""))
    if not replayed:
        raise LoadError(f"{args.path}: none of its {len(files)} file(s) could be replayed")
    return 1 if judged else 0


def _contract_skips(returns: list) -> dict[str, list[int]]:
    """The ops a run did not issue because the caller contract forbids them (prog/contract.py), by reason."""
    out: dict[str, list[int]] = {}
    for i, r in enumerate(returns):
        if isinstance(r, str) and r.startswith("skipped: ") and r.endswith(CONTRACT_TAG):
            out.setdefault(r, []).append(i)
    return out


def _campaign_targets(names: list[str]) -> list[tuple[str, list[str]]]:
    """Targets named on the command line (`all`: every registered target), without repeats."""
    out: list[str] = []
    for n in names or DEFAULT_TARGETS:
        for t in (TARGETS if n == "all" else [n]):
            if t not in out:
                out.append(t)
    resolved = [(t, resolve_target(t)) for t in out]
    kernel_cli.prepare([v for _t, vs in resolved for v in vs])
    return resolved


def cmd_fuzz(args) -> int:
    from .fuzz.campaign import Campaign, Options
    from .fuzz.corpus_lock import CorpusBusy
    from .fuzz.findings_store import DiskFull
    _load_plugins(args.load)
    resolved = _campaign_targets(args.targets)
    kernel_cli.prepare_fuzz([v for _t, vs in resolved for v in vs])
    if args.workers < 1 or args.time < 1:
        raise UsageError("--workers and --time must be at least 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    try:
        os.makedirs(args.corpus, exist_ok=True)
    except OSError as e:
        raise LoadError(f"{args.corpus}: cannot create corpus directory: {e.strerror}") from None
    opts = Options(resolved, args.time, args.workers, seed, args.corpus, args.seeds, args.policy, args.libfuzzer,
                   tuple(args.load), tolerate_known=not args.triage_all,
                   mutator=args.mutator)
    try:
        s = Campaign(opts).run()
    except CorpusBusy as e:
        raise UsageError(str(e)) from None
    except DiskFull as e:
        raise UsageError(f"{e}; campaign stopped (corpus and findings written so far are kept)") from None
    except KeyboardInterrupt:          # before the campaign's own handler is installed (or after it is gone)
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        raise UsageError(f"{e.filename or args.corpus}: {e.strerror or e}") from None
    if s["interrupted"]:
        print("interrupted: corpus and findings kept; rerun to resume")
        return 130
    if args.strict:
        return 1 if s["distinct_findings"] else 0
    return 1 if s["verdicts"]["unexpected"] else 0


def cmd_report(args) -> int:
    from .fuzz.report import render
    if not os.path.exists(os.path.join(args.campaign_dir, "summary.json")):
        raise LoadError(f"{args.campaign_dir}: no summary.json (not a campaign directory)")
    print(render(args.campaign_dir))
    return 0


def cmd_race(args) -> int:
    """Every schedule of one program up to K preemptions, per variant (exhaustive mode)."""
    from .exec.exhaustive import explore, report
    _load_plugins(args.load)
    prog, header = load_program(args.file)
    if not prog.concurrent():
        raise UsageError(f"{args.file}: no op runs on another context (cpu1:, irq0:, irq1:), nothing to interleave")
    total = 0
    for v in _variants_for(args, header):
        ex = explore(replace(prog, schedule=()), v, args.preemptions, args.policy, args.limit)
        print(report(ex, args.policy))
        total += len(ex.findings)
    return 1 if total else 0


def cmd_cost(args) -> int:
    from .tools.cost import cost_table, format_fq, format_table, fq_table
    if args.fq:
        print(format_fq(fq_table("ABC", args.fq)))
        return 0
    from .variants.registry import variant
    variants = args.variants.split(",")
    for v in variants:
        variant(v)
    print(format_table(cost_table(variants, [int(x) for x in args.pages.split(",")])))
    return 0


def cmd_matrix(args) -> int:
    from .tools.matrix import format_markdown, gather_matrix
    text = format_markdown(gather_matrix(args.corpus))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Seed 000: core gather rule x driver\n\nGenerated by `smmufuzz matrix --out "
                    f"{args.out}` from the committed corpus.\n\n" + text + "\n")
    return 0


def cmd_minimize(args) -> int:
    from .fuzz.minimize import minimize, reproducer_text
    if args.out and not is_text_path(args.out):
        raise UsageError(f"--out {args.out}: a reproducer is a text program, its name must end in {TEXT_SUFFIX}")
    _load_plugins(args.load)
    prog, header = load_program(args.file)
    variants = _variants_for(args, header)
    target = args.target or header.get("target") or ",".join(variants)
    try:
        small, finding = minimize(prog, variants, args.policy, budget=args.budget)
    except ValueError as e:
        raise UsageError(f"{args.file}: {e}") from None
    text = reproducer_text(small, finding, target, f"smmufuzz minimize {args.file} ({len(prog.ops)} -> "
                           f"{len(small.ops)} ops)", variants=variants, policy=args.policy)
    out = args.out or os.path.join("corpus", "regressions", target.replace(":", "_").replace(",", "+"),
                                   os.path.basename(args.file).rsplit(".", 1)[0] + ".txt")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    print(f"# written to {out}")
    return 0


def cmd_bench(args) -> int:
    from .variants.registry import variant
    from .tools.bench import MODES, control_for, run_bench
    from .tools.bench_report import format_text, summarize, write_results
    _load_plugins(args.load)
    names = [v for v in args.variants.split(",") if v] if args.variants else [v.name for v in VARIANTS.values()
                                                                               if v.buggy]
    for n in names:
        variant(n)
    if args.control == "auto":
        controls = {n: control_for(n) for n in names}
    elif args.control == "none":
        controls = {}
    else:                       # named: every benched variant's finding must not show on these
        named = [c for c in args.control.split(",") if c]
        for c in named:
            if variant(c).buggy:
                raise UsageError(f"--control {c}: a control must be a variant marked correct")
        controls = {n: named for n in names}
    kernel_cli.prepare(names)
    kernel_cli.prepare_fuzz(names + [c for cs in controls.values() for c in cs])
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise UsageError(f"unknown mode {bad[0]!r} (known: {', '.join(MODES)})")
    if "hypothesis" in modes:
        try:
            import hypothesis  # noqa: F401
        except ImportError:
            raise UsageError("mode hypothesis needs Hypothesis: pip install -e '.[test]'") from None
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    command = "smmufuzz " + " ".join(args.argv)
    print(f"smmufuzz bench: {len(names)} variant(s) x modes {', '.join(modes)} x seeds {seeds}; cap {args.cap}s "
          f"per run; policy {args.policy}; results in {args.out}", flush=True)
    for n, c in controls.items():
        print(f"  control for {n}: {', '.join(c)} (a finding it also gives does not count)")
    meta = {"command": command.strip(), "cap": args.cap, "seeds": seeds, "policy": args.policy, "modes": modes,
            "variants": names, "controls": controls}
    results = run_bench(names, modes, seeds, args.cap, args.policy, tuple(args.load),
                        progress=lambda line: print(line, flush=True),
                        after_variant=lambda res: write_results(args.out, res, meta), controls=controls)
    print(format_text(summarize(results)))
    paths = write_results(args.out, results, meta)
    print("written: " + ", ".join(paths))
    return 0


def cmd_cov(args) -> int:
    import tempfile
    from .fuzz.coverage_report import load, measure, report
    _load_plugins(args.load)
    if args.variant:
        _variants_for(args)
    elif args.target:
        resolve_target(args.target)
    dirs = args.corpus or [d for d in ("corpus/seeds", "corpus/regressions",
                                       os.path.join("corpus", "fuzz", args.target or DEFAULT_TARGETS[0]))
                           if os.path.isdir(d)]
    files = [f for d in dirs for f in program_files(d)]
    if not files:
        raise LoadError(f"{', '.join(dirs) or 'corpus'}: no programs")
    with tempfile.TemporaryDirectory() as tmp:
        data_file = args.save or os.path.join(tmp, ".coverage")
        done, bad = measure(files, data_file, args.target, args.variant, args.policy, tuple(args.load))
        for path, why in bad:
            print(f"skipped {why}" if why.startswith(path) else f"skipped {path}: {why}")
        meta = {"target": args.target, "variant": args.variant, "corpus": [os.path.abspath(d) for d in dirs]}
        print(report(load(data_file), done, since=args.since, html=args.html, meta=meta))
    return 0


def cmd_findings_export(args) -> int:
    from .fuzz.findings_store import DiskFull
    from .fuzz.sarif import export, load_records, verdict_of
    from .exec.verdict import counts, counts_text
    sarif, junit = args.sarif, args.junit
    if not sarif and not junit:
        sarif, junit = (os.path.join(args.corpus, n) for n in ("findings.sarif", "findings.junit.xml"))
    if sarif == "-" and junit == "-":
        raise UsageError("--sarif - and --junit -: only one of them can go to standard output")
    records = load_records(args.corpus)
    try:
        written = export(args.corpus, sarif, junit, records)
    except DiskFull as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename}: cannot write: {e.strerror}") from None
    c = counts(verdict_of(r) for r in records)
    print(f"{len(records)} finding(s) in {os.path.join(args.corpus, 'findings')} ({counts_text(c)}"
          + (f", {c['unclassified']} unclassified" if c.get("unclassified") else "") + "): written "
          + ", ".join("standard output" if p == "-" else p for p in written),
          file=sys.stderr if "-" in written else sys.stdout)
    return 0


def cmd_findings_merge(args) -> int:
    from .fuzz.corpus_lock import CorpusBusy
    from .fuzz.findings_merge import merge
    from .fuzz.findings_store import DiskFull, load_records
    from .fuzz.sarif import verdict_of
    from .exec.verdict import counts, counts_text
    try:
        r = merge(args.sources, args.into)
    except (CorpusBusy, DiskFull) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or args.into}: {e.strerror or e}") from None
    records = load_records(args.into)
    print(f"merged {r.sources} findings store(s) into {os.path.join(args.into, 'findings')}: {len(r.new)} new, "
          f"{len(r.updated)} already there (hits added); {len(records)} finding(s) in all "
          f"({counts_text(counts(verdict_of(rec) for rec in records))})")
    return 0


def cmd_corpus_merge(args) -> int:
    from .fuzz.corpus_lock import CorpusBusy
    from .fuzz.corpus_merge import check_sources, merge, print_merge, source_targets
    from .fuzz.findings_store import DiskFull
    _load_plugins(args.load)
    check_sources(args.sources, args.into)
    if args.target:
        resolve_target(args.target)
        if not any(os.path.isdir(os.path.join(s, "fuzz", args.target)) for s in args.sources):
            raise LoadError(f"no source has a corpus for {args.target} (fuzz/{args.target}/)")
        names = [args.target]
    else:
        names = source_targets(args.sources)
        if not names:
            raise LoadError(f"{', '.join(args.sources)}: no target corpus (fuzz/<target>/) to merge")
    targets = []
    for name in names:
        try:
            variants = resolve_target(name)
            kernel_cli.prepare_fuzz(variants)
        except (UnknownName, *KernelError) as e:
            if args.target:
                raise
            print(f"smmufuzz: skipped fuzz/{name}: {e.args[0] if e.args else e}", file=sys.stderr)
            continue
        targets.append((name, variants))
    try:
        done = merge(args.sources, args.into, targets, args.policy, tuple(args.load), progress=print_merge)
    except (CorpusBusy, DiskFull) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or args.into}: {e.strerror or e}") from None
    print(f"merged {len(args.sources)} corpus root(s) into {os.path.join(args.into, 'fuzz')}: "
          f"{sum(r.after - r.before for r in done)} input(s) added, {sum(r.after for r in done)} in all, "
          f"over {len(done)} target(s)")
    return 0


def cmd_oss_fuzz_export(args) -> int:
    from .fuzz.oss_fuzz import ExportError, export, packaged_targets
    try:
        done = export(args.out, args.target or packaged_targets(), args.corpus)
    except ExportError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{e.filename or args.out}: {e.strerror or e}") from None
    for target, name, seeds in done:
        print(f"{name:<40} {target:<28} {seeds} seed input(s)")
    print(f"wrote {len(done)} fuzzer(s) into {args.out}: <name>.py, <name>_seed_corpus.zip, <name>.dict, "
          "<name>.options (kernel-C targets are not packaged)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smmufuzz", description="Differential fuzzing of IOMMU invalidation logic")
    sub = p.add_subparsers(dest="cmd", required=True)
    lst = sub.add_parser("list", help="targets and variants (and which are expected buggy)")
    lst.set_defaults(fn=cmd_list)
    s = sub.add_parser("show", help="print a program (raw fuzz input or text) as text")
    s.add_argument("file")
    s.set_defaults(fn=cmd_show)
    r = sub.add_parser("replay", help="run programs and print findings (exit 1 if any)")
    r.add_argument("path")
    r.add_argument("--target")
    r.add_argument("--variant", help="comma-separated variant names (overrides --target)")
    r.add_argument("--policy", choices=POLICIES, default="max-cache")
    r.add_argument("-v", "--verbose", action="store_true")
    r.add_argument("--load", action="append", default=[], metavar="MODULE",
                   help="import a module that registers extra variants (e.g. tests.broken_variants)")
    r.set_defaults(fn=cmd_replay)
    c = sub.add_parser("cost", help="PTE cache-maintenance cost of map / map_sg per variant (non-coherent walks)")
    c.add_argument("--variants", default="pte-sync:eager,pte-sync:deferred-fixed,pte-sync:deferred-v1,"
                   "pte-sync:coherent")
    c.add_argument("--pages", default="1,8,64,512")
    c.add_argument("--fq", type=int, metavar="N",
                   help="instead: invalidations per dma_unmap, strict vs DMA-FQ, for N 4K unmaps (seed 001)")
    c.set_defaults(fn=cmd_cost)
    mn = sub.add_parser("minimize", help="shrink a finding's program keeping its signature; write a reproducer")
    mn.add_argument("file")
    mn.add_argument("--target")
    mn.add_argument("--variant")
    mn.add_argument("--policy", choices=POLICIES, default="max-cache")
    mn.add_argument("--budget", type=int, default=2000, help="at most this many runs")
    mn.add_argument("--out", help="where to write the reproducer (default corpus/regressions/<target>/)")
    mn.add_argument("--load", action="append", default=[], metavar="MODULE")
    mn.set_defaults(fn=cmd_minimize)
    rc = sub.add_parser("race", help="run one concurrent program under every schedule up to K preemptions")
    rc.add_argument("file")
    rc.add_argument("--target")
    rc.add_argument("--variant", help="comma-separated variant names (overrides --target)")
    rc.add_argument("--preemptions", type=int, default=2, metavar="K")
    rc.add_argument("--limit", type=int, default=20000, help="at most this many schedules per variant")
    rc.add_argument("--policy", choices=POLICIES, default="max-cache")
    rc.add_argument("--load", action="append", default=[], metavar="MODULE")
    rc.set_defaults(fn=cmd_race)
    mx = sub.add_parser("matrix", help="seed-000 rule x driver outcome table from the corpus")
    mx.add_argument("--corpus", default="corpus")
    mx.add_argument("--out", help="also write the table (markdown) here")
    mx.set_defaults(fn=cmd_matrix)
    f = sub.add_parser("fuzz", help="fuzz targets with atheris/libFuzzer (libFuzzer flags after --)")
    f.add_argument("targets", nargs="*",
                   help=f"targets, or `all` (default: {', '.join(DEFAULT_TARGETS)})")
    f.add_argument("--time", type=int, default=60, help="wall-clock seconds in all (time-sliced over targets)")
    f.add_argument("--workers", type=int, default=1, help="libFuzzer processes at a time (one target each)")
    f.add_argument("--seed", type=int)
    f.add_argument("--corpus", default="corpus", help="corpus root (seeds/, fuzz/<target>, crashes/<target>, "
                   "findings/, regressions/<target>/, campaigns/)")
    f.add_argument("--no-seeds", dest="seeds", action="store_false", help="start from an empty corpus")
    f.add_argument("--triage-all", action="store_true",
                   help="stop and restart a worker on every crash input, even one that gives only known findings")
    f.add_argument("--strict", action="store_true",
                   help="exit 1 on any finding (default: only on an UNEXPECTED one, on a variant marked correct)")
    f.add_argument("--policy", choices=POLICIES, default="max-cache")
    f.add_argument("--load", action="append", default=[], metavar="MODULE",
                   help="import a module that registers extra variants")
    f.add_argument("--mutator", choices=("auto", "default", "hybrid"), default="auto",
                   help="hybrid: generated programs while the search is young, then op-level edits half the "
                   "time and libFuzzer's mutation otherwise; default: libFuzzer's mutation only; auto (the "
                   "default): hybrid")
    f.set_defaults(fn=cmd_fuzz)
    b = sub.add_parser("bench", help="time and executions to first exposure of each buggy variant, per search mode")
    b.add_argument("--variants", help="comma-separated variants (default: every variant marked buggy)")
    b.add_argument("--modes", default="default,hybrid,random,hypothesis",
                   help="comma-separated: default, hybrid, random, hypothesis")
    b.add_argument("--seeds", type=int, default=3, metavar="K", help="runs per mode and variant (seeds 1..K)")
    b.add_argument("--first-seed", type=int, default=1)
    b.add_argument("--cap", type=int, default=120, metavar="SECONDS", help="give up on a run after this long")
    b.add_argument("--out", default="bench-results", help="results directory (JSON, Markdown, SVG, HTML)")
    b.add_argument("--control", default="auto", metavar="auto|none|VARIANT[,VARIANT]",
                   help="a finding these correct variants also give on the same program does not count: auto "
                   "(the default), each variant's nearest correct sibling; VARIANT: named (e.g. for a plugin's "
                   "variants); none: every finding counts")
    b.add_argument("--policy", choices=POLICIES, default="max-cache")
    b.add_argument("--load", action="append", default=[], metavar="MODULE",
                   help="import a module that registers extra variants")
    b.set_defaults(fn=cmd_bench, argv=None)
    cv = sub.add_parser("cov", help="branch coverage of reference/ and variants/ over a corpus (replayed, "
                        "one context per input)")
    cv.add_argument("--target", help="run every input on this target (default: a reproducer's own, else "
                    f"{DEFAULT_TARGETS[0]})")
    cv.add_argument("--variant", help="comma-separated variant names (overrides --target)")
    cv.add_argument("--corpus", nargs="+", metavar="DIR",
                    help="directories or files (default: corpus/seeds, corpus/regressions, corpus/fuzz/<target>)")
    cv.add_argument("--html", metavar="DIR", help="write an HTML report (with the inputs that hit each line)")
    cv.add_argument("--save", metavar="FILE", help="save the coverage data (for a later --since)")
    cv.add_argument("--since", metavar="FILE", help="a saved data file: print what this corpus newly covers")
    cv.add_argument("--policy", choices=POLICIES, default="max-cache")
    cv.add_argument("--load", action="append", default=[], metavar="MODULE")
    cv.set_defaults(fn=cmd_cov)
    rp = sub.add_parser("report", help="re-render a campaign's report.html from its summary and time series")
    rp.add_argument("campaign_dir")
    rp.set_defaults(fn=cmd_report)
    fd = sub.add_parser("findings", help="the findings store: export as SARIF / JUnit XML, merge stores")
    fds = fd.add_subparsers(dest="findings_cmd", required=True)
    fe = fds.add_parser("export", help="SARIF 2.1.0 (code scanning) and JUnit XML (CI) from a corpus's findings/ "
                        "(default: both, as findings.sarif and findings.junit.xml in the corpus root)")
    fe.add_argument("--corpus", default="corpus", help="corpus root holding findings/ (default: corpus)")
    fe.add_argument("--sarif", metavar="FILE", help="write the SARIF log here (- for standard output)")
    fe.add_argument("--junit", metavar="FILE", help="write the JUnit XML here (- for standard output)")
    fe.set_defaults(fn=cmd_findings_export)
    fm = fds.add_parser("merge", help="merge the findings stores of other corpus roots (other machines, CI jobs) "
                        "into one: one record per signature, hits added up, the earliest first-seen kept")
    fm.add_argument("sources", nargs="+", metavar="SRC_ROOT", help="corpus roots holding findings/")
    fm.add_argument("--into", required=True, metavar="DIR", help="the corpus root to merge into (created if need be)")
    fm.set_defaults(fn=cmd_findings_merge)
    cp = sub.add_parser("corpus", help="the libFuzzer corpora: merge those of other corpus roots")
    cps = cp.add_subparsers(dest="corpus_cmd", required=True)
    cm = cps.add_parser("merge", help="merge the fuzz/<target>/ corpora of other corpus roots (other machines, CI "
                        "jobs) into one with libFuzzer's -merge=1: only inputs that add coverage are kept")
    cm.add_argument("sources", nargs="+", metavar="SRC_ROOT", help="corpus roots holding fuzz/<target>/")
    cm.add_argument("--into", required=True, metavar="DIR", help="the corpus root to merge into (created if need be)")
    cm.add_argument("--target", help="only this target's corpus (default: every target with one in a source)")
    cm.add_argument("--policy", choices=POLICIES, default="max-cache")
    cm.add_argument("--load", action="append", default=[], metavar="MODULE",
                    help="import a module that registers extra variants")
    cm.set_defaults(fn=cmd_corpus_merge)
    of = sub.add_parser("oss-fuzz", help="what ClusterFuzzLite / OSS-Fuzz build: standalone atheris fuzzers")
    ofs = of.add_subparsers(dest="oss_fuzz_cmd", required=True)
    oe = ofs.add_parser("export", help="per target: <name>_fuzzer.py, its seed corpus zip, dictionary and options "
                        "(.clusterfuzzlite/build.sh packages them)")
    oe.add_argument("--out", required=True, metavar="DIR")
    oe.add_argument("--target", action="append", metavar="T",
                    help="a target (repeatable; default: every target but the kernel-C ones)")
    from .fuzz.fuzz import SHIPPED_CORPUS
    oe.add_argument("--corpus", default=SHIPPED_CORPUS, metavar="ROOT",
                    help="corpus root whose seeds/ and regressions/ seed the fuzzers (default: this checkout's)")
    oe.set_defaults(fn=cmd_oss_fuzz_export)
    kernel_cli.add_commands(sub)
    for sp in (r, mn, rc, f, b, lst, cm):
        kernel_cli.add_options(sp)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "bench":
        args.argv = argv
    if args.cmd == "fuzz":
        args.libfuzzer = extra
    elif extra:
        parser.error("'--' is only for fuzz")
    try:
        kernel_cli.configure(args)
        return args.fn(args)
    except (UnknownName, LoadError, UsageError, StoreError, *KernelError) as e:
        msg = e.args[0] if e.args else str(e)
        print(f"smmufuzz: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
