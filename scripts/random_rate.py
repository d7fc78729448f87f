#!/usr/bin/env python3
"""How often a blind random program exposes each variant's bug, and so how many executions the bench's random
mode needs on average: its programs are independent, so executions to exposure are geometric with mean 1/p.
A three-seed median of random mode is three draws of that; this is its expectation.

    python scripts/random_rate.py VARIANT [VARIANT ...] [--programs N] [--seed S] [--generated] [--control auto|none|V]

Each variant runs N programs of `random_search`'s stream (random_program, seeded S), in-process; an exposure is
a finding the variant's correct control (bench.control_for, as `smmufuzz bench --control auto`) does not also
give. Prints exposures, p with a 95% Wilson interval, the mean executions 1/p with its interval, and the median
(the smallest n with 1 - (1 - p)^n >= 1/2).
"""

import argparse
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def median(p: float) -> str:
    """The median of executions to the first exposure when each exposes with probability p (geometric)."""
    if p <= 0:
        return "-"
    if p >= 1:
        return "1"
    return f"{math.ceil(math.log(0.5) / math.log(1 - p)):,}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--generated", action="store_true", help="generate.py's programs instead of random bytes")
    ap.add_argument("--control", default="auto")
    args = ap.parse_args()
    from smmufuzz.exec.runner import run_program
    from smmufuzz.fuzz.fuzz_target import control_shows
    from smmufuzz.fuzz.random_search import random_program
    from smmufuzz.tools.bench import control_for
    from smmufuzz.variants.registry import VARIANTS
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        sys.exit(f"random_rate.py: unknown variant(s) {', '.join(unknown)}")
    print(f"{args.programs} {'generated' if args.generated else 'random'} programs per variant, seed {args.seed}")
    print("| variant | exposures | p (95% interval) | mean executions 1/p (95% interval) | median executions | s |")
    print("|---|---:|---|---|---:|---:|")
    for name in args.variants:
        control = (control_for(name) if args.control == "auto" else [] if args.control == "none"
                   else args.control.split(","))
        rng = random.Random(args.seed)
        hits, t0 = 0, time.perf_counter()
        for _ in range(args.programs):
            res = run_program(random_program(rng, args.generated), [name], "max-cache")
            if res.findings and not (control and control_shows(res.program, res.findings, control, "max-cache")):
                hits += 1
        lo, hi = wilson(hits, args.programs)
        inv = lambda x: f"{1 / x:,.0f}" if x > 0 else "inf"  # noqa: E731
        print(f"| `{name}` | {hits} | {hits / args.programs:.4f} ({lo:.4f}-{hi:.4f}) | "
              f"{inv(hits / args.programs) if hits else 'over ' + format(args.programs, ',')} ({inv(hi)}-{inv(lo)}) "
              f"| {median(hits / args.programs)} | {time.perf_counter() - t0:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
