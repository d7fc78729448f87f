#!/usr/bin/env python3
"""Executions per second of the execution core on fixed workloads, this checkout against another commit.

    python scripts/speed.py [--baseline REF] [--rounds R] [--targets smmuv3,pte-sync,...] [--modes plain,instr]

Workloads (scripts/speed_workloads/*.txt.gz, text programs, fixed; --regen rewrites them from the seeded
decoder): 200 random 32-op sequential programs for smmuv3, pte-sync, gather:arm-smmu and pt-fq, and 100
concurrent programs of up to 32 ops for invs. Each measurement is a child process importing smmufuzz from
one checkout (this one, or a git worktree of REF made under /tmp), which parses the workload with its own
parser and runs every program:

  plain  run_program() on the target's variants, uninstrumented (the in-process cost);
  instr  the fuzz target's own function of one input (fuzz_target.one_input on the program's bytes, in that
         checkout's byte format) after atheris' instrumented imports, as a libFuzzer worker runs it: race
         searches of seed-002 targets and coverage features included.

Rounds interleave the checkouts so that machine noise hits both alike; CPU time (process_time) of the run,
start-up and parsing excluded; the median over rounds is printed with the ratio new/base.
"""

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

from _layout import layout  # scripts/: either package layout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = os.path.join(ROOT, "scripts", "speed_workloads")
SEQUENTIAL = ("smmuv3", "pte-sync", "gather:arm-smmu", "pt-fq")
CONCURRENT = ("invs",)
OPS, N_SEQ, N_CONC = 32, 200, 100
SEP = "# ---\n"


def workload_path(target: str) -> str:
    return os.path.join(WORKLOADS, target.replace(":", "_") + ".txt.gz")


def regen(seed: int) -> None:
    """Write the workloads: random bytes through the decoder, kept when they give OPS ops (truncated to OPS);
    concurrent ones for CONCURRENT targets, sequential ones otherwise."""
    sys.path.insert(0, ROOT)
    from dataclasses import replace

    decode = layout("prog.codec").decode
    os.makedirs(WORKLOADS, exist_ok=True)
    for target in SEQUENTIAL + CONCURRENT:
        rng = random.Random(f"{seed}:{target}")
        want_conc = target in CONCURRENT
        n = N_CONC if want_conc else N_SEQ
        progs = []
        while len(progs) < n:
            p = decode(rng.randbytes(rng.randrange(200, 800)))
            if len(p.ops) < OPS:
                continue
            p = replace(p, ops=p.ops[:OPS], schedule=tuple(s for s in p.schedule if s[0] < OPS))
            if p.concurrent() == want_conc:
                progs.append(p.text())
        with gzip.open(workload_path(target), "wt") as f:
            f.write(SEP.join(progs))
        print(f"wrote {len(progs)} programs to {workload_path(target)}")


def workload(target: str, mode: str):
    """The target's workload, ready to run in this process (smmufuzz from sys.path[0], the checkout under test):
    a function that runs every program and returns how many gave findings, and the number of programs."""
    if mode == "instr":
        ft = layout("fuzz.fuzz_target")
        if hasattr(ft, "import_instrumented"):
            ft.import_instrumented()                     # exactly what a fuzz worker instruments
        else:                                            # a checkout from before issue 16
            import importlib

            import atheris
            with atheris.instrument_imports(include=["smmufuzz.reference", "smmufuzz.variants",
                                                     "smmufuzz.harness.feature_cov"], exclude=ft.UNINSTRUMENTED):
                for mod in ("smmufuzz.reference.smmu", "smmufuzz.variants.registry",
                            "smmufuzz.harness.feature_cov", *ft.UNINSTRUMENTED):
                    importlib.import_module(mod)
            runner = layout("exec.runner")
            runner.CACHE_FEATURES = True
    parse = layout("prog.program").parse
    from smmufuzz.variants.registry import target as target_variants
    with gzip.open(workload_path(target), "rt") as f:
        progs = [parse(t) for t in f.read().split(SEP)]
    variants = target_variants(target)
    if mode == "instr":
        encode = layout("prog.codec").encode
        FindingError = layout("fuzz.fuzz_target").FindingError
        one_input = layout("fuzz.fuzz_target").one_input
        one = one_input(variants, "max-cache", artifacts=None)
        inputs = [encode(p) for p in progs]

        def run_all():
            found = 0
            for data in inputs:
                try:
                    one(data)
                except FindingError:
                    found += 1
            return found
    else:
        run_program = layout("exec.runner").run_program

        def run_all():
            return sum(1 for p in progs if run_program(p, variants, "max-cache").findings)
    return run_all, len(progs)


def child(target: str, mode: str) -> None:
    """One measurement in this process."""
    import time
    run_all, n = workload(target, mode)
    t0 = time.process_time()
    found = run_all()
    dt = time.process_time() - t0
    print(json.dumps({"programs": n, "seconds": dt, "findings": found}))


def checkout(ref: str) -> str:
    """A worktree of ref under the temp directory (reused)."""
    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", ref + "^{commit}"], capture_output=True,
                         text=True)
    if sha.returncode:
        sys.exit(f"speed.py: unknown commit {ref!r}")
    sha = sha.stdout.strip()
    path = os.path.join(tempfile.gettempdir(), f"smmufuzz-speed-{sha[:12]}")
    if not os.path.isdir(os.path.join(path, "smmufuzz")):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", path, sha], check=True,
                       capture_output=True)
    return path


def measure(code: str, target: str, mode: str) -> dict:
    env = dict(os.environ, PYTHONPATH=code, PYTHONHASHSEED="0")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", target, mode], env=env,
                       capture_output=True, text=True, cwd=tempfile.gettempdir())
    if p.returncode:
        sys.exit(f"speed.py: the run of {target} ({mode}) in {code} failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=None, help="commit to compare with (default: none, this checkout only)")
    ap.add_argument("--baseline-dir", default=None, help="a checkout directory to compare with (e.g. a build)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--targets", default=",".join(SEQUENTIAL + CONCURRENT))
    ap.add_argument("--modes", default="plain,instr")
    ap.add_argument("--regen", type=int, metavar="SEED", help="rewrite the workloads from this seed")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        sys.path.insert(0, os.environ["PYTHONPATH"])
        child(*a.child)
        return 0
    if a.regen is not None:
        regen(a.regen)
        return 0
    base = checkout(a.baseline) if a.baseline else a.baseline_dir
    codes = [("new", ROOT)] + ([("base", base)] if base else [])
    head = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip()
    print(f"new = this checkout ({head})" + (f", base = {a.baseline}" if a.baseline else "")
          + (f", base = {a.baseline_dir}" if a.baseline_dir and not a.baseline else "") + f"; {a.rounds} rounds, interleaved; programs/s of CPU time, median")
    for mode in a.modes.split(","):
        for target in a.targets.split(","):
            rates: dict[str, list[float]] = {name: [] for name, _ in codes}
            found: dict[str, int] = {}
            for _ in range(a.rounds):
                for name, code in codes:
                    r = measure(code, target, mode)
                    rates[name].append(r["programs"] / r["seconds"])
                    found[name] = r["findings"]
            med = {n: statistics.median(v) for n, v in rates.items()}
            line = f"  {mode:<6} {target:<16} new {med['new']:8.1f}/s ({found['new']} with findings)"
            if "base" in med:
                line += f"   base {med['base']:8.1f}/s ({found['base']})   new/base {med['new'] / med['base']:6.2f}x"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
