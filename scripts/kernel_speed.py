#!/usr/bin/env python3
"""Per-program cost of a kernel-C variant vs its Python model on the same programs (issue 14, item 7).

    python scripts/kernel_speed.py [--programs N] [--seed S] [--rounds R] [--pairs smmuv3=kc:smmuv3,...]
    python scripts/kernel_speed.py --instructions [--programs N]      # valgrind callgrind, noise-free

Runs the same N random sequential programs (the fuzzer's decoder on seeded random bytes) on each variant,
interleaving the variants round by round so machine noise hits both alike; prints programs/s (median of
the rounds) and the ratio. --instructions counts instructions instead (callgrind, N programs minus a
1-program run, so start-up cancels out): repeatable on a loaded machine.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0])

from smmufuzz.tools.fidelity import random_programs  # noqa: E402
from smmufuzz.exec.runner import run_program  # noqa: E402
from smmufuzz.kernel import session  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pairs", default="smmuv3=kc:smmuv3,pte-sync:eager=kc:pte-sync")
    ap.add_argument("--instructions", action="store_true", help="count instructions with valgrind callgrind")
    ap.add_argument("--run", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    pairs = [p.split("=") for p in a.pairs.split(",")]
    if a.run:                                   # one measured child: run N programs on one variant
        session.prepare({"base", "tree"}, log=None)
        for p in random_programs(int(a.run[1]), a.seed):
            run_program(p, [a.run[0]], "max-cache")
        return 0
    if a.instructions:
        return instructions(pairs, a.programs, a.seed)
    progs = list(random_programs(a.programs, a.seed))
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


def _callgrind(variant: str, n: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(d, 'cg')}",
                              sys.executable, __file__, "--seed", str(seed), "--run", variant, str(n)],
                             capture_output=True, text=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise SystemExit(f"valgrind failed: {out.strip().splitlines()[-1:]}")
    return int(m.group(1))


def instructions(pairs, n: int, seed: int) -> int:
    print(f"instructions per program over {n} programs (seed {seed}), callgrind, start-up subtracted")
    for model, c in pairs:
        per = {v: (_callgrind(v, n + 1, seed) - _callgrind(v, 1, seed)) / n for v in (model, c)}
        print(f"  {model:<16} {per[model] / 1e6:8.2f} M   {c:<14} {per[c] / 1e6:8.2f} M   C/model "
              f"{per[c] / per[model]:5.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
