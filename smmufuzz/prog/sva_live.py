"""Resource-aware SVA ops: binds, process pages, pages awaiting arm_smmu_mm_arch_invalidate_secondary_tlbs()."""

import random

from .program import NUM_SIDS, Op, Program
from .ops import NUM_MMS

PAGE = 0x1000
M64 = (1 << 64) - 1
MM_BASE = 0x7f00_0000_0000          # where a process's test mappings start (a user address)
SMALL_PAGES = (1, 2, 3, 5, 7, 16, 17, 31, 32, 33, 63, 65, 255, 511, 512, 513)   # RIL NUM/SCALE corners, 512 ops


def sva_state(prog: Program, upto: int) -> tuple[dict, dict, dict]:
    """(mm -> [(lo, hi)] mapped, mm -> [(lo, hi)] cleared and not flushed, (sid, mm) -> bind count) before op `upto`."""
    mapped: dict = {}
    pending: dict = {}
    bonds: dict = {}
    for op in prog.ops[:upto]:
        k, a = op.kind, op.args
        if k == "mm_map":                 # (ends past 2^64 - 1 cut there: they are values ops take)
            mapped.setdefault(a[0], []).append((a[1], min(a[1] + a[3], M64)))
        elif k == "mm_unmap":
            lo, hi = a[1], min(a[1] + a[2], M64)
            keep = []
            for x, y in mapped.get(a[0], []):
                if x < hi and lo < y:
                    pending.setdefault(a[0], []).append((max(x, lo), min(y, hi)))
                    keep += [r for r in ((x, lo), (hi, y)) if r[0] < r[1]]
                else:
                    keep.append((x, y))
            mapped[a[0]] = keep
        elif k == "mm_invalidate":
            pending[a[0]] = [(x, y) for x, y in pending.get(a[0], []) if not (a[1] <= x and y <= a[2])]
        elif k == "sva_bind":
            bonds[(a[0], a[1])] = bonds.get((a[0], a[1]), 0) + 1
        elif k == "sva_unbind" and bonds.get((a[0], a[1])):
            bonds[(a[0], a[1])] -= 1
    return mapped, pending, {b: n for b, n in bonds.items() if n}


def sva_live_op(prog: Program, at: int, rng: random.Random) -> Op | None:
    """An SVA op for position `at`: bind a stream to a process, map or clear its pages (a few, odd counts), the
    notifier over what was cleared (its exact range, a page or two around it, or the whole mm), or DMA / an ATS
    request with a bound PASID at a page that is or was mapped."""
    mapped, pending, bonds = sva_state(prog, at)
    live = any(mapped.values())
    # mostly the next step of bind, map, clear, notify: each needs the one before it to matter
    weights = {"sva_bind": 1 if bonds else 4, "mm_map": 1 if live else 3, "mm_unmap": 3 * live,
               "mm_invalidate": 4 * any(pending.values()), "pasid_dma": bool(bonds), "pasid_ats_req": bool(bonds),
               "sva_unbind": 0.5 * bool(bonds)}
    kind = rng.choices(list(weights), list(weights.values()))[0]
    mm = 0 if rng.random() < 0.75 else rng.randrange(NUM_MMS)
    if kind == "sva_bind":
        return Op("sva_bind", (rng.randrange(NUM_SIDS) if rng.random() < 0.3 else 0, mm))
    if kind == "mm_map":
        ends = [hi for _lo, hi in mapped.get(mm, []) if hi < M64]     # not a range cut at 2^64 - 1
        va = rng.choice(ends) if ends and rng.random() < 0.5 else MM_BASE + rng.randrange(64) * PAGE
        return Op("mm_map", (mm, va, 0x8000_0000 + rng.randrange(256) * PAGE, rng.choice(SMALL_PAGES[:12]) * PAGE,
                             3 if rng.random() < 0.8 else 1))
    if kind == "mm_unmap":
        mm = rng.choice(sorted(mapped))
        lo, hi = rng.choice(mapped[mm]) if mapped[mm] else (MM_BASE, MM_BASE + PAGE)
        start = lo + rng.randrange(max(1, (hi - lo) // PAGE)) * PAGE if rng.random() < 0.5 else lo
        return Op("mm_unmap", (mm, start, max(PAGE, min(hi - start, rng.choice(SMALL_PAGES) * PAGE))))
    if kind == "mm_invalidate":
        mm = rng.choice(sorted(m for m in pending if pending[m]) or [mm])
        if not pending.get(mm) or rng.random() < 0.1:
            return Op("mm_invalidate", (mm, 0, M64))
        lo, hi = rng.choice(pending[mm])
        jitter = lambda: rng.choice((0, 0, 0, 1, 2)) * PAGE
        return Op("mm_invalidate", (mm, max(0, lo - jitter()), min(hi + jitter(), M64)))
    (sid, mm), = rng.sample(sorted(bonds), 1)
    if kind == "sva_unbind":
        return Op("sva_unbind", (sid, mm))
    ranges = mapped.get(mm, []) + pending.get(mm, []) or [(MM_BASE, MM_BASE + PAGE)]
    lo, hi = rng.choice(ranges)
    va = lo + rng.randrange(max(1, (hi - lo) // PAGE)) * PAGE
    if kind == "pasid_dma":
        return Op("pasid_dma", (sid, mm + 1, va, int(rng.random() < 0.5)))
    return Op("pasid_ats_req", (sid, mm + 1, va))


def sva_program(rng: random.Random, n_ops: int = 24) -> Program:
    """A program about SVA from nothing: a stage-1 configuration (RIL, ATS, E2H at random), streams attached and
    bound to processes, then SVA ops from what is live (sva_live_op); for the driver layer's fidelity check."""
    from .program import Config
    cfg = Config(12, 48, 1, True, rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.3)
    ops = [Op("attach", (0, 0)), Op("attach", (0, 1))]
    if cfg.ats:
        ops.append(Op("ats", (0, 1)))
    ops += [Op("sva_bind", (0, 0)), Op("sva_bind", (1, 0))]
    while len(ops) < n_ops:
        op = sva_live_op(Program(cfg, tuple(ops), ()), len(ops), rng)
        if op is not None:
            ops.append(op)
    return Program(cfg, tuple(ops), ())
