#!/usr/bin/env python3
"""Benchmark: exec/s per target, and time/executions to first exposure of each known-buggy variant
from an empty corpus (median and range over K seeds). A benchmark script, not a test.

    python scripts/bench.py                       # every registered buggy variant, 3 seeds, 300 s cap
    python scripts/bench.py --load tests.broken_variants --variants test-no-iotlb-sync,test-no-leaf-clean
    python scripts/bench.py --throughput smmuv3 --time 60
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smmufuzz.harness.cli import _load_plugins  # noqa: E402
from smmufuzz.harness.fuzz import fuzz_target  # noqa: E402
from smmufuzz.variants.registry import VARIANTS, target  # noqa: E402


def exposure(name: str, seeds: list[int], cap: int, plugins: tuple) -> dict:
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            r = fuzz_target(name, target(name), cap, seed, d, False, "max-cache", [], quiet=True, plugins=plugins)
        found = [f for _p, f, _prog in r.findings]
        rows.append({"seed": seed, "found": bool(found), "seconds": round(r.seconds, 1), "execs": r.execs,
                     "kind": found[0].kind if found else None})
        print(f"  {name} seed {seed}: {'found ' + found[0].kind if found else 'NOT FOUND'} "
              f"in {r.seconds:.1f}s, {r.execs} execs", flush=True)
    hit = [x for x in rows if x["found"]]
    secs = [x["seconds"] for x in hit]
    return {"variant": name, "found": f"{len(hit)}/{len(rows)}",
            "median_s": statistics.median(secs) if secs else None,
            "range_s": [min(secs), max(secs)] if secs else None,
            "median_execs": statistics.median([x["execs"] for x in hit]) if hit else None, "runs": rows}


def throughput(name: str, seconds: int, seed: int, plugins: tuple) -> dict:
    with tempfile.TemporaryDirectory() as d:
        r = fuzz_target(name, target(name), seconds, seed, d, False, "max-cache", [], quiet=True, plugins=plugins)
    return {"target": name, "seconds": round(r.seconds, 1), "execs": r.execs, "exec_per_sec": r.exec_per_sec,
            "corpus": r.corpus_size, "findings": len(r.findings)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", help="comma-separated buggy variants (default: all registered buggy ones)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--cap", type=int, default=300, help="seconds per run before giving up")
    ap.add_argument("--throughput", help="comma-separated targets to measure exec/s on")
    ap.add_argument("--time", type=int, default=60)
    ap.add_argument("--load", action="append", default=[])
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    _load_plugins(a.load)
    out = {"exposure": [], "throughput": []}
    if a.throughput:
        for t in a.throughput.split(","):
            res = throughput(t, a.time, 1, tuple(a.load))
            print(f"{t}: {res['exec_per_sec']} exec/s ({res['execs']} execs in {res['seconds']}s, "
                  f"corpus {res['corpus']}, findings {res['findings']})", flush=True)
            out["throughput"].append(res)
    else:
        names = a.variants.split(",") if a.variants else [v.name for v in VARIANTS.values() if v.buggy]
        seeds = [int(s) for s in a.seeds.split(",")]
        print(f"{'variant':<28} {'found':>6} {'median s':>9} {'range s':>14} {'median execs':>13}")
        for n in names:
            res = exposure(n, seeds, a.cap, tuple(a.load))
            rng = f"{res['range_s'][0]}-{res['range_s'][1]}" if res["range_s"] else "-"
            print(f"{n:<28} {res['found']:>6} {str(res['median_s']):>9} {rng:>14} {str(res['median_execs']):>13}",
                  flush=True)
            out["exposure"].append(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
