"""Invalidation and cache-maintenance figures of each OS op, from the commands it published (IHI 0070 §4.4
scopes) and the cleans it made: an observer of the emulator, totalled per op kind."""

from ..reference import cmdq as C
from ..reference.spec import MAPPED

FIGURES = ("cmds", "syncs", "inv_pages", "wasted_pages", "full_flushes", "cleans", "lines_cleaned",
           "redundant_cleans", "lines_touched")
_VA_TLBI = frozenset((C.CMD_TLBI_NH_VA, C.CMD_TLBI_EL2_VA, C.CMD_TLBI_S2_IPA))
_FULL_TLBI = frozenset((C.CMD_TLBI_NH_ASID, C.CMD_TLBI_EL2_ASID, C.CMD_TLBI_S12_VMALL, C.CMD_TLBI_NH_ALL))


class OpFigures:
    """Per op kind: commands, syncs, pages covered by by-address TLBIs, pages covered that were still mapped
    and unchanged (wasted: each one is a forced refill), full flushes, cleans, lines cleaned, redundant cleans
    and lines touched; `last_op` holds the latest op's."""

    def __init__(self, granule: int):
        self.granule = granule
        self.per_op: dict[str, dict[str, int]] = {}
        self.last_op: dict[str, int] = {}

    @staticmethod
    def start(smmu) -> tuple:
        """Where an op starts: the command log's length and the memory's clean counters."""
        m = smmu.mem
        m.lines_touched = set()
        return len(smmu.cmd_log), m.cleans, m.lines_cleaned, m.redundant_cleans

    def add(self, i: int, op, mark: tuple, smmu, ds) -> None:
        """The figures of op i since `mark` (ds: the intent of the domain it works on, for wasted pages)."""
        f = self.last_op = dict.fromkeys(FIGURES, 0)
        start, c0, l0, r0 = mark
        m = smmu.mem
        f["lines_touched"] = len(m.lines_touched)
        f["cleans"] = m.cleans - c0
        f["lines_cleaned"] = m.lines_cleaned - l0
        f["redundant_cleans"] = m.redundant_cleans - r0
        g = self.granule
        runs: list[list[int]] = []          # contiguous runs of by-address TLBI scopes
        syncs = cmds = inv_pages = full = 0
        run = None                          # the last of runs
        sync, va_tlbi, full_tlbi, atc_inv, all_ = C.CMD_SYNC, _VA_TLBI, _FULL_TLBI, C.CMD_ATC_INV, C.ATC_INV_SIZE_ALL
        for _seq, c in smmu.cmd_log[start:]:
            o = c.op
            if o == sync:
                syncs += 1
                continue
            cmds += 1
            if o in va_tlbi:
                if c.tg:
                    lo, hi, _ttl, _g = smmu.scope(c)
                    hi = max(hi, (lo & ~(g - 1)) + g)
                else:                                   # scope(): the single address (a register loop's)
                    lo = c.addr
                    hi = max(lo + 1, (lo & ~(g - 1)) + g)
                inv_pages += (hi - lo + g - 1) // g
                if run is not None and run[1] == lo:
                    run[1] = hi
                else:
                    run = [lo, hi]
                    runs.append(run)
            elif o in full_tlbi or (o == atc_inv and c.size == all_):
                full += 1
        f["syncs"], f["cmds"], f["inv_pages"], f["full_flushes"] = syncs, cmds, inv_pages, full
        if ds is not None:
            for lo, hi in runs:
                for e in ds.overlapping(lo, hi):
                    if e.state == MAPPED and e.op != i:
                        f["wasted_pages"] += (min(hi, e.base + e.span) - max(lo, e.base)) // g
        tot = self.per_op.setdefault(op.kind, {"n": 0, **dict.fromkeys(FIGURES, 0)})
        tot["n"] += 1
        for k, v in f.items():
            tot[k] += v
