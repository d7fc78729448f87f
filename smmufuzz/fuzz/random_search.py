"""Search without feedback, in-process: blind random byte strings decoded to programs in the current byte
format (`random`: every op kind, the SMMU's latitude byte), or generated programs (generate.py, `generate`)."""

import random
import time
from typing import NamedTuple

from ..prog.codec import CURRENT_HEADER, decode
from ..prog.generate import generate
from ..prog.program import Program
from .fuzz_target import control_shows
from ..exec.runner import Finding, run_program


class Search(NamedTuple):
    """What an in-process search returns: the first finding (None: none within the time), seconds to it
    (or spent), programs run up to it, and the program that gave it."""
    finding: Finding | None
    seconds: float
    execs: int
    program: Program | None = None


def random_program(rng: random.Random, generated: bool = False, max_len: int = 600) -> Program:
    """The next program of the blind search: random bytes (2..max_len) after the current format's header,
    decoded, or (`generated`) generate.py's."""
    return generate(rng) if generated else decode(CURRENT_HEADER + rng.randbytes(rng.randrange(2, max_len + 1)))


def random_search(variants: list[str], seconds: float, seed: int, policy: str = "max-cache",
                  max_len: int = 600, control: list[str] | None = None,
                  generated: bool = False) -> "Search":
    """Run random programs (`generated`: generate.py's) until one gives a finding (that the `control`
    variants, if any, do not also give) or `seconds` pass. Returns (first finding or None, seconds to it
    or spent, programs run, the program that gave it). Deterministic given seed."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    execs = 0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return Search(None, elapsed, execs)
        prog = random_program(rng, generated, max_len)
        res = run_program(prog, variants, policy)
        execs += 1
        if res.findings and not (control and control_shows(res.program, res.findings, control, policy)):
            return Search(res.findings[0], time.perf_counter() - t0, execs, prog)
