#!/usr/bin/env python3
"""How often does one generated program expose a race on a step-by-step (seed-002) variant, under the fuzz
target's own schedule search?  (issue 18 items 6 and 8: why the fuzzer does or does not find a race.)

    python scripts/race_exposure.py --variant invs:merged --control invs:merged-ats-order --programs 2000 --seed 1

Each program is what the hybrid mutator generates for a race target (generate.py with mutator.RACE_GEN_OPS ops,
RACE_GEN_LIVE resource-aware ops). It is run as the fuzz target runs an input, and then searched to the end as
fuzz_target.race_steps does (one more switch, collisions, completions with the writers learned so far), without
the race queue's share (which only spreads the same runs over executions). An exposure is a finding the
`--control` variants do not also give (fuzz_target.control_shows, as the bench counts). Prints P(exposure), the
program runs spent per exposure (input runs plus searched schedules: the queue gives the search at most a third
of all runs, so libFuzzer's executions per exposure are about 1.5x that), and how many programs have the op
shapes the race needs (`--shape`). Deterministic given --seed.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smmufuzz.prog import mutator  # noqa: E402
from smmufuzz.exec.exhaustive import drain  # noqa: E402
from smmufuzz.fuzz.fuzz_target import control_shows, race_steps  # noqa: E402
from smmufuzz.prog.generate import GEN_FAULT, generate  # noqa: E402
from smmufuzz.prog.program import touched_domains  # noqa: E402
from smmufuzz.exec.runner import run_program  # noqa: E402


def shape(prog) -> dict:
    """Op shapes of the ATS races (docs/invs-ats-race.md; race_no_ats_rwlock.txt): an unmap (any invalidating
    op) followed, on a domain it touches, by an attach or pci_ats; the same on another context; ATS on in the
    config."""
    inval = {"unmap", "unmap_fast", "sync", "flush_all", "dma_unmap", "fq_timeout"}
    doms = touched_domains(prog.ops)
    out = {"ats-config": prog.config.ats, "ats-on": any(op.kind == "ats" and op.args[1] for op in prog.ops)}
    pair = other = False
    for i, op in enumerate(prog.ops):
        if op.kind not in inval:
            continue
        for j in range(i + 1, len(prog.ops)):
            if prog.ops[j].kind in ("attach", "ats", "detach") and doms[i] & doms[j]:
                pair = True
                other |= prog.ops[j].ctx != op.ctx
    out["unmap-then-attach/ats/detach"] = pair
    out["... on another context"] = other
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", required=True)
    ap.add_argument("--control", default="", help="comma-separated correct variants (bench's --control)")
    ap.add_argument("--programs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gen-ops", type=int, default=mutator.RACE_GEN_OPS)
    ap.add_argument("--live", type=float, default=mutator.RACE_GEN_LIVE)
    ap.add_argument("--partner", type=float, default=getattr(mutator, "RACE_GEN_PARTNER", 0.0))
    ap.add_argument("--long", type=float, default=getattr(mutator, "RACE_GEN_LONG", 0.0),
                    help="share of programs generated with generate()'s own settings (mutator.RACE_GEN_LONG)")
    ap.add_argument("--faults", type=float, default=GEN_FAULT,
                    help="share of allocating calls with a fail_nth before them (generate.GEN_FAULT)")
    ap.add_argument("--policy", default="max-cache")
    ap.add_argument("--show", type=int, default=2, help="print this many exposing programs")
    ap.add_argument("--budget", type=int, default=0,
                    help="schedules per search (one more switch, and collisions) instead of the fuzz target's "
                         "RACE_SCHEDULES / COLLIDE_SCHEDULES: what a larger search would find")
    ap.add_argument("--stale-tail", type=int, default=None,
                    help="exhaustive.STALE_TAIL instead of its value (0: no stale-load conflict window)")
    ap.add_argument("--nest-runs", type=int, default=None,
                    help="exhaustive.NEST_RUNS instead of its value (SMMUFUZZ_NEST_RUNS, else 16; 0: off)")
    args = ap.parse_args(argv)
    if args.nest_runs is not None:
        from smmufuzz.exec import exhaustive
        exhaustive.NEST_RUNS = args.nest_runs
    if args.stale_tail is not None:
        from smmufuzz.exec import exhaustive
        exhaustive.STALE_TAIL = args.stale_tail
    if args.budget:
        from smmufuzz.fuzz import fuzz_target
        fuzz_target.RACE_SCHEDULES = fuzz_target.COLLIDE_SCHEDULES = args.budget
    control = [v for v in args.control.split(",") if v]
    variants = [args.variant]
    rng = random.Random(args.seed)
    runs = exposed = 0
    shapes: dict = {}
    kinds: dict = {}
    writers: dict = {}
    t0 = time.perf_counter()
    for n in range(args.programs):
        if args.long and rng.random() < args.long:
            prog = generate(rng, faults=args.faults)
        else:
            prog = generate(rng, args.gen_ops, args.live, args.partner, args.faults)
        for k, v in shape(prog).items():
            shapes[k] = shapes.get(k, 0) + bool(v)
        res = run_program(prog, variants, args.policy, keep_log=False)
        runs += 1
        found = None
        if res.findings:
            found = prog, res
        else:
            count = [0]
            found = drain(race_steps(prog, res, variants, args.policy, None, lambda p: count.__setitem__(0, count[0] + 1),
                                     writers))
            runs += count[0]
        if found is None:
            continue
        p, r = found
        if control and control_shows(p, r.findings, control, args.policy, variants):
            continue
        exposed += 1
        kinds[r.findings[0].kind] = kinds.get(r.findings[0].kind, 0) + 1
        if exposed <= args.show:
            print(f"--- exposure {exposed} (program {n}): {r.findings[0].kind}\n{p.text()}")
    secs = time.perf_counter() - t0
    print(f"variant {args.variant}, control {control or '-'}, seed {args.seed}: {args.programs} generated programs "
          f"(<= {args.gen_ops} ops, live {args.live}, partner {args.partner}, faults {args.faults}), {runs} program runs, "
          f"{secs:.0f} s")
    print(f"exposed by {exposed} ({exposed / args.programs:.2%}); runs per exposure "
          f"{runs / exposed if exposed else float('inf'):.0f}; kinds {kinds}")
    for k, v in shapes.items():
        print(f"  {k}: {v} ({v / args.programs:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
