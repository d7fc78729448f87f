"""Generation: a fresh program of realistic length from nothing, as syzkaller's generateCall builds each
call from the resources the calls before it created.

The ops come from random bytes through the codec in its current format (every op kind and the SMMU's
latitude in the header; its value anchors: block boundaries, 1 GiB and 2 MiB
sizes, reuse of addresses the program already used), and between them, at GEN_LIVE of the positions, an op
built from the resources live there (mutator.live_op: unmap what is mapped, DMA through a stream that is
attached to a domain with mappings, ATS on a stream that is attached, a flush of a domain in use), and before
GEN_FAULT of the calls that allocate, a fail_nth that makes one of the call's allocations fail; with ATS in
the config, GEN_ATS_SETUP of the streams are ATS-capable endpoints before their first attach. Blind
random bytes rarely line those up; a program that does exercises what the gather and invalidation rules
are about. Deterministic given the rng.
"""

import random

from .codec import CURRENT_HEADER, decode
from .contract import own_gather
from .mutator import FAULT_SITES, _attached, _pending_gathers, fault_before, live_iovas, live_op, live_op_of
from .program import MAX_OPS, Op, Program, touched_domains

GEN_BYTES = 600        # random bytes at most, as the random mode (bench.py) draws
GEN_LIVE = 0.3         # share of positions that get a resource-aware op after the codec's op
GEN_FAULT = 0.1        # share of allocating calls that get a fail_nth right before them (race targets too: on
#                        invs:no-mb and new-after-ste, 800 generated programs each, the race search exposed them
#                        as often with it as without, scripts/race_exposure.py --faults)
GEN_ATS_SETUP = 0.5    # in a program whose SMMU has ATS, the share of streams that are ATS-capable endpoints from
#                        the start: a pci_ats(on) before the stream's first attach (what a probe of an ATS device
#                        does), so that invalidations of its domain carry ATC invalidations for the races
#                        against a detach or an ATS change to meet (issue 18 item 6)
INVALIDATING = frozenset({"unmap", "unmap_fast", "sync", "flush_all"})
PARTNER_KINDS = ("attach", "ats", "detach", "map", "unmap")   # what another CPU does to a domain meanwhile


def invalidates(prog: Program, i: int) -> bool:
    """Op i sends invalidations, as far as the ops before it tell: an unmap of a range that overlaps a mapping
    (iommu_unmap() of nothing returns before any iotlb_sync), the iotlb_sync of a gather holding that domain's
    ranges, a flush of a domain with a stream attached (its array lists a tag)."""
    op = prog.ops[i]
    if op.kind in ("unmap", "unmap_fast"):
        d, lo, size = op.args[:3]
        return any(a < lo + size and lo < b for a, b in live_iovas(prog, i).get(d, []))
    if op.kind == "sync":
        return _pending_gathers(prog, i).get(op.args[1]) == op.args[0]
    if op.kind == "flush_all":
        return op.args[0] in _attached(prog, i).values()
    return False


def partner_op(prog: Program, at: int, rng: random.Random) -> Op | None:
    """After an op that invalidates a domain (an unmap, an iotlb_sync, a flush), an op on the other CPU that
    changes that domain's state while the invalidation is in flight: a stream attached to it (mostly one not on
    it yet) or detached from it, its endpoint's ATS toggled, a map or an unmap of another of its ranges (from
    the resources live at `at`, mutator.live_op_of). None if the op before `at` invalidates nothing or none of
    these is possible."""
    op = prog.ops[at - 1] if at else None
    if op is None or not invalidates(prog, at - 1):
        return None
    doms = touched_domains(prog.ops[:at])[-1]
    kinds = list(PARTNER_KINDS)
    rng.shuffle(kinds)
    for kind in kinds:
        new = live_op_of(prog, at, kind, doms, rng)
        if new is not None:
            return Op(new.kind, new.args, 1 - (op.ctx & 1))
    return None


def generate(rng: random.Random, max_ops: int = MAX_OPS, live: float = GEN_LIVE, partner: float = 0.0,
             faults: float = GEN_FAULT, ats_setup: float = GEN_ATS_SETUP) -> Program:
    """A fresh program of at most `max_ops` ops: a random configuration and codec ops, with resource-aware
    ops interleaved (after a `live` share of the codec's ops), and, with probability `partner` after each op
    that invalidates a domain, an op of another CPU on that domain (partner_op: a program that the race
    search, which tries switches between ops of different contexts on a common domain, can interleave), and
    a fail_nth before a `faults` share of the calls that allocate, and, when the SMMU has ATS, an `ats_setup`
    share of the streams made ATS-capable before their first attach."""
    base = decode(CURRENT_HEADER + rng.randbytes(rng.randrange(2, GEN_BYTES + 1)))
    ops: list = []
    sched = []
    seen: set = set()           # streams whose ATS capability is decided (a pci_ats, or an attach without one)
    for i, op in enumerate(base.ops):
        if len(ops) >= max_ops:
            break
        sid = op.args[1] if op.kind == "attach" else op.args[0] if op.kind == "ats" else None
        if sid is not None and sid not in seen:
            seen.add(sid)
            if (op.kind == "attach" and base.config.ats and len(ops) + 2 < max_ops
                    and rng.random() < ats_setup):
                ops.append(Op("ats", (sid, 1), op.ctx))
        if op.kind in FAULT_SITES and len(ops) + 1 < max_ops and rng.random() < faults:
            ops.append(fault_before(op, rng))      # syzkaller's fault injection into a generated call
        sched += [(len(ops), a, c) for j, a, c in base.schedule if j == i]
        ops.append(op)
        for _k in range(2):         # a live op, then maybe the other CPU's op on the domain it invalidated
            if len(ops) >= max_ops:
                break
            prog = Program(base.config, tuple(ops), ())
            if partner and ops[-1].kind in INVALIDATING and invalidates(prog, len(ops) - 1) and rng.random() < partner:
                new = partner_op(prog, len(ops), rng)
                new = new and own_gather(ops + [new], len(ops))
            elif _k == 0 and rng.random() < live:
                new = live_op(prog, len(ops), rng)
            else:
                new = None
            if new is None:
                break
            if new.kind in FAULT_SITES and len(ops) + 1 < max_ops and rng.random() < faults:
                ops.append(fault_before(new, rng))
            ops.append(new)
    return Program(base.config, tuple(ops), tuple(sched))
