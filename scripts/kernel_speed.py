#!/usr/bin/env python3
"""Per-program cost of a kernel-C variant vs its Python model on the same programs (issue 14, item 7).

    python scripts/kernel_speed.py [--programs N] [--seed S] [--rounds R] [--pairs smmuv3=kc:smmuv3,...]

Runs the same N random sequential programs (the fuzzer's decoder on seeded random bytes) on each variant,
interleaving the variants round by round so machine noise hits both alike; prints programs/s (median of
the rounds) and the ratio.
"""

import argparse
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])

from smmufuzz.harness.fidelity import random_programs  # noqa: E402
from smmufuzz.harness.runner import run_program  # noqa: E402
from smmufuzz.kernel import session  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pairs", default="smmuv3=kc:smmuv3,pte-sync:eager=kc:pte-sync")
    a = ap.parse_args()
    progs = list(random_programs(a.programs, a.seed))
    pairs = [p.split("=") for p in a.pairs.split(",")]
    session.prepare({"base"}, log=None)
    print(f"{len(progs)} programs (seed {a.seed}), median ops {statistics.median(len(p.ops) for p in progs)}, "
          f"{a.rounds} rounds, interleaved")
    for model, c in pairs:
        rates = {model: [], c: []}
        for _ in range(a.rounds):
            for v in (model, c):
                t0 = time.process_time()
                for p in progs:
                    run_program(p, [v], "max-cache")
                rates[v].append(len(progs) / (time.process_time() - t0))
        m, k = statistics.median(rates[model]), statistics.median(rates[c])
        print(f"  {model:<16} {m:8.1f} programs/s (CPU)   {c:<14} {k:8.1f} programs/s   C/model {k / m:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
