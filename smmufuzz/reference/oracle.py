"""Safety oracle: compares what devices could reach through the SMMU with the OS intent (smmu-reference §2.2).

Kinds: MISSED_INVALIDATION (I1), WRONG_PA (I2), INVISIBLE_MAPPING (I3), TABLE_UAF (I4),
CMD_ERROR (I8), IOVA_REUSE (the DMA-FQ reuse rule), TORN_STE (an STE update showed a third configuration).
HANG, CRASH and DIVERGENCE are raised by the runner.
"""

from bisect import bisect_right
from dataclasses import dataclass

from .smmu import Smmu
from .spec import MAPPED, DomainSpec, Spec

MISSED = "MISSED_INVALIDATION"
WRONG_PA = "WRONG_PA"
INVISIBLE = "INVISIBLE_MAPPING"
TABLE_UAF = "TABLE_UAF"
CMD_ERROR = "CMD_ERROR"
IOVA_REUSE = "IOVA_REUSE"       # DMA-FQ: an IOVA handed out again before the flush covering its unmap
TORN_STE = "TORN_STE"           # an STE fetched mid-update was neither the old nor the new configuration


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str
    witness: str = ""


def check_translation(ds: DomainSpec | None, va: int, span: int, pa: int, perms: str, source: str,
                      seq: int, cmd_log) -> Violation | None:
    """Is a possible translation [va, va+span) -> pa (perms) allowed by the domain's intent?"""
    if not perms:
        return None          # a leaf that grants no access translates nothing
    if ds is None:
        return Violation(MISSED, f"detached stream can still translate: {_where(source, va, span, pa, perms)}",
                         _witness(seq, cmd_log))
    cur = va
    end = va + span
    for e in ds.overlapping(va, end):
        if e.base > cur:
            return _gap(ds, cur, e.base, _where(source, va, span, pa, perms), seq, cmd_log)
        cur = max(cur, e.base + e.span)
        if e.state != MAPPED:
            continue
        if pa - va != e.pa - e.base:
            return Violation(WRONG_PA, f"{_where(source, va, span, pa, perms)}, but iova {max(va, e.base):#x} is "
                             f"mapped to {e.pa + max(va, e.base) - e.base:#x} (op {e.op})", _witness(seq, cmd_log))
        if not set(perms) <= set(e.perms):
            return Violation(WRONG_PA, f"{_where(source, va, span, pa, perms)}: permissions exceed the mapping's "
                             f"{e.perms!r} (op {e.op})", _witness(seq, cmd_log))
    if cur < end:
        return _gap(ds, cur, end, _where(source, va, span, pa, perms), seq, cmd_log)
    return None


def _where(source: str, va: int, span: int, pa: int, perms: str) -> str:
    """The translation, as a finding names it (built only for a finding: check_translation runs per entry)."""
    return f"{source} entry va={va:#x} span={span:#x} -> pa={pa:#x} {perms}"


def _gap(ds: DomainSpec, lo: int, hi: int, where: str, seq: int, cmd_log) -> Violation:
    op = ds.ever_removed(lo, hi)
    if op is not None:
        return Violation(MISSED, f"{where}, but iova {lo:#x} was unmapped by op {op}", _witness(seq, cmd_log))
    return Violation(WRONG_PA, f"{where}, but iova {lo:#x} was never mapped", _witness(seq, cmd_log))


def _witness(seq: int, cmd_log) -> str:
    if not seq:
        return "found by a fresh table walk of the SMMU's view of memory"
    later = [c.text() for s, c in cmd_log if s > seq]
    before = [c.text() for s, c in cmd_log if s <= seq][-3:]
    w = f"entry filled at hw seq {seq}; "
    w += "commands published after the fill: " + ("; ".join(later[:8]) if later else "none")
    if len(later) > 8:
        w += f" (+{len(later) - 8} more)"
    if before:
        w += " | last commands before it: " + "; ".join(before)
    return w


