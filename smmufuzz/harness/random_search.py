"""Blind random search: random byte strings decoded to programs and run in-process, no feedback."""

import random
import time

from .codec import decode
from .runner import Finding, run_program


def random_search(variants: list[str], seconds: float, seed: int, policy: str = "max-cache",
                  max_len: int = 600, control: list[str] | None = None) -> tuple[Finding | None, float, int]:
    """Run random programs until one gives a finding (that the `control` variants, if any, do not
    also give) or `seconds` pass. Returns (first finding or None, seconds to it or spent, programs run).
    Deterministic given seed."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    execs = 0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return None, elapsed, execs
        data = rng.randbytes(rng.randrange(2, max_len + 1))
        res = run_program(decode(data), variants, policy)
        execs += 1
        if res.findings and not (control and run_program(res.program, control, policy).findings):
            return res.findings[0], time.perf_counter() - t0, execs
