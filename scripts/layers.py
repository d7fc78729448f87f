#!/usr/bin/env python3
"""Where a fixed workload's CPU time goes, by layer, and how fast the whole could get if the emulator cost nothing.

    python scripts/layers.py [--targets smmuv3,invs,...] [--modes plain,instr]
    python scripts/layers.py --raw PROFILE.txt [--within FUNCTION]   # a py-spy --format raw profile

Runs scripts/speed.py's workloads (the same programs, the same plain and instrumented modes) once under cProfile
in a child process, and sums each function's own time into the layer of the module it lives in:

  emulator  smmufuzz/reference/ (the SMMU, its memory, walks, caches and the oracle: what a compiled core could
            replace);
  models    smmufuzz/variants/ and smmufuzz/kernel/ (the code under test, instrumented in a fuzz worker);
  harness   everything else of smmufuzz (runner, scheduler, codec, features, fuzz target).

A built-in (dict.get, sorted, atheris' hooks) is charged to the layer of the function that called it. The
ceiling is total / (total - emulator): the speed-up of the whole if the emulator took no time at all, which no
compiled core reaches. cProfile's own cost per call inflates call-heavy code alike in every layer, so shares are
what to read, not the seconds.

--raw reads samples instead (`py-spy record -p <worker pid> -d 45 -r 200 --format raw -o PROFILE.txt`): each
sample is charged to the layer of its innermost smmufuzz frame (so libFuzzer's own C time, under the worker's
call of atheris.Fuzz, counts as harness; the campaign's watcher threads are skipped), and the share of samples
inside a schedule search (fuzz_target.race_steps) is printed too. --within FUNCTION keeps only the samples with
a frame of that function.
"""

import argparse
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile

from speed import CONCURRENT, SEQUENTIAL, workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = ("emulator", "models", "harness", "other")


# a path inside the package: its last "smmufuzz/" followed by one of the package's own folders or modules (so a
# checkout or a virtual environment in a folder named smmufuzz is not taken for the package)
_PKG = os.path.join(ROOT, "smmufuzz")
_SUBPACKAGES = sorted(d for d in os.listdir(_PKG) if os.path.isfile(os.path.join(_PKG, d, "__init__.py")))
_IN_PACKAGE = re.compile(r"(?:^|/)smmufuzz/(?:(" + "|".join(map(re.escape, _SUBPACKAGES)) + r")/|[A-Za-z_]\w*\.py$)")


def layer_of(filename: str) -> str:
    """The layer of a module by its path (other: the standard library, atheris, built-ins with no caller)."""
    found = list(_IN_PACKAGE.finditer(filename))
    if not found:
        return "other"
    top = found[-1].group(1)
    if top == "reference":
        return "emulator"
    if top in ("variants", "kernel"):
        return "models"
    return "harness"


def by_layer(st: pstats.Stats) -> dict:
    """Own seconds per layer; a built-in's time split over its callers' layers, atheris' hooks counted apart."""
    out = dict.fromkeys(LAYERS, 0.0)
    out["atheris"] = 0.0
    for (fn, _ln, name), (_cc, _nc, tt, _ct, callers) in st.stats.items():
        if fn != "~":
            out[layer_of(fn)] += tt
            continue
        hook = "atheris" in name or "_trace" in name
        charged = 0.0
        for (cfn, _cln, _cname), ctup in callers.items():
            share = ctup[2]
            out[layer_of(cfn)] += share
            charged += share
            if hook:
                out["atheris"] += share
        out["other"] += max(0.0, tt - charged)
    return out


def frame_layer(frame: str) -> str | None:
    """The layer of one py-spy frame, "function (path:line)"; None outside smmufuzz."""
    lay = layer_of(frame[frame.rfind("(") + 1:].rsplit(":", 1)[0])
    return None if lay == "other" else lay


def ceiling(total: float, emulator: float) -> str:
    return f"{total / (total - emulator):4.2f}x" if total > emulator else "unbounded"


def raw_profile(path: str, within: str | None = None) -> None:
    counts = dict.fromkeys(LAYERS, 0)
    race = 0
    try:
        with open(path) as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        samples = [ln.rsplit(" ", 1) for ln in lines]
        samples = [(stack, int(n)) for stack, n in samples]
    except (OSError, ValueError) as e:
        sys.exit(f"layers.py: {path}: not a py-spy raw profile ({e})")
    for stack, n in samples:
        if "watch_campaign" in stack or "lifeline" in stack:
            continue
        frames = stack.split(";")
        if within and not any(fr.split(" (", 1)[0].endswith(within) for fr in frames):
            continue
        lay = next((x for x in map(frame_layer, reversed(frames)) if x), "other")
        counts[lay] += n
        race += n if "race_steps" in stack else 0
    total = sum(counts.values())
    if not total:
        sys.exit(f"layers.py: {path}: no samples")
    shares = "  ".join(f"{k} {100 * counts[k] / total:4.1f}%" for k in LAYERS)
    print(f"{total} samples  {shares}  (in schedule searches {100 * race / total:4.1f}%)  ceiling "
          f"{ceiling(total, counts['emulator'])}")


def child(target: str, mode: str) -> None:
    run_all, n = workload(target, mode)
    prof = cProfile.Profile()
    prof.enable()
    run_all()
    prof.disable()
    print(json.dumps({"programs": n, "layers": by_layer(pstats.Stats(prof))}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(SEQUENTIAL + CONCURRENT))
    ap.add_argument("--modes", default="plain,instr")
    ap.add_argument("--raw", help="a py-spy raw profile to read instead of running the workloads")
    ap.add_argument("--within", help="with --raw: only the samples with a frame of this function (e.g. run_all: a "
                                     "workload's own samples, without its start-up)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.raw:
        raw_profile(a.raw, a.within)
        return 0
    if a.child:
        child(*a.child)
        return 0
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONHASHSEED="0")
    print("own CPU time by layer under cProfile (built-ins charged to their caller's layer); ceiling = the "
          "speed-up if the emulator took no time")
    for mode in a.modes.split(","):
        for target in a.targets.split(","):
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", target, mode], env=env,
                               capture_output=True, text=True, cwd=tempfile.gettempdir())
            if p.returncode:
                sys.exit(f"layers.py: the run of {target} ({mode}) failed:\n{p.stderr[-2000:]}")
            r = json.loads(p.stdout.strip().splitlines()[-1])
            lay = r["layers"]
            total = sum(lay[k] for k in LAYERS)
            shares = "  ".join(f"{k} {100 * lay[k] / total:4.1f}%" for k in LAYERS)
            hooks = f"  (atheris hooks {100 * lay['atheris'] / total:4.1f}%)" if mode == "instr" else ""
            print(f"  {mode:5s}  {target:16s} {total:6.2f} s  {shares}{hooks}  ceiling "
                  f"{ceiling(total, lay['emulator'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
