#!/usr/bin/env python3
"""Issue 17's comparison of two bench modes, from `smmufuzz bench` results files: per variant, each mode's
executions to exposure per seed and their median (a run that did not find the bug counts as over the cap),
whether mode A's median is at most mode B's, and whether A found in every run a bug B found at all. Where both
medians are over the cap, A's is at most B's if A found the bug in as many runs or more, and in one at least.

    python scripts/criterion.py RESULTS.json [RESULTS.json ...] [--a hybrid] [--b random] [--all-buggy]
                                [--measure execs|seconds] [--a-startup N]

Runs are pooled over the files by (mode, variant, seed); a later file's run replaces an earlier one's.
--all-buggy: every variant the registry marks buggy must have runs of both modes (else an error naming
the missing ones), and the table covers exactly them.
--measure seconds compares seconds to exposure instead of executions; --a-startup N leaves mode A's first N
executions uncounted (2 for the libFuzzer modes: the empty input and "\n" it runs before the first generated or
mutated one).
"""

import argparse
import json
import os
import statistics
import sys

INF = float("inf")


def pooled(paths: list[str]) -> dict:
    """(mode, variant) -> {seed: run}, later files winning."""
    runs: dict = {}
    for p in paths:
        try:
            with open(p) as f:
                data = json.load(f)
            for r in data["runs"]:
                run = {"found": bool(r["found"]), "execs": int(r["execs"]), "seconds": float(r["seconds"])}
                runs.setdefault((r["mode"], r["variant"]), {})[r["seed"]] = run
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            sys.exit(f"criterion.py: {p}: not a bench results file ({type(e).__name__}: {e})")
    return runs


def column(by_seed: dict, measure: str = "execs", startup: int = 0) -> tuple[list, float]:
    """Executions (or seconds) per seed (None: not found) in seed order, and their median with a miss over the
    cap; `startup` executions are not counted."""
    if measure == "seconds":
        vals = [r["seconds"] if r["found"] else None for _s, r in sorted(by_seed.items())]
    else:
        vals = [max(0, r["execs"] - startup) if r["found"] else None for _s, r in sorted(by_seed.items())]
    return vals, statistics.median(x if x is not None else INF for x in vals)


def at_most(av: list, am: float, bv: list, bm: float) -> bool:
    """Is A's median at most B's? Both over the cap: if A found the bug in at least as many runs, and in one at
    least (neither finding it is no win)."""
    if am != bm:
        return am < bm
    fa, fb = (sum(x is not None for x in v) for v in (av, bv))
    return am != INF or fa > fb or fa == fb > 0


def cell(vals: list, med: float) -> str:
    found = sum(x is not None for x in vals)
    each = ", ".join("-" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:,.2f}" for x in vals)
    return f"{found}/{len(vals)}: {each} ({'over cap' if med == INF else f'{med:,.2f}'.rstrip('0').rstrip('.')})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--a", default="hybrid")
    ap.add_argument("--b", default="random")
    ap.add_argument("--all-buggy", action="store_true")
    ap.add_argument("--measure", choices=("execs", "seconds"), default="execs")
    ap.add_argument("--a-startup", type=int, default=0)
    args = ap.parse_args()
    if args.a_startup and args.measure == "seconds":
        sys.exit("criterion.py: --a-startup counts executions; it has no meaning with --measure seconds")
    runs = pooled(args.results)
    if args.all_buggy:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from smmufuzz.variants.registry import VARIANTS
        names = [v.name for v in VARIANTS.values() if v.buggy]
        missing = [f"{m}:{n}" for n in names for m in (args.a, args.b) if (m, n) not in runs]
        if missing:
            sys.exit(f"criterion.py: no runs for {', '.join(missing)}")
    else:
        names = [n for (m, n) in runs if m == args.a and (args.b, n) in runs]
        if not names:
            sys.exit(f"criterion.py: no variant has runs of both {args.a} and {args.b}")
    uneven = [n for n in names if set(runs[(args.a, n)]) != set(runs[(args.b, n)])]
    if uneven:
        sys.exit(f"criterion.py: {args.a} and {args.b} ran different seeds on {', '.join(uneven)}")
    what = args.measure + (f" after {args.a_startup}" if args.a_startup else "")
    print(f"| variant | {args.a}: found, {what} per seed (median) | {args.b}: found, {args.measure} per seed (median) "
          f"| {args.a} <= {args.b} | {args.a} finds in every run what {args.b} finds |")
    print("|---|---|---|:---:|:---:|")
    wins = every = 0
    for n in names:
        av, am = column(runs[(args.a, n)], args.measure, args.a_startup)
        bv, bm = column(runs[(args.b, n)], args.measure)
        ok = at_most(av, am, bv, bm)
        all_found = not any(x is not None for x in bv) or all(x is not None for x in av)
        wins += ok
        every += all_found
        print(f"| `{n}` | {cell(av, am)} | {cell(bv, bm)} | {'yes' if ok else 'no'} | {'yes' if all_found else 'no'} |")
    print(f"\n{args.a} <= {args.b} on {wins} of {len(names)}; {args.a} finds in every run each bug {args.b} "
          f"finds on {every} of {len(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
