"""The bug-zoo benchmark: time and executions to first exposure of each buggy variant from nothing,
per search mode, over K seeds (one run at a time; not a test).

Modes: `default` (atheris, libFuzzer's mutators + our dictionary, empty corpus), `hybrid` (the same with
the structure-aware custom mutator), `random` (random byte strings decoded and run in-process, no
feedback), `generate` (generate.py's programs, in-process, no feedback) and `hypothesis` (a Hypothesis stateful machine over the same ops). Atheris times run from the
first input to the finding (start-up and instrumentation are excluded and reported apart); the in-process
modes time their own loop. Every run has the same cap. A finding counts as an exposure only if the
variant's correct control (control_for) does not give one on the same program: a finding shared with a
correct sibling is not the planted bug. Every mode's module is imported up front:
Hypothesis draws constants from the loaded modules, so a seed repeats only with the same modules loaded.
"""

import os
import tempfile
import time
from dataclasses import asdict, dataclass

from ..variants.registry import VARIANTS, target
from ..fuzz.fuzz import fuzz_target
from ..fuzz.random_search import random_search
from .stateful import hypothesis_search

MODES = ("default", "hybrid", "random", "generate", "hypothesis")
REPRO_BUDGET = 400      # runs to minimise an in-process mode's exposing program


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
    program: str = ""       # the finding's minimised program (text form, schedule included)

    @property
    def exec_per_sec(self) -> float:
        return self.execs / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "exec_per_sec": round(self.exec_per_sec, 1)}


def control_for(name: str) -> list[str]:
    """The correct variant a finding must not also show: the same driver with the legacy gather rule,
    eager PTE cleaning, iommupt's fixed gather_range_pages (B), the unpatched kernel tree for a patched one
    (kc-patched:X -> kc:X, kc-core-patched:X -> kc-core:X, kc-full-patched:X -> kc-full:X), else the nearest
    correct registered base class of the variant's factory, else mainline."""
    fam, _, rest = name.partition(":")
    if fam in ("kc-patched", "kc-core-patched", "kc-full-patched"):
        return [f"{fam[:-len('-patched')]}:{rest}"]
    if fam == "gather":
        return [f"gather:legacy:{rest.split(':')[-1]}"]
    if fam == "pte-sync":
        return ["pte-sync:eager"]
    if fam in ("pt", "pt-fq"):
        return [f"{fam}:B"]
    if fam == "invs":          # the same array code with the posted or merged design (same instances/domains)
        if rest.endswith(":2smmu"):
            return ["invs:merged:2smmu"]
        if rest.endswith(":nest"):
            return ["invs:merged:nest"]
        return ["invs:v9"] if rest in ("writer-no-irqsave", "v9-fair-rwlock") else ["invs:merged"]
    def key(cls):          # factories built per call (pt_variant) compare by name
        return cls.__module__, cls.__qualname__
    by_factory = {key(v.factory): v.name for v in VARIANTS.values() if not v.buggy}
    for cls in VARIANTS[name].factory.__mro__[1:]:
        if key(cls) in by_factory:
            return [by_factory[key(cls)]]
    return ["smmuv3"]


def _atheris(mode: str, name: str, seed: int, cap: int, policy: str, plugins: tuple, control: list[str]) -> Exposure:
    with tempfile.TemporaryDirectory(prefix="smmufuzz-bench-") as d:
        clock = os.path.join(d, "clock")
        env = {"SMMUFUZZ_CLOCK": clock, "SMMUFUZZ_CONTROL": ",".join(control)}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        t0 = time.time()
        try:
            r = fuzz_target(name, target(name), cap, seed, d, False, policy, [], quiet=True, plugins=plugins,
                            mutator=mode)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
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
        return Exposure(mode, name, seed, True, ts - first, calls, kind, first - t0, r.findings[0][2].text()
                        if r.findings else "")
    spent = max(0.0, t0 + r.seconds - first)
    return Exposure(mode, name, seed, False, spent, r.execs, None, first - t0)


def expose(mode: str, name: str, seed: int, cap: int, policy: str = "max-cache", plugins: tuple = (),
           control: list[str] | None = None) -> Exposure:
    """One run: `mode` against variant `name` alone, from nothing, for at most `cap` seconds; a finding
    the `control` variants also give does not count (and the search goes on)."""
    control = control or []
    if mode in ("default", "hybrid"):
        return _atheris(mode, name, seed, cap, policy, plugins, control)
    if mode in ("random", "generate"):
        s = random_search([name], cap, seed, policy, control=control, generated=mode == "generate")
    elif mode == "hypothesis":
        s = hypothesis_search([name], cap, seed, policy, control=control)
    else:
        raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    return Exposure(mode, name, seed, s.finding is not None, s.seconds, s.execs, s.finding.kind if s.finding else None,
                    program=_reproducer(s.program, name, policy, control) if s.program else "")


def _reproducer(prog, name: str, policy: str, control: list[str]) -> str:
    """An in-process mode's exposing program, minimised (untimed, REPRO_BUDGET runs) unless the control
    also gives a finding on the smaller one; as text."""
    from ..fuzz.minimize import minimize
    from ..exec.runner import run_program
    small, _f = minimize(prog, [name], policy, budget=REPRO_BUDGET)
    if control and run_program(small, control, policy).findings:
        small = prog
    return small.text()


def run_bench(variants: list[str], modes: list[str], seeds: list[int], cap: int, policy: str = "max-cache",
              plugins: tuple = (), progress=print, after_variant=None, controls: dict | None = None) -> list[Exposure]:
    """Every (variant, mode, seed), one at a time; `after_variant(results so far)` after each variant
    (the CLI rewrites the results files then, so a long run that is stopped keeps what it measured)."""
    out = []
    for name in variants:
        for mode in modes:
            for seed in seeds:
                e = expose(mode, name, seed, cap, policy, plugins, (controls or {}).get(name))
                out.append(e)
                what = f"found {e.kind}" if e.found else "NOT FOUND"
                progress(f"  {mode:<10} {name:<30} seed {seed}: {what} in {e.seconds:.2f}s, {e.execs} execs "
                         f"({e.exec_per_sec:.0f} exec/s" + (f", start-up {e.startup:.1f}s)" if e.startup else ")"))
        if after_variant:
            after_variant(out)
    return out
