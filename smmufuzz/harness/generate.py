"""Generation: a fresh program of realistic length from nothing, as syzkaller's generateCall builds each
call from the resources the calls before it created.

The ops come from random bytes through the codec in its current format (every op kind and the SMMU's
latitude in the header; its value anchors: block boundaries, 1 GiB and 2 MiB
sizes, reuse of addresses the program already used), and between them, at GEN_LIVE of the positions, an op
built from the resources live there (mutator.live_op: unmap what is mapped, DMA through a stream that is
attached to a domain with mappings, ATS on a stream that is attached, a flush of a domain in use). Blind
random bytes rarely line those up; a program that does exercises what the gather and invalidation rules
are about. Deterministic given the rng.
"""

import random

from .codec import FORMAT_MAGIC, FORMAT_VERSION, decode
from .mutator import live_op
from .program import MAX_OPS, Program

GEN_BYTES = 600        # random bytes at most, as the random mode (bench.py) draws
GEN_LIVE = 0.3         # share of positions that get a resource-aware op after the codec's op


def generate(rng: random.Random, max_ops: int = MAX_OPS, live: float = GEN_LIVE) -> Program:
    """A fresh program of at most `max_ops` ops: a random configuration and codec ops, with resource-aware
    ops interleaved (after a `live` share of the codec's ops)."""
    base = decode(bytes([FORMAT_MAGIC, FORMAT_VERSION]) + rng.randbytes(rng.randrange(2, GEN_BYTES + 1)))
    ops: list = []
    sched = []
    for i, op in enumerate(base.ops):
        if len(ops) >= max_ops:
            break
        sched += [(len(ops), a, c) for j, a, c in base.schedule if j == i]
        ops.append(op)
        if len(ops) < max_ops and rng.random() < live:
            new = live_op(Program(base.config, tuple(ops), ()), len(ops), rng)
            if new is not None:
                ops.append(new)
    return Program(base.config, tuple(ops), tuple(sched))