class Oracle:
    """Checks one SMMU against one Spec at promise points."""

    def __init__(self, smmu: Smmu, spec: Spec):
        self.smmu = smmu
        self.spec = spec
        self.errors_seen = 0
        self.torn_seen = 0
        # checks found clean, by what they read: the page tables (memory version, STE walk fields) or the
        # TLB (its key set is unchanged while cache_ver and its size are: a max-cache fill only adds),
        # and the domain intent (identity, version)
        self._clean: set = set()

    def _check_one(self, ds, va, span, pa, perms, sid, source, where, epoch) -> Violation | None:
        """check_translation, remembered per domain intent while no extent the translation overlaps changes
        (DomainSpec.known_clean): only translations a change could affect are checked again."""
        if ds is None:
            return check_translation(None, va, span, pa, perms, f"sid {sid} {source}" + where,
                                     self.smmu.fill_seq(epoch) if epoch is not None else 0, self.smmu.cmd_log)
        key = (va, span, pa, perms)
        if ds.known_clean(key):
            return None
        v = check_translation(ds, va, span, pa, perms, f"sid {sid} {source}" + where,
                              self.smmu.fill_seq(epoch) if epoch is not None else 0, self.smmu.cmd_log)
        if v is None:
            ds.note_clean(key)
        return v

    def _remember(self, key: tuple) -> None:
        if len(self._clean) > 4096:
            self._clean.clear()
        self._clean.add(key)

    def check(self, sids: list[int], resolve=None) -> Violation | None:
        """resolve(sid, ste) -> (domain intent, strict) or None to skip: used while other operations are
        in flight (a stream mid-attach is judged by the domain its configuration belongs to, and not
        judged at all where that domain is mid-change); strict adds the reachability checks."""
        smmu = self.smmu
        if len(smmu.errors) > self.errors_seen:
            err = smmu.errors[self.errors_seen]
            self.errors_seen = len(smmu.errors)
            return Violation(CMD_ERROR, err)
        if len(smmu.torn) > self.torn_seen:
            torn = smmu.torn[self.torn_seen]
            self.torn_seen = len(smmu.torn)
            return Violation(TORN_STE, torn)
        for sid in sids:
            v = self.check_stream(sid, resolve)
            if v:
                return v
        if resolve is None:
            for sid, ssid in smmu.substreams():
                if sid in sids:
                    v = self.check_substream(sid, ssid)
                    if v:
                        return v
        return None

    def check_substream(self, sid: int, ssid: int) -> Violation | None:
        """What a DMA or ATS request with PASID ssid could reach, against the process page table bound to it
        (spec.bound, spec.mms): nothing once unbound."""
        smmu, spec = self.smmu, self.spec
        mm = spec.bound.get((sid, ssid))
        ds = spec.mms.get(mm) if mm is not None else None
        where = f" with PASID {ssid}"
        dkey = (id(ds), ds.version) if ds is not None else None
        eats = False
        for ste in smmu.substream_configs(sid, ssid):
            eats |= ste.eats
            key = ("pt", smmu.mem.version, ste.ttb, ste.geo, ste.stage, dkey)
            if key not in self._clean:
                for lf in smmu.tree(ste)[0]:
                    v = self._check_one(ds, lf.va, lf.span, lf.pa, lf.perms, sid, "page-table", where, None)
                    if v:
                        return v
                self._remember(key)
            v = self._check_tlb(sid, ste, ds, dkey, where)
            if v:
                return v
            v = self._check_walk_cache(sid, ste, ds, where)
            if v:
                return v
        if eats and sid in smmu.ats_enabled:
            for (va, span, pa, perms), s in smmu.atc_pasid.get((sid, ssid), {}).items():
                v = self._check_one(ds, va, span, pa, perms, sid, "device ATC", where, s)
                if v:
                    return v
        return None

    def _check_tlb(self, sid: int, ste, ds, dkey, where: str, reach_of=None) -> Violation | None:
        """Every TLB entry of the STE's tag, once per cache state; with reach_of, not those equal to a leaf
        reach_of(ste) holds (the walk's check judged them)."""
        smmu = self.smmu
        tag = ste.tag
        key = ("tlb", tag, smmu.cache_ver, len(smmu.tlb), dkey)
        if key in self._clean:
            return None
        reach = reach_of(ste) if reach_of is not None else ()
        for k, s in smmu.tlb.items():
            if k[0] == tag and (k[1], k[2], k[3], k[4]) not in reach:
                v = self._check_one(ds, k[1], k[2], k[3], k[4], sid, "TLB", where, s)
                if v:
                    return v
        self._remember(key)
        return None

    def check_stream(self, sid: int, resolve=None) -> Violation | None:
        smmu, spec = self.smmu, self.spec
        dom = spec.attached.get(sid)
        ds0 = spec.domains.get(dom) if dom is not None else None
        configs = smmu.configs(sid)
        current = configs[0]
        eats_possible = False
        stable = True
        for ste in configs:
            if not ste.translates:
                continue
            ds = ds0
            if resolve is not None:
                r = resolve(sid, ste)
                if r is None:
                    stable = False
                    continue
                ds, strict = r
                stable &= strict
            eats_possible |= ste.eats
            where = "" if ste is current else " (through a cached STE the stream table no longer holds)"
            leaves, _tables = smmu.tree(ste)
            dkey = (id(ds), ds.version) if ds is not None else None
            key = ("pt", smmu.mem.version, ste.ttb, ste.geo, ste.stage, dkey)
            if key not in self._clean:
                if ds is None:
                    todo = [(lf.va, lf.span, lf.pa, lf.perms) for lf in leaves]
                else:                   # only what no check since the last change of its extents has passed
                    if ds._dirty:
                        ds._purge()
                    todo = sorted(smmu.reach_set(ste) - ds._clean)   # in VA order, as the walk lists them
                for va, span, pa, perms in todo:
                    v = self._check_one(ds, va, span, pa, perms, sid, "page-table", where, None)
                    if v:
                        return v
                self._remember(key)
            # an entry holding what the walk above reaches now was judged with it (same translation)
            v = self._check_tlb(sid, ste, ds, dkey, where, smmu.reach_set)
            if v:
                return v
            v = self._check_walk_cache(sid, ste, ds, where)
            if v:
                return v
            if ste is current and ds is not None and stable:
                key = ("vis", smmu.mem.version, ste.ttb, ste.geo, ste.stage, dkey)   # what leaves and ds hang on
                if key not in self._clean:
                    v = self._check_visible(sid, ste, ds, leaves)
                    if v:
                        return v
                    self._remember(key)
        ds = ds0
        if resolve is not None and (resolve(sid, current) is None or not stable):
            return None          # mid-attach or mid-change: reachability and the ATC are judged later
        if ds is not None and ds.mapped() and not current.translates:
            e = ds.mapped()[0]
            return Violation(INVISIBLE, f"sid {sid} is attached to domain {dom} but its STE is {current.config}: "
                             f"iova {e.base:#x} (op {e.op}) cannot be translated")
        if eats_possible and sid in smmu.ats_enabled:
            for (va, span, pa, perms), s in smmu.atc.get(sid, {}).items():
                v = self._check_one(ds, va, span, pa, perms, sid, "device ATC", "", s)
                if v:
                    return v
        return None

    def _check_walk_cache(self, sid: int, ste, ds, where: str) -> Violation | None:
        smmu = self.smmu
        mem = smmu.mem
        tag = ste.tag
        for k, s in smmu.wc.items():
            if k[0] != tag:
                continue
            _tag, lvl, va, span, table, token, desc_addr, _pgs = k
            if mem.is_free(table) or mem.page_token(table) != token:
                state = "freed" if mem.is_free(table) else "freed and reallocated"
                return Violation(TABLE_UAF, f"sid {sid} walk-cache entry level {lvl} va={va:#x} points to table "
                                 f"{table:#x}, which was {state}{where}", _witness(smmu.fill_seq(s), smmu.cmd_log))
            desc = mem.smmu_read(desc_addr)
            if ste.geo.is_table_desc(desc, lvl) and ste.geo.table_addr(desc) == table:
                continue
            leaves = ste.geo.enumerate_from(mem, lvl + 1, table, ste.stage, va)
            for lf in leaves:
                v = check_translation(ds, lf.va, lf.span, lf.pa, lf.perms,
                                      f"sid {sid} walk through a stale walk-cache entry (table {table:#x})" + where,
                                      smmu.fill_seq(s), smmu.cmd_log)
                if v:
                    return v
        return None

    def _check_visible(self, sid: int, ste, ds: DomainSpec, leaves) -> Violation | None:
        starts = sorted((lf.va, lf.va + lf.span) for lf in leaves)
        keys = [a for a, _b in starts]
        for e in ds.mapped():
            cur, end = e.base, e.base + e.span
            while cur < end:
                i = bisect_right(keys, cur) - 1
                if i < 0 or starts[i][1] <= cur:
                    return Violation(INVISIBLE, f"sid {sid}: iova {cur:#x} (mapping of size {e.span:#x} at "
                                     f"{e.base:#x}, op {e.op}) is not reachable by a table walk of the SMMU's "
                                     f"view of memory")
                cur = starts[i][1]
        return None
