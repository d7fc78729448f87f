"""The bug-zoo benchmark: time and executions to first exposure of each buggy variant from nothing,
per search mode, over K seeds (one run at a time; not a test).

Modes: `default` (atheris, libFuzzer's mutators + our dictionary, empty corpus), `hybrid` (the same with
the structure-aware custom mutator), `random` (random byte strings decoded and run in-process, no
feedback) and `hypothesis` (a Hypothesis stateful machine over the same ops). Atheris times run from the
first input to the finding (start-up and instrumentation are excluded and reported apart); the in-process
modes time their own loop. Every run has the same cap. Every mode's module is imported up front:
Hypothesis draws constants from the loaded modules, so a seed repeats only with the same modules loaded.
"""

import os
import tempfile
import time
from dataclasses import asdict, dataclass

from ..variants.registry import target
from .fuzz import fuzz_target
from .random_search import random_search
from .stateful import hypothesis_search

MODES = ("default", "hybrid", "random", "hypothesis")


@dataclass
class Exposure:
    mode: str
    variant: str
    seed: int
    found: bool
    seconds: float          # to the finding, or spent without one
    execs: int              # programs run up to the finding (or in all)
    kind: str | None = None
    startup: float = 0.0    # atheris: process start to first input

    @property
    def exec_per_sec(self) -> float:
        return self.execs / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "exec_per_sec": round(self.exec_per_sec, 1)}


def _atheris(mode: str, name: str, seed: int, cap: int, policy: str, plugins: tuple) -> Exposure:
    with tempfile.TemporaryDirectory(prefix="smmufuzz-bench-") as d:
        clock = os.path.join(d, "clock")
        old = os.environ.get("SMMUFUZZ_CLOCK")
        os.environ["SMMUFUZZ_CLOCK"] = clock
        t0 = time.time()
        try:
            r = fuzz_target(name, target(name), cap, seed, d, False, policy, [], quiet=True, plugins=plugins,
                            mutator=mode)
        finally:
            if old is None:
                os.environ.pop("SMMUFUZZ_CLOCK", None)
            else:
                os.environ["SMMUFUZZ_CLOCK"] = old
        marks = {}
        if os.path.exists(clock):
            with open(clock) as f:
                for line in f:
                    k, *v = line.split()
                    marks.setdefault(k, v)
    first = float(marks["first"][0]) if "first" in marks else t0
    kind = r.findings[0][1].kind if r.findings else None
    if "found" in marks:
        ts, calls = float(marks["found"][0]), int(marks["found"][1])
        return Exposure(mode, name, seed, True, ts - first, calls, kind, first - t0)
    spent = max(0.0, t0 + r.seconds - first)
    return Exposure(mode, name, seed, False, spent, r.execs, None, first - t0)


def expose(mode: str, name: str, seed: int, cap: int, policy: str = "max-cache", plugins: tuple = ()) -> Exposure:
    """One run: `mode` against variant `name` alone, from nothing, for at most `cap` seconds."""
    if mode in ("default", "hybrid"):
        return _atheris(mode, name, seed, cap, policy, plugins)
    if mode == "random":
        f, secs, n = random_search([name], cap, seed, policy)
    elif mode == "hypothesis":
        f, secs, n = hypothesis_search([name], cap, seed, policy)
    else:
        raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    return Exposure(mode, name, seed, f is not None, secs, n, f.kind if f else None)


def run_bench(variants: list[str], modes: list[str], seeds: list[int], cap: int, policy: str = "max-cache",
              plugins: tuple = (), progress=print, after_variant=None) -> list[Exposure]:
    """Every (variant, mode, seed), one at a time; `after_variant(results so far)` after each variant
    (the CLI rewrites the results files then, so a long run that is stopped keeps what it measured)."""
    out = []
    for name in variants:
        for mode in modes:
            for seed in seeds:
                e = expose(mode, name, seed, cap, policy, plugins)
                out.append(e)
                what = f"found {e.kind}" if e.found else "NOT FOUND"
                progress(f"  {mode:<10} {name:<30} seed {seed}: {what} in {e.seconds:.2f}s, {e.execs} execs "
                         f"({e.exec_per_sec:.0f} exec/s" + (f", start-up {e.startup:.1f}s)" if e.startup else ")"))
        if after_variant:
            after_variant(out)
    return out
