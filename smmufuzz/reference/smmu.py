"""The reference SMMUv3: stream table, config cache, TLB, walk cache, command queue and device ATCs.

Commands take effect with the laziest legal timing (at the completion of the next CMD_SYNC) and
remove only entries filled before the command was published (smmu-reference §1.5, §1.9 kill
rule); the adversarial "max-cache" policy refills every valid translation after each OS
operation and at every command publication, so a fill racing an invalidation is always tried.
Compact IOTLB bookkeeping in the spirit of QEMU hw/arm/smmu-common.c (smmu_iotlb_insert/lookup).
"""

import bisect
from itertools import repeat
from dataclasses import dataclass, field, replace

from . import cmdq as C
from .cmd_log import CmdLog
from .lpae import Geometry, Leaf
from .ats_timeout import outstanding_atc_inv, sync_timeout
from .memory import Memory
from . import ste_words as W
from .ste import Cd, Ste
from .substream import ssid_allowed, substream_config

TG_SHIFT = {1: 12, 2: 14, 3: 16}
_NO_STE = Ste()             # a stream with no STE stored (Ste is frozen: one shared instance)
_VA_OPS = (C.CMD_TLBI_NH_VA, C.CMD_TLBI_EL2_VA, C.CMD_TLBI_S2_IPA, C.CMD_TLBI_NH_VAA)
_PLAIN_VA_OPS = (C.CMD_TLBI_NH_VA, C.CMD_TLBI_S2_IPA)   # always legal with TG=NUM=SCALE=0
_RUN_ADDR_FIELD = {C.CMD_TLBI_NH_VA: C._VA_MASK, C.CMD_TLBI_EL2_VA: C._VA_MASK, C.CMD_TLBI_S2_IPA: C._IPA_MASK}
_NUM_SCALE = 31 << 12 | 31 << 20                        # NUM dw0[16:12], SCALE dw0[24:20]
_ADDR_AT = C.Command._fields.index("addr")


def _queue_run(entries: list, i: int) -> tuple[int, int]:
    """The run of queued by-address TLBIs from entries[i]: single addresses (TG=NUM=SCALE=0), one opcode,
    scope and Leaf, addresses a constant positive stride apart, as a per-granule loop queues them:
    (count, stride); (1, 0) if entries[i + 1] does not continue one."""
    dw0, dw1 = entries[i]
    mask = _RUN_ADDR_FIELD.get(dw0 & 0xFF)
    if mask is None or dw0 & _NUM_SCALE or dw1 >> 10 & 3 or i + 1 >= len(entries):
        return 1, 0
    rest, a0 = dw1 & ~mask, dw1 & mask
    e0, e1 = entries[i + 1]
    stride = (e1 & mask) - a0
    if e0 != dw0 or e1 & ~mask != rest or stride <= 0:
        return 1, 0
    j, nxt, n = i + 2, a0 + 2 * stride, len(entries)
    while j < n and nxt & mask == nxt and entries[j] == (dw0, rest | nxt):
        j += 1
        nxt += stride
    return j - i, stride


def _effective_ttl(c: C.Command) -> int:
    """The TTL a TG!=0 TLBI uses: 0b01 with a 16KB granule is Reserved without SMMU_IDR5.DS and treated
    as 0b00 (IHI 0070 §4.4.1.1)."""
    return 0 if (c.tg == 2 and c.ttl == 1) else c.ttl


class HangError(Exception):
    """The step budget ran out: the OS side did not make progress (HANG finding)."""


class CommandBudgetExceeded(Exception):
    """The program asked the hardware for more invalidation work than a fuzz run affords (not a finding:
    e.g. a 1 GiB table free without RIL is 262,144 TLBIs, exactly what the kernel issues)."""


@dataclass
class HwConfig:
    """Static SMMU configuration (IDR registers and model switches)."""
    coherent: bool = True          # IDR0.COHACC: table walks snoop CPU caches
    range_inv: bool = False        # IDR3.RIL
    ats: bool = False              # IDR0.ATS
    e2h: bool = False              # StreamWorld EL2-E2H in use
    ttl_strict: bool = True        # a TTL hint lets the SMMU keep leaf entries at other levels
    policy: str = "max-cache"      # max-cache | none
    walk_cache: bool = True        # the SMMU caches intermediate table descriptors
    walk_levels: int = 0b111       # ... read at these levels (bit L: level L), an implementation's choice
    weak_stores: bool = False      # coherent walks observe CPU stores as Arm's memory model allows (store_order.py)
    step_budget: int = 3_000_000
    command_budget: int = 270_000  # commands + register TLBIs per program (a 1 GiB walk flush is 262,144)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One way a device access could be translated right now."""
    pa: int
    perms: str
    source: str   # "atc" | "tlb" | "walk" | "walk-cache" | "bypass"
    seq: int = 0  # fill sequence number of the cache entry used (0 for a fresh walk)


@dataclass
class Stats:
    by_op: dict = field(default_factory=dict)  # opcode -> count

    @property
    def cmds(self) -> dict:
        return {C.OPCODE_NAMES.get(op, hex(op)): n for op, n in sorted(self.by_op.items())}

    syncs: int = 0
    tlb_killed: int = 0
    wc_killed: int = 0
    atc_killed: int = 0
    inv_pages: int = 0        # pages (4K units) covered by by-address TLBIs
    full_flushes: int = 0     # ASID/VMID/ALL scope TLBIs and ATC_INV of size ALL


class Smmu:
    """One SMMU instance with its memory system and the devices behind it."""

    def __init__(self, cfg: HwConfig):
        self.cfg = cfg
        self.mem = Memory(cfg.coherent, weak=cfg.weak_stores)
        if self.mem.stores is not None:
            self.mem.stores.on_complete = self._last_look
        self.strtab: dict[int, Ste] = {}              # sid -> the STE its table entry's words decode to now
        self.strtab_base: dict[int, int] = {}         # instance ns -> its linear stream table (SMMU_STRTAB_BASE)
        self.ste_ns: dict[int, int] = {}              # sid -> the ns of the instance whose table holds it
        self.cds: dict[int, Cd] = {}                  # address -> the stage-1 CD there (kept decoded)
        self.ste_updates: dict[int, tuple] = {}       # sid -> (STE before, STEs fetched since) of an update
        self.ste_unsynced: dict[int, dict[int, int]] = {}  # sid -> qword -> its value before the stores the
        #                                               SMMU may not observe in order yet (weak_stores)
        self.cd_unsynced: dict[int, dict[int, int]] = {}   # the same for the CDs at these addresses
        self.torn: list[str] = []                     # updates that showed a third configuration (TORN_STE)
        # cached objects map to a fill epoch; eseq[epoch] is the sequence number of its latest fill
        self.cfgc: dict[int, dict[Ste, int]] = {}     # sid -> possible cached STEs -> epoch
        self.tlb: dict[tuple, int] = {}               # (tag, va, span, pa, perms, level, pg_shift) -> epoch
        self.wc: dict[tuple, int] = {}                # (tag, level, va, span, table, token, desc_addr, pg_shift) -> epoch
        self.atc: dict[int, dict[tuple, int]] = {}    # sid -> (va, span, pa, perms) -> epoch
        self.cdtab: dict[tuple, Cd] = {}              # (sid, ssid >= 1) -> the valid CD of the stream's CD table
        self.cdc: dict[tuple, dict[Cd, int]] = {}     # (sid, ssid) -> possible cached CDs -> epoch
        self.atc_pasid: dict[tuple, dict[tuple, int]] = {}   # (sid, ssid) -> PASID-tagged ATC entries -> epoch
        self.eseq: list[int] = [0]
        self.cache_ver = 0        # bumped by every cache change other than a max-cache fill
        self.strtab_ver = 0
        self._fill_key = None
        self._fill_epoch = 0
        self.ctx_flushes: list[tuple[int, C.Command]] = []   # completed context-wide TLBIs (pub seq, cmd)
        self.range_flushes: list[tuple] = []          # completed by-address TLBIs (pub seq, tag match, lo, hi, stride)
        self.ats_enabled: set[int] = set()            # endpoints with ATS enabled (PCI ATS control)
        self.enabled = True                           # SMMU_CR0.SMMUEN (set_enabled)
        self.atc_ignored: set[int] = set()            # pub seqs of ATC_INVs an endpoint dropped (ats_timeout.py)
        self.pending: dict[int, list[tuple]] = {}     # queue (instance ns) -> [(pub seq, command, end)] not complete
        #                                               (end: a register TLBI's span, or tlbi_run's (stride, count))
        self.seq = 1
        self.steps = 0
        self.errors: list[str] = []
        self.cmd_log = CmdLog()           # (seq, command) of every published command
        self.stats = Stats()
        self.commands = 0
        self._tree_cache: dict[tuple, tuple] = {}
        self.tag_ste: dict[tuple, Ste] = {}           # tag -> the latest STE written with it (cache_shape)
        self._shape_memo: tuple = (None, frozenset())

    # ------------------------------------------------------------------ progress budget
    def tick(self, n: int = 1) -> None:
        """cpu_relax(): every OS step costs one unit; running out means the OS side hangs."""
        self.steps += n
        if self.steps > self.cfg.step_budget:
            raise HangError(f"no progress after {self.steps} steps")

    def _spend(self, n: int) -> None:
        self.commands += n
        if self.commands > self.cfg.command_budget:
            raise CommandBudgetExceeded(f"more than {self.cfg.command_budget} invalidation commands")

    # ------------------------------------------------------------------ OS-visible registers
    def set_enabled(self, on: bool) -> None:
        """SMMU_CR0.SMMUEN (IHI 0070 §6.3.9.6). While 0 nothing is translated, no ATS request is answered and
        no cache entry is inserted, but invalidation commands still complete; the change itself need not
        invalidate anything. max-cache fills as soon as it is 1 again."""
        self.tick()
        self.enabled = on
        if on and self.cfg.policy == "max-cache":
            self.fill_all()

    def ste_addr(self, sid: int, ns: int = 0) -> int:
        """Where sid's STE is: a linear stream table of 2^16 64-byte entries per instance (IHI 0070 §5.2)."""
        base = self.strtab_base.get(ns)
        if base is None:
            base = self.strtab_base[ns] = self.mem.alloc_coherent(W.STE_SIZE << 16)
        return base + sid * W.STE_SIZE

    def ste_words(self, sid: int) -> tuple[int, ...]:
        """The 8 words of sid's STE as the SMMU reads them."""
        a = self.ste_addr(sid, self.ste_ns.get(sid, 0))
        read = self.mem.smmu_read
        return tuple(read(a + 8 * q) for q in range(W.STE_DWORDS))

    def store_ste(self, sid: int, q: int, val: int, ns: int = 0) -> None:
        """A CPU store of qword q of sid's STE (64-bit single-copy atomic, through the table's coherent
        mapping): the next fetch of the STE decodes the words as they are after it. max-cache fetches it right
        away (IHI 0070 §3.21.1: an STE may be fetched at any time) and fills through it; what it fetched is
        judged at the end of the update (end_ste_update)."""
        self.ste_ns[sid] = ns
        addr = self.ste_addr(sid, ns) + 8 * q
        if self.cfg.weak_stores:
            self.ste_unsynced.setdefault(sid, {}).setdefault(q, self.mem.smmu_read(addr))
        self.mem.coherent_write(addr, val)
        self._refetch(sid)

    def cd_words(self, addr: int) -> tuple[int, ...]:
        """The 8 words of the CD at addr as the SMMU reads them."""
        read = self.mem.smmu_read
        return tuple(read(addr + 8 * q) for q in range(W.CD_DWORDS))

    def store_cd(self, addr: int, q: int, val: int) -> None:
        """A CPU store of qword q of the CD at addr (64-bit single-copy atomic, coherent CD table): the streams
        whose STE points at it fetch it from now on, max-cache at once (a CD may be fetched whenever the STE
        is, IHI 0070 §3.21.1), judged like an STE store (end_ste_update) while an update is open."""
        a = addr + 8 * q
        if self.cfg.weak_stores:
            self.cd_unsynced.setdefault(addr, {}).setdefault(q, self.mem.smmu_read(a))
        self.mem.coherent_write(a, val)
        self.cds[addr] = W.cd_decode(self.cd_words(addr))
        for sid in list(self.ste_ns):
            if W.field(self.ste_words(sid), "S1ContextPtr") == addr:
                self._refetch(sid)

    def _refetch(self, sid: int) -> None:
        """After a store to sid's STE or to its CD: decode it again; max-cache fetches it and fills through it,
        and an open update (begin_ste_update) records what a fetch could have decoded."""
        self._fetch_ste(sid)
        if self.cfg.policy == "max-cache" and self.enabled:
            ste = self.strtab[sid]
            if sid in self.ste_updates:
                self.ste_updates[sid][1].append(ste)
                if self.cfg.weak_stores:
                    self.ste_updates[sid][1].extend(self._unordered_fetches(sid))
            epoch = self.new_epoch()
            self.cache_ver += 1
            self.cfgc.setdefault(sid, {})[ste] = epoch
            if ste.translates:
                self._fill_ste(ste, epoch)

    @staticmethod
    def _subsets(words, unsynced: dict[int, int]) -> list[list[int]]:
        """The words with every proper, non-empty subset of the changed qwords still at its old value (None
        if too many qwords changed to enumerate)."""
        old = {q: v for q, v in unsynced.items() if words[q] != v}
        qs = sorted(old)
        out = []
        for mask in range(1, (1 << len(qs)) - 1) if len(qs) <= 8 else ():
            w = list(words)
            for i, q in enumerate(qs):
                if mask >> i & 1:
                    w[q] = old[q]
            out.append(w)
        return out

    def _unordered_fetches(self, sid: int) -> list[Ste]:
        """The STEs a fetch may decode while the stores since the last command publication reach the SMMU in
        any order (reference/store_order.py): every subset of the qwords they changed, in the STE and in its
        CD, at its old value. Only judged (end_ste_update), not cached: one that is neither configuration is
        already a TORN_STE."""
        ns = self.ste_ns.get(sid, 0)
        words = list(self.ste_words(sid))
        cd_ptr = W.field(words, "S1ContextPtr")
        steps = [words] + self._subsets(words, self.ste_unsynced.get(sid, {}))
        cds = [self.cds.get(cd_ptr)]
        if cd_ptr in self.cd_unsynced:
            cds += [W.cd_decode(w) for w in self._subsets(self.cd_words(cd_ptr), self.cd_unsynced[cd_ptr])]
        out = []
        for w in steps:
            for cd in cds:
                if w is words and cd is cds[0]:
                    continue
                ste, _why = W.decode(w, lambda a, cd=cd: cd if a == cd_ptr else self.cds.get(a), ns)
                out.append(ste)
        return out

    def begin_ste_update(self, sid: int) -> None:
        """The CPU starts moving sid's STE to a new configuration (e.g. arm_smmu_write_ste()): what the SMMU
        fetches until end_ste_update() is judged against the configurations before and after."""
        self.ste_updates[sid] = (self.strtab.get(sid, Ste()), [])

    def end_ste_update(self, sid: int) -> None:
        """arm_smmu_write_entry()'s promise: every STE fetched mid-update is the old configuration, the new one,
        or one that translates nothing (V=0 or abort); never a mix of the two (TORN_STE, in `torn`)."""
        before, fetched = self.ste_updates.pop(sid, (None, ()))
        now = self.strtab.get(sid, Ste())
        bad = next((s for s in fetched if s != before and s != now and s.config != "abort"), None)
        if bad is not None:
            txt = lambda s: s.text() + (" streamworld=EL2-E2H" if s.el2 else "")  # noqa: E731
            self.torn.append(f"sid {sid}: updating its STE (with its CD) from [{txt(before)}] to [{txt(now)}] let "
                             f"the SMMU fetch [{txt(bad)}]")

    def write_ste_words(self, sid: int, words, ns: int = 0) -> None:
        """The CPU stores a whole STE, qword 0 last (no fetch between the stores)."""
        self.tick()
        for q in range(W.STE_DWORDS - 1, -1, -1):
            self.ste_ns[sid] = ns
            self.mem.coherent_write(self.ste_addr(sid, ns) + 8 * q, words[q])
        self._fetch_ste(sid)

    def write_ste(self, sid: int, ste: Ste, ns: int = 0) -> None:
        """A stream mapping given decoded (an IOMMU whose mapping is no SMMUv3 STE, e.g. an arm-smmu context
        bank, and tests): its words (ste_words.from_ste) and CD, one CD slot per stream, stored at once."""
        cd_ptr = self.cd_slot(sid, ns)
        words, cd = W.from_ste(ste, cd_ptr)
        if cd is not None:
            self.cds[cd_ptr] = cd
        self.write_ste_words(sid, words, ns)

    def cd_slot(self, sid: int, ns: int = 0) -> int:
        """The CD address write_ste() uses for sid: a coherent array of one 64-byte CD per stream."""
        key = ("cd", ns)
        base = self.strtab_base.get(key)
        if base is None:
            base = self.strtab_base[key] = self.mem.alloc_coherent(W.STE_SIZE << 16)
        return base + sid * W.STE_SIZE

    def _fetch_ste(self, sid: int) -> None:
        """Decode sid's STE from its words (what any fetch from now on reads)."""
        ste, why = W.decode(self.ste_words(sid), self.cds.get, self.ste_ns.get(sid, 0))
        if why is not None and not self.errors[-1:] == [f"C_BAD_STE: sid {sid}: {why}"]:
            self.errors.append(f"C_BAD_STE: sid {sid}: {why}")
        self.strtab[sid] = ste
        self.strtab_ver += 1
        if ste.translates:
            self.tag_ste[ste.tag] = ste

    def write_substream_cd(self, sid: int, ssid: int, cd: Cd | None) -> None:
        """CPU store of a whole CD of sid's CD table (None: V=0); the SMMU may keep the old one cached until a
        CFGI_CD for it completes (IHI 0070 §4.3.3)."""
        self.tick()
        self.strtab_ver += 1
        if cd is None:
            self.cdtab.pop((sid, ssid), None)
        else:
            self.cdtab[(sid, ssid)] = cd

    def substreams(self) -> list[tuple[int, int]]:
        """Every (sid, ssid) with a CD in the table or in the CD cache."""
        return sorted(set(self.cdtab) | {k for k, v in self.cdc.items() if v})

    def substream_configs(self, sid: int, ssid: int) -> list[Ste]:
        """Every translation context the SMMU may use for (sid, ssid) now: each STE it may use for sid whose CD
        table holds ssid, with the CD table's CD or any cached one (the two caches are independent)."""
        cur = self.cdtab.get((sid, ssid))
        cds = ([cur] if cur is not None else []) + [c for c in self.cdc.get((sid, ssid), ()) if c != cur]
        out = []
        for ste in self.configs(sid):
            if ssid_allowed(ste, ssid):
                for cd in cds:
                    s = substream_config(ste, cd)
                    if s not in out:
                        out.append(s)
        return out

    def set_ats(self, sid: int, on: bool) -> None:
        """pci_enable_ats()/pci_disable_ats() at the endpoint; a disabled endpoint drops its ATC, and may
        ignore the ATC invalidations outstanding to it (ats_timeout.py)."""
        self.tick()
        self.strtab_ver += 1
        if on:
            self.ats_enabled.add(sid)
        else:
            self.ats_enabled.discard(sid)
            self.atc.pop(sid, None)
            for k in [k for k in self.atc_pasid if k[0] == sid]:
                del self.atc_pasid[k]
            self.atc_ignored |= outstanding_atc_inv(self.pending, sid)

    def cmdq_publish(self, entries: list[tuple[int, int]], ns: int = 0) -> None:
        """Write commands to the queue and move PROD past them; each CMD_SYNC waits for completion of the
        commands before it in the same queue (IHI 0070 §4.1.4). ns: the tag namespace of the instance whose
        queue this is (see SmmuInstance)."""
        self.mem.wmb()                   # the dma_wmb() before PROD moves: the SMMU reads the commands after
        self.ste_unsynced.clear()        # ... every store before them, STE and CD stores too
        self.cd_unsynced.clear()
        by_op = self.stats.by_op
        log = self.cmd_log
        pending = self.pending.setdefault(ns, [])
        maxcache = self.cfg.policy == "max-cache"
        self.tick(len(entries))
        self._spend(len(entries))
        i, n = 0, len(entries)
        while i < n:
            dw0, dw1 = entries[i]
            cmd = C.decode(dw0, dw1)
            if ns:
                cmd = cmd._replace(asid=cmd.asid + ns, vmid=cmd.vmid + ns)
            i += 1
            if i < n and (cmd.op in _PLAIN_VA_OPS or cmd.op == C.CMD_TLBI_EL2_VA and self.cfg.e2h):
                count, stride = _queue_run(entries, i - 1)
                if count > 1:           # single-address TLBIs a stride apart: legal, published as a run
                    self._publish_run(cmd, stride, count, pending)
                    i += count - 1
                    continue
            self.seq += 1
            log.append((self.seq, cmd))
            op = cmd.op
            by_op[op] = by_op.get(op, 0) + 1
            if op == C.CMD_SYNC:
                self.stats.syncs += 1
                if maxcache:
                    self.fill_all()      # the hardware may refill anything before the SYNC completes
                self._complete_pending(ns)
                pending = self.pending.setdefault(ns, [])
                continue
            if not (op in _PLAIN_VA_OPS and not cmd.tg and not cmd.num and not cmd.scale):
                err = self._check(cmd)
                if err:
                    self.errors.append(f"CERROR_ILL: {cmd.text()}: {err}")
                    continue
            pending.append((self.seq, cmd, None))
        if pending and maxcache:
            self.fill_all()

    def _publish_run(self, cmd: C.Command, stride: int, count: int, pending: list) -> None:
        """cmdq_publish() of `count` single-address TLBIs like `cmd` at cmd.addr + k * stride, queued back to back:
        each is logged with its own sequence number, and they wait for their CMD_SYNC as one pending entry
        (pub, cmd, (stride, count)), which _complete_pending applies exactly as the commands one by one."""
        first = self.seq + 1
        self.cmd_log.add_run(first, 1, cmd, _ADDR_AT, stride, count)
        self.seq += count
        by_op = self.stats.by_op
        by_op[cmd.op] = by_op.get(cmd.op, 0) + count
        pending.append((first, cmd, (stride, count)))

    # ------------------------------------------------------------------ register-style invalidation
    def tlbi(self, op: int, asid: int = 0, vmid: int = 0, addr: int = 0, leaf: bool = False,
             end: int | None = None, sid: int = 0) -> None:
        """A TLB-invalidate register write (IOMMUs without a command queue): it takes effect at some
        point before the next tlb_sync() completes. `end` makes a by-address one cover [addr, end). The PTE
        stores before it are visible to the walker first: arm-smmu.c's wmb() before its relaxed TLBI writes with
        coherent walks ("ensure that PTEs cleared by the current CPU are visible beforehand"), the barrier in
        writel()/iowrite32() for qcom_iommu and ipmmu-vmsa."""
        self.mem.wmb()
        self.tick()
        self._spend(1)
        cmd = C.Command(op, vmid=vmid, asid=asid, leaf=int(leaf), addr=addr, sid=sid)
        self.seq += 1
        self.cmd_log.append((self.seq, cmd))
        self.stats.by_op[op] = self.stats.by_op.get(op, 0) + 1
        self.pending.setdefault(0, []).append((self.seq, cmd, end))
        if self.cfg.policy == "max-cache":
            if op in _VA_OPS:
                self._refill_range(addr, end if end is not None else addr + 1)
            else:
                self.fill_all()

    def tlbi_run(self, op: int, addr: int, stride: int, count: int, asid: int = 0, vmid: int = 0,
                 leaf: bool = False) -> None:
        """`count` single-address register TLBIs at addr + k * stride, written back to back (a driver's
        per-granule loop, e.g. arm_smmu_tlb_inv_range_s1()): the same state as count tlbi() calls, computed
        per run of addresses whose walks find the same leaves rather than per write."""
        self.mem.wmb()                   # as tlbi()
        if (self.cfg.policy != "max-cache" or op not in _VA_OPS or count < 2 or stride <= 0 or stride & 0xFFF
                or addr & 0xFFF or self.steps + count > self.cfg.step_budget
                or self.commands + count > self.cfg.command_budget):
            for k in range(count):
                self.tlbi(op, asid=asid, vmid=vmid, addr=addr + k * stride, leaf=leaf)
            return
        self.steps += count
        self.commands += count
        self.stats.by_op[op] = self.stats.by_op.get(op, 0) + count
        configs = [ste for sid in self.strtab for ste in self.configs(sid) if ste.translates]
        regions = [(0, 0, None)] * len(configs)      # per config: [lo, hi) where every walk finds `leaf`
        log, pend, tlb, eseq = self.cmd_log, self.pending.setdefault(0, []), self.tlb, self.eseq
        new, Command, lf_bit = tuple.__new__, C.Command, int(leaf)
        k = 0
        while k < count:
            va = addr + k * stride
            found = []
            nxt = None                                # the first address where some config's walk may differ
            for n, ste in enumerate(configs):
                lo, hi, lf = regions[n]
                if not lo <= va < hi:
                    lo, hi, lf = regions[n] = self._walk_region(ste, va)
                if lf is not None:
                    found.append((ste, lf))
                nxt = hi if nxt is None else min(nxt, hi)
            k1 = count if nxt is None else min(count, max(k + 1, -(-(nxt - addr) // stride)))
            m = k1 - k
            # the run's writes, each a command and (walks finding leaves) a fill point after it, numbered as
            # one by one
            va0 = addr + k * stride
            base = self.seq
            if found:
                cmds = [new(Command, (op, 0, 0, 0, vmid, asid, lf_bit, 0, 0, va0 + j * stride, 0, 0, 0, 0, 0))
                        for j in range(m)]
                seqs = range(base + 1, base + 2 * m, 2)
                first = len(eseq)
                eseq.extend(range(base + 2, base + 2 * m + 1, 2))
                self.cache_ver += m
                self.seq = base + 2 * m
                # the first write inserts its leaves in walk order, the last leaves them at its fill time
                for epoch in ((first, first + m - 1) if m > 1 else (first,)):
                    for ste, lf in found:
                        tlb[(ste.tag, lf.va, lf.span, lf.pa, lf.perms, lf.level, ste.geo.pg_shift)] = epoch
                log.extend(zip(seqs, cmds))
                pend.extend(zip(seqs, cmds, repeat(None)))
            else:           # back to back, no fill between: logged and pending as one run (_complete_pending
                self.seq = base + m                                   # applies it so anyway)
                cmd0 = new(Command, (op, 0, 0, 0, vmid, asid, lf_bit, 0, 0, va0, 0, 0, 0, 0, 0))
                log.add_run(base + 1, 1, cmd0, _ADDR_AT, stride, m)
                pend.append((base + 1, cmd0, (stride, m) if m > 1 else None))
            k = k1

    def _walk_region(self, ste: Ste, va: int) -> tuple:
        """(lo, hi, leaf or None): a walk for va and the range of addresses whose walks read the same
        descriptors (the leaf's span; for a failed LPAE walk, the block of the level it stopped at)."""
        lf, steps = ste.geo.walk(self.mem, ste.ttb, ste.stage, va)
        if lf is not None:
            return lf.va, lf.va + lf.span, lf
        geo = ste.geo
        if isinstance(geo, Geometry):
            if va >> geo.ias:
                return va, 1 << 64, None
            shift = geo.lvl_shift(geo.start_level + len(steps))
            return va >> shift << shift, (va >> shift) + 1 << shift, None
        return va, va + 0x1000, None

    def _refill_range(self, lo: int, hi: int) -> None:
        """max-cache at a by-address register TLBI: refill what the TLBI may remove (its own range) from
        the current view; entries that refill are younger than the TLBI and survive it. Nothing is
        re-cached (and no fill time moves) when the walks find nothing."""
        if hi - lo > 64 << 12 or not self.enabled:
            self.fill_all()
            return
        epoch = None
        for sid, cur in self.strtab.items():
            for ste in self.configs(sid):
                if not ste.translates:
                    continue
                va = lo & ~0xFFF
                while va < hi:
                    leaf, steps = ste.geo.walk(self.mem, ste.ttb, ste.stage, va)
                    if leaf is not None:
                        if epoch is None:
                            epoch = self.new_epoch()
                            self.cache_ver += 1
                        self.tlb[(ste.tag, leaf.va, leaf.span, leaf.pa, leaf.perms, leaf.level,
                                  ste.geo.pg_shift)] = epoch
                        va = max(va + 0x1000, leaf.va + leaf.span)
                    else:
                        va += 0x1000

    def tlb_sync(self) -> None:
        """A TLB sync (poll for completion): every earlier invalidation is complete on return."""
        self.cmdq_publish([(C.CMD_SYNC, 0)])

    # ------------------------------------------------------------------ command semantics
    def _check(self, c: C.Command) -> str | None:
        """CERROR_ILL (IHI 0070 §4.1.3): a Reserved opcode, an ILLEGAL parameter combination, or a
        non-zero RES0 field this SMMU chooses to detect (§4.1.5: NUM/SCALE/TG without IDR3.RIL)."""
        if c.op not in C.OPCODE_NAMES:
            return "unknown opcode"
        if c.op in (C.CMD_TLBI_NH_VA, C.CMD_TLBI_EL2_VA, C.CMD_TLBI_S2_IPA, C.CMD_TLBI_NH_VAA):
            if c.tg:
                if not self.cfg.range_inv:
                    return "range invalidation (TG!=0) without IDR3.RIL"
                if c.num == 0 and c.scale == 0 and _effective_ttl(c) == 0:
                    # §4.4.1.1: Reserved; TTL=0b01 with a 16KB TG counts as 0b00 (SMMU_IDR5.DS=0)
                    return "TG!=0 with NUM=SCALE=TTL=0" + (" (TTL=1 is Reserved for TG=16KB)" if c.ttl else "")
            elif c.num or c.scale:
                if not self.cfg.range_inv:
                    return "NUM/SCALE set without IDR3.RIL"
        if c.op in (C.CMD_TLBI_EL2_VA, C.CMD_TLBI_EL2_ASID, C.CMD_TLBI_EL2_ALL) and not self.cfg.e2h:
            return "EL2 TLBI without StreamWorld EL2 support"
        if c.op == C.CMD_ATC_INV and not self.cfg.ats:
            return "ATC_INV without IDR0.ATS"
        if c.op == C.CMD_ATC_INV and c.size > C.ATC_INV_SIZE_ALL:
            return "ATC_INV size out of range"      # §4.5.1: permitted to raise CERROR_ILL
        return None

    def _complete_pending(self, ns: int = 0) -> None:
        """Complete every pending command of queue `ns` in publication order (IHI 0070 §4.1.4: a CMD_SYNC
        completes the commands before it in its queue). A run of single-address TLBIs of one scope at a constant stride,
        published back to back (no fill in between), is applied in one pass over the caches as the
        arithmetic progression of its addresses: an entry goes only if it holds one of them, exactly
        what the commands do one by one, in linear time for long per-page loops. Runs are taken greedily, a
        command at a time (each completed run is one range_flushes record); tlbi_run and _publish_run queue a
        run as one entry, which joins its neighbours, or is split, as its commands would be one by one."""
        pend = self.pending.pop(ns, [])
        i = 0
        n = len(pend)
        while i < n:
            pub, cmd, end = pend[i]
            run = type(end) is tuple             # tlbi_run's writes at pub, pub + 1, ...: (stride, count)
            if (end is None or run) and cmd.op in _VA_OPS and not cmd.tg:
                step, count = end if run else (None, 1)
                last_pub, last_addr = pub + count - 1, cmd.addr + (count - 1) * (step or 0)
                j = i + 1
                while j < n:
                    p2, c2, e2 = pend[j]
                    more = type(e2) is tuple
                    if p2 != last_pub + 1 or not (e2 is None or more) or c2.op != cmd.op or c2.tg \
                            or c2.asid != cmd.asid or c2.vmid != cmd.vmid or c2.leaf != cmd.leaf:
                        break
                    d = c2.addr - last_addr
                    if d <= 0 or (step is not None and d != step):
                        break
                    step = d
                    if more and e2[0] != d:   # a run at another stride: its first command ends this group (as
                        rest = e2[1] - 1      # one by one), the others start the next
                        pend[j] = (p2 + 1, c2._replace(addr=c2.addr + e2[0]), (e2[0], rest) if rest > 1 else None)
                        count += 1
                        break
                    n2 = e2[1] if more else 1
                    last_pub, last_addr = p2 + n2 - 1, c2.addr + (n2 - 1) * d
                    count += n2
                    j += 1
                if count > 1:
                    self._apply(pub, cmd, run=(step, count))
                    i = j
                    continue
            self._apply(pub, cmd, span_hi=end)
            i += 1

    def scope(self, c: C.Command) -> tuple[int, int, int | None, int | None]:
        """[start, end) of a by-address TLBI, its TTL level (None = any) and TG granule shift (IHI 0070
        §4.4.1.1). TG=0: the single address (NUM, SCALE, TTL are RES0). TG!=0: Address <= A < Address +
        (NUM+1) * 2^SCALE * granule, not wrapping past 2^64. An Address not aligned to the block size of
        the TTL level (to the granule when TTL=0b00) gives an UNPREDICTABLE range: the laziest SMMU
        invalidates nothing, the empty [start, start)."""
        if not c.tg:
            return c.addr, c.addr + 1, None, None
        gshift = TG_SHIFT[c.tg]
        ttl = _effective_ttl(c)
        align = gshift + (3 - ttl) * (gshift - 3) if ttl else gshift
        base = c.addr
        if base & ((1 << align) - 1):
            return base, base, None, gshift
        length = (c.num + 1) << (c.scale + gshift)
        return base, base + length, (ttl if ttl and self.cfg.ttl_strict else None), gshift

    def _apply(self, pub: int, c: C.Command, span_hi: int | None = None,
               run: tuple[int, int] | None = None) -> None:
        """Complete one command: remove the cache entries filled before its publication `pub` that
        its scope requires (and nothing else). span_hi: a register-style by-address TLBI covering
        [addr, span_hi); run: (stride, count) single-address TLBIs at addr + k * stride."""
        o = c.op
        st = self.stats
        eseq = self.eseq
        self.cache_ver += 1
        if o in _VA_OPS:
            self._apply_va(pub, c, span_hi, run)
            return
        if o in (C.CMD_TLBI_NH_ASID, C.CMD_TLBI_EL2_ASID, C.CMD_TLBI_NH_ALL, C.CMD_TLBI_S12_VMALL,
                 C.CMD_TLBI_EL2_ALL, C.CMD_TLBI_NSNH_ALL):
            # §4.4.2.1, §4.4.2.2, §4.4.2.7, §4.4.2.10, §4.4.3.2, §4.4.4.1: TLB and walk cache by context
            st.full_flushes += 1
            if o == C.CMD_TLBI_NH_ASID:
                m = lambda t: t[0] == "nh" and t[1] == c.vmid and t[2] == c.asid
            elif o == C.CMD_TLBI_EL2_ASID:
                m = lambda t: t[0] == "el2" and t[2] == c.asid
            elif o == C.CMD_TLBI_NH_ALL:
                m = lambda t: t[0] == "nh" and t[1] == c.vmid
            elif o == C.CMD_TLBI_S12_VMALL:
                m = lambda t: t[0] in ("nh", "s2") and t[1] == c.vmid
            elif o == C.CMD_TLBI_EL2_ALL:
                m = lambda t: t[0] == "el2"
            else:
                m = lambda t: t[0] in ("nh", "s2")
            for d in (self.tlb, self.wc):
                for k in [k for k, e in d.items() if eseq[e] < pub and m(k[0])]:
                    del d[k]
            self.ctx_flushes.append((pub, m))
            return
        if o == C.CMD_ATC_INV:
            # §4.5.1: the span 4096 * 2^Size aligned to its size; Size 52 is all of the 2^64 space. SSV=1:
            # the entries of PASID SSID only; SSV=0 (a request without a PASID prefix): every entry in the
            # span, PASID-tagged ones included (PCIe ATS; arm_smmu_atc_inv_to_cmd()'s comment).
            if pub in self.atc_ignored:
                self.atc_ignored.discard(pub)
                self.errors.append(sync_timeout(c))
                return
            atc = self.atc.get(c.sid)
            if c.size == C.ATC_INV_SIZE_ALL:
                st.full_flushes += 1
            span = 4096 << c.size
            lo = c.addr & ~(span - 1)
            hi = lo + span
            if c.ssv:
                atcs = [self.atc_pasid.get((c.sid, c.ssid))]
            else:
                atcs = [atc] + [a for k, a in self.atc_pasid.items() if k[0] == c.sid]
            for atc in atcs:
                if atc:
                    for k in [k for k, e in atc.items() if eseq[e] < pub and k[0] < hi and lo < k[0] + k[1]]:
                        del atc[k]
                        st.atc_killed += 1
            return
        if o == C.CMD_CFGI_STE:
            # §4.3.1: the STE of StreamID and every CD cached through it
            self._cfgi(pub, lambda sid: sid == c.sid)
            return
        if o == C.CMD_CFGI_ALL:
            # §4.3.2, §4.3.6: the aligned range of 2^(Range+1) StreamIDs (Range=31: CMD_CFGI_ALL)
            n = c.range + 1
            self._cfgi(pub, lambda sid: n >= 32 or (sid >> n) == (c.sid >> n))
            return
        if o in (C.CMD_CFGI_CD, C.CMD_CFGI_CD_ALL):
            # §4.3.3, §4.3.4: the CD only, not the STE (§4.3: no structure type implies another). SSID 0 is
            # the CD folded into the STE; CFGI_CD_ALL is every SSID of the stream.
            if o == C.CMD_CFGI_CD_ALL or not c.ssid:
                self._cfgi_cd(pub, c.sid)
            self._cfgi_substreams(pub, lambda k: k[0] == c.sid and (o == C.CMD_CFGI_CD_ALL or k[1] == c.ssid))
            return

    def _apply_va(self, pub: int, c: C.Command, span_hi: int | None, run: tuple[int, int] | None) -> None:
        """TLBI by VA/IPA (§4.4.2.3, §4.4.2.4, §4.4.2.8, §4.4.3.1; §4.4.1.1 for TG/TTL): leaf entries
        holding an address in scope; with Leaf=0 also the walk-cache (table descriptor) entries used to
        translate one. TG!=0 limits both to entries of that granule; TTL limits leaf entries to that
        level and table descriptors to the levels before it."""
        o = c.op
        st = self.stats
        eseq = self.eseq
        if o == C.CMD_TLBI_S2_IPA:
            match_tag = lambda t: t[0] == "s2" and t[1] == c.vmid
        elif o == C.CMD_TLBI_EL2_VA:
            match_tag = lambda t: t[0] == "el2" and t[2] == c.asid
        elif o == C.CMD_TLBI_NH_VAA:
            match_tag = lambda t: t[0] == "nh" and t[1] == c.vmid
        else:
            match_tag = lambda t: t[0] == "nh" and t[1] == c.vmid and t[2] == c.asid
        if run is not None:
            stride, count = run
            lo = c.addr
            hi = lo + stride * (count - 1) + 1
            ttl = gshift = None

            def hits(va: int, span: int) -> bool:
                k = -((lo - va) // stride) if va > lo else 0    # first address of the run >= va
                return k < count and lo + k * stride < va + span

            st.inv_pages += count
            page = lo & ~0xFFF
            self.range_flushes.append((pub, match_tag, page, page + stride * (count - 1) + 0x1000,
                                       None if stride == 0x1000 else stride))
        else:
            lo, hi, ttl, gshift = self.scope(c)
            if span_hi is not None:
                hi = span_hi     # a register-style TLBI: every address in [lo, hi)
            st.inv_pages += max(1, (hi - lo) >> 12)
            if hi <= lo:
                return           # an UNPREDICTABLE range (see scope): nothing is invalidated
            if span_hi is not None:
                self.range_flushes.append((pub, match_tag, lo, hi, None))
            elif ttl is None and gshift is None:
                page = lo & ~0xFFF
                self.range_flushes.append((pub, match_tag, page, page + 0x1000, None))
            hits = None
        for k in [k for k, e in self.tlb.items() if eseq[e] < pub and match_tag(k[0])]:
            va, span = k[1], k[2]
            if va < hi and lo < va + span and (ttl is None or k[5] == ttl) \
                    and (gshift is None or gshift == k[6]) and (hits is None or hits(va, span)):
                del self.tlb[k]
                st.tlb_killed += 1
        if not c.leaf:
            for k in [k for k, e in self.wc.items() if eseq[e] < pub and match_tag(k[0])]:
                va, span = k[2], k[3]
                if va < hi and lo < va + span and (ttl is None or k[1] < ttl) \
                        and (gshift is None or gshift == k[7]) and (hits is None or hits(va, span)):
                    del self.wc[k]
                    st.wc_killed += 1

    def _cfgi(self, pub: int, match) -> None:
        for sid in list(self.cfgc):
            if match(sid):
                snaps = self.cfgc[sid]
                for ste in [s for s, e in snaps.items() if self.eseq[e] < pub]:
                    del snaps[ste]
        self._cfgi_substreams(pub, lambda k: match(k[0]))      # §4.3.1: and every CD cached through the STE

    def _cfgi_substreams(self, pub: int, match) -> None:
        """Remove the cached CDs of the (sid, ssid) keys `match` selects, filled before publication `pub`."""
        for k, snaps in self.cdc.items():
            if match(k):
                for cd in [d for d, e in snaps.items() if self.eseq[e] < pub]:
                    del snaps[cd]

    def _cfgi_cd(self, pub: int, sid: int) -> None:
        """CFGI_CD(_ALL) for sid: the CD fields (ASID, TTB0, TCR) of an older cached stage-1 STE are
        fetched again, from the CD the stream table now gives; its STE fields (Config, S2VMID, EATS,
        StreamWorld) stay cached; a CD that translates nothing (V=0) ends them. With no stage-1 STE there now,
        the cached one is kept."""
        snaps = self.cfgc.get(sid)
        cur = self.strtab.get(sid)
        if not snaps or cur is None:
            return
        if cur.config != "s1":
            words = self.ste_words(sid)
            cd = self.cds.get(W.field(words, "S1ContextPtr"))
            if W.field(words, "V") and W.field(words, "Config") == W.CONFIG_S1 and cd is not None and not cd.valid:
                for ste, e in list(snaps.items()):
                    if ste.config == "s1" and self.eseq[e] < pub:
                        del snaps[ste]
            return
        for ste, e in list(snaps.items()):
            if ste.config == "s1" and self.eseq[e] < pub:
                del snaps[ste]
                snaps[replace(ste, asid=cur.asid, ttb=cur.ttb, geo=cur.geo)] = e

    # ------------------------------------------------------------------ translation
    def flushed_since(self, tag: tuple, seq: int) -> bool:
        """Has a context-wide invalidation covering `tag`, published after `seq`, completed?"""
        return any(pub > seq and m(tag) for pub, m in self.ctx_flushes)

    def covered_since(self, tag: tuple, seq: int, lo: int, hi: int) -> bool:
        """Has an invalidation removing every entry of `tag` that translates an address in [lo, hi) (4K
        aligned), published after `seq`, completed? Context-wide, one by-address range (e.g. a virtio
        host's UNMAP), or single-address TLBIs: entries are 4K-aligned blocks of 4K or more, so one at
        page P removes every entry holding part of P; a run at a stride s > 4K covers only its own pages."""
        if self.flushed_since(tag, seq):
            return True
        return any(pub > seq and a <= lo and hi <= b and m(tag) and
                   (s is None or (hi - lo <= 0x1000 and (lo - a) % s == 0))
                   for pub, m, a, b, s in self.range_flushes)

    def configs(self, sid: int) -> list[Ste]:
        """Every STE the SMMU may use for sid now: the stream table's and any cached snapshot."""
        cur = self.strtab.get(sid, _NO_STE)
        out = [cur]
        for s in self.cfgc.get(sid, ()):
            if s != cur:
                out.append(s)
        return out

    def tree(self, ste: Ste) -> tuple[list[Leaf], list[tuple]]:
        """All valid leaves and table descriptors reachable from the STE's TTB in the SMMU's view."""
        key = (self.mem.version, ste.ttb, ste.geo, ste.stage)
        t = self._tree_cache.get(key)
        if t is None:
            if len(self._tree_cache) > 192:
                self._tree_cache.clear()
            t = ste.geo.enumerate(self.mem, ste.ttb, ste.stage)
            self._tree_cache[key] = t
        return t

    def reach_set(self, ste: Ste) -> frozenset:
        """reach() as a set."""
        key = ("reach_set", self.mem.version, ste.ttb, ste.geo, ste.stage)
        r = self._tree_cache.get(key)
        if r is None:
            r = self._tree_cache[key] = frozenset(self.reach(ste))
        return r

    def reach(self, ste: Ste) -> tuple:
        """The translations a walk from the STE reaches, as a sorted tuple of (va, span, pa, perms)."""
        key = ("reach", self.mem.version, ste.ttb, ste.geo, ste.stage)
        r = self._tree_cache.get(key)
        if r is None:
            r = tuple(sorted((lf.va, lf.span, lf.pa, lf.perms) for lf in self.tree(ste)[0]))
            self._tree_cache[key] = r
        return r

    def _fill_ste(self, ste: Ste, seq: int, done: set | None = None, by_tag: dict | None = None) -> None:
        """Cache every translation and walk the STE's tables give now, at fill epoch seq. Within one fill pass
        (done: the walks already filled in it; by_tag: the TLB keys of each tag, in TLB order, kept up to date
        once built) a walk another STE of the pass shares is not filled twice: it would change nothing."""
        tag = ste.tag
        if done is not None:
            walk = (ste.ttb, ste.geo, ste.stage, tag)
            if walk in done:
                return
            done.add(walk)
        leaves, tables = self.tree(ste)
        pgs = ste.geo.pg_shift
        tlb, wc, token = self.tlb, self.wc, self.mem.page_token
        key = ("tlb_keys", self.mem.version, ste.ttb, ste.geo, ste.stage, tag)
        keys = self._tree_cache.get(key)
        if keys is None:                 # the TLB keys of this walk, made once per memory version
            keys = self._tree_cache[key] = [(tag, lf.va, lf.span, lf.pa, lf.perms, lf.level, pgs) for lf in leaves]
        tlb.update(dict.fromkeys(keys, seq))
        if by_tag is not None:
            by_tag.setdefault(tag, {}).update(dict.fromkeys(keys))
        geo = ste.geo
        if not self.cfg.walk_cache:
            return
        levels = self.cfg.walk_levels
        for lvl, prefix, nxt, addr, _desc in tables:
            if not levels >> lvl & 1:
                continue
            shift = geo.lvl_shift(lvl)
            wc[(tag, lvl, prefix << shift, 1 << shift, nxt, token(nxt), addr, pgs)] = seq

    def new_epoch(self) -> int:
        self.seq += 1
        self.eseq.append(self.seq)
        return len(self.eseq) - 1

    def fill_seq(self, epoch: int) -> int:
        return self.eseq[epoch]

    def release(self) -> None:
        """End of a run: drop the caches, the command log and memory, so that reference counting frees them
        now. The machine's objects refer to each other (driver, SMMU, memory), so left alone they wait for the
        cyclic collector, which then walks every cached translation (about 6% of a seed-002 input)."""
        for d in (self.tlb, self.wc, self.atc, self.atc_pasid, self.cfgc, self.cdc, self._tree_cache, self.pending):
            d.clear()
        self.cmd_log.clear()
        self.range_flushes.clear()
        self.mem.release()

    def fill_all(self) -> None:
        """max-cache: cache every STE, walk and translation the SMMU could reach right now.

        If nothing changed since the previous fill (memory, STEs, caches), every object that fill
        inserted is still cached and still what a walk would find: refilling it is just moving
        its fill time to now.
        """
        if not self.enabled:
            return
        key = (self.mem.version, self.strtab_ver, self.cache_ver)
        if key == self._fill_key:
            self.seq += 1
            self.eseq[self._fill_epoch] = self.seq
            return
        seq = self.new_epoch()
        self._fill_key = key
        self._fill_epoch = seq
        self._fill_caches(seq)
        self._fill_partial_views(seq)

    def _last_look(self) -> None:
        """Before stores still on their way become visible (a wmb() or a command publication): max-cache
        caches what a walk could have read while they were partly visible."""
        if self.enabled and self.cfg.policy == "max-cache":
            self._fill_partial_views(None)

    def _fill_partial_views(self, seq: int | None) -> None:
        """max-cache over the views of memory in which only some pending CPU stores are visible (seq None:
        a fill epoch of their own, if there is any such view)."""
        mem = self.mem
        views = mem.partial_views()
        if views and seq is None:
            seq = self.new_epoch()
        for view in views:
            mem.look_through(view)
            try:
                self._fill_caches(seq)
            finally:
                mem.look_through(None)

    def _fill_caches(self, seq: int) -> None:
        """Cache every STE, walk and translation reachable in the memory view walks read now."""
        done: set = set()
        by_tag: dict | None = None    # built at the first ATC fill (_tlb_by_tag), then kept up to date
        for sid, ste in self.strtab.items():
            snaps = self.cfgc.setdefault(sid, {})
            snaps[ste] = seq
            for s in list(snaps):
                if s.translates:
                    self._fill_ste(s, seq, done, by_tag)
            if sid in self.ats_enabled:
                by_tag = self._tlb_by_tag() if by_tag is None else by_tag
                self._fill_atc(sid, seq, by_tag)
        for sid, ssid in self.substreams():
            cd = self.cdtab.get((sid, ssid))
            if cd is not None and any(ssid_allowed(s, ssid) for s in self.configs(sid)):
                self.cdc.setdefault((sid, ssid), {})[cd] = seq
            confs = self.substream_configs(sid, ssid)
            for s in confs:
                self._fill_ste(s, seq, done, by_tag)
            if sid in self.ats_enabled:
                by_tag = self._tlb_by_tag() if by_tag is None else by_tag
                atc = self.atc_pasid.setdefault((sid, ssid), {})
                for s in confs:
                    if s.eats:
                        for k in by_tag.get(s.tag, ()):
                            atc[(k[1], k[2], k[3], k[4])] = seq

    def _tlb_by_tag(self) -> dict:
        """The TLB's keys grouped by tag, each group in TLB order."""
        by_tag: dict = {}
        for k in self.tlb:
            g = by_tag.get(k[0])
            if g is None:
                g = by_tag[k[0]] = {}
            g[k] = None
        return by_tag

    def _fill_atc(self, sid: int, seq: int, by_tag: dict) -> None:
        """A device with ATS on caches any translation the TLB holds for an STE it may use with EATS
        (IHI 0070 §3.9: the ATC is filled from the SMMU's translations)."""
        atc = self.atc.setdefault(sid, {})
        for s in self.configs(sid):
            if not (s.translates and s.eats):
                continue
            for k in by_tag.get(s.tag, ()):
                atc[(k[1], k[2], k[3], k[4])] = seq

    def cache_shape(self, limit: int = 256) -> frozenset:
        """The kinds of entry the TLB holds (the first `limit`) and the ATCs hold, for coverage: TLB entries
        "live"/"orphan" (its tag is / is not selected by a current STE) + "/same" (the latest STE with its
        tag still walks to it) or, gone, what the walk finds at its address now: "/gone-none" (unmapped),
        "/gone-split" (a smaller leaf: a block cached while a table replaced it), "/gone-merge" (a larger
        leaf), "/gone-moved" (another output or permissions); ATC entries "atc/" + the same classes (a stale one
        is a translation the stream's tables no longer give, e.g. filled from a TLB entry pending invalidation).
        An orphan/gone entry is a stale translation nobody invalidated that a stream re-attached to its tag
        would hit. "pending": commands published and not yet completed by a CMD_SYNC (§4.1.4), e.g. while
        another CPU's op runs in an invalidation's window (a PREFETCH_CONFIG, which arm_smmu_write_ste() issues
        without a sync, has nothing to wait for and does not count)."""
        pending = sum(c.op != C.CMD_PREFETCH_CONFIG for q in self.pending.values() for _p, c, _e in q)
        memo = (self.mem.version, self.strtab_ver, self.cache_ver, len(self.tlb), len(self.atc), pending)
        if memo == self._shape_memo[0]:
            return self._shape_memo[1]
        live = {ste.tag for ste in self.strtab.values() if ste.translates}
        walks: dict = {}
        kinds = {"pending"} if pending else set()

        def walk(ste) -> tuple:
            """The leaves the STE's tables give now, sorted by address, their addresses, and the TLB-key
            tails (va, span, pa, perms, level) they make."""
            if ste is None:
                return [], [], frozenset()
            w = walks.get(id(ste))
            if w is None:
                key = ("by_va", self.mem.version, ste.ttb, ste.geo, ste.stage)
                w = self._tree_cache.get(key)
                if w is None:
                    leaves = sorted(self.tree(ste)[0], key=lambda lf: lf.va)
                    tails = frozenset((lf.va, lf.span, lf.pa, lf.perms, lf.level) for lf in leaves)
                    w = self._tree_cache[key] = ([lf.va for lf in leaves], leaves, tails)
                walks[id(ste)] = w
            return w

        def now(w, va: int, span: int, pa: int, perms, whole: bool = True) -> str:
            """What the walk gives at an entry's address against what the entry holds (a TLB entry is a
            whole leaf; an ATC entry, `whole` False, a 4 KiB piece of one)."""
            vas, leaves, _keys = w
            j = bisect.bisect_right(vas, va) - 1
            if j < 0 or not leaves[j].va <= va < leaves[j].va + leaves[j].span:
                return "gone-none"
            lf = leaves[j]
            if va + span > lf.va + lf.span:
                return "gone-split"
            if whole and lf.span > span:
                return "gone-merge"
            return "gone-moved" if lf.pa + (va - lf.va) != pa or lf.perms != perms else "same"

        for n, key in enumerate(self.tlb):
            if n >= limit:
                break
            tag = key[0]
            w = walk(self.tag_ste.get(tag))      # most entries are a current leaf: a set lookup, no search
            state = "same" if key[1:6] in w[2] else now(w, *key[1:5])
            kinds.add(("live" if tag in live else "orphan") + "/" + state)
        for sid, entries in self.atc.items():
            ste = self.strtab.get(sid)
            w = walk(ste if ste is not None and ste.translates else None)
            for n, entry in enumerate(entries):
                if n >= limit:
                    break
                kinds.add("atc/" + now(w, *entry, whole=False))
        self._shape_memo = (memo, frozenset(kinds))
        return self._shape_memo[1]

    def translate(self, sid: int, va: int, insert: bool = True, ssid: int = 0) -> list[Outcome]:
        """All outcomes a device access to va (with PASID ssid if not 0) may have now (ATC, TLB, walk cache,
        fresh walk); none while SMMUEN is 0 (GBPA.ABORT, as Linux leaves it)."""
        if not self.enabled:
            return []
        seq = self.new_epoch()
        if insert:
            self.cache_ver += 1
        eseq = self.eseq
        out: list[Outcome] = []
        if sid in self.ats_enabled:
            atc = self.atc_pasid.get((sid, ssid), {}) if ssid else self.atc.get(sid, {})
            for (ava, span, pa, perms), s in atc.items():
                if ava <= va < ava + span:
                    out.append(Outcome(pa + (va - ava), perms, "atc", eseq[s]))
        for ste in (self.substream_configs(sid, ssid) if ssid else self.configs(sid)):
            if ste.config == "bypass":
                out.append(Outcome(va, "rw", "bypass"))
                continue
            if not ste.translates:
                continue
            tag = ste.tag
            for k, s in self.tlb.items():
                if k[0] == tag and k[1] <= va < k[1] + k[2]:
                    out.append(Outcome(k[3] + (va - k[1]), k[4], "tlb", eseq[s]))
            leaf, steps = ste.geo.walk(self.mem, ste.ttb, ste.stage, va)
            if leaf is not None:
                out.append(Outcome(leaf.pa + (va - leaf.va), leaf.perms, "walk"))
                if insert:
                    self.tlb[(tag, leaf.va, leaf.span, leaf.pa, leaf.perms, leaf.level, ste.geo.pg_shift)] = seq
            if insert and self.cfg.walk_cache:
                for lvl, prefix, nxt, addr, _d in steps:
                    if not self.cfg.walk_levels >> lvl & 1:
                        continue
                    shift = ste.geo.lvl_shift(lvl)
                    self.wc[(tag, lvl, prefix << shift, 1 << shift, nxt, self.mem.page_token(nxt), addr,
                             ste.geo.pg_shift)] = seq
            for k, s in self.wc.items():
                if k[0] == tag and k[2] <= va < k[2] + k[3]:
                    lf = ste.geo.walk_from(self.mem, k[1] + 1, k[4], ste.stage, va)
                    if lf is not None:
                        out.append(Outcome(lf.pa + (va - lf.va), lf.perms, "walk-cache", eseq[s]))
        return out

    def ats_translate(self, sid: int, va: int, ssid: int = 0) -> list[Outcome]:
        """ATS Translation Request (with PASID ssid if not 0): the answer (any possible SMMU outcome) is
        inserted in the ATC, tagged with the PASID."""
        if sid not in self.ats_enabled or not self.enabled:
            return []
        confs = self.substream_configs(sid, ssid) if ssid else self.configs(sid)
        if not any(s.translates and s.eats for s in confs):
            return []
        outs = [o for o in self.translate(sid, va, ssid=ssid) if o.source != "atc"]
        atc = self.atc_pasid.setdefault((sid, ssid), {}) if ssid else self.atc.setdefault(sid, {})
        ep = len(self.eseq) - 1
        for o in outs:
            atc[(va & ~0xFFF, 4096, o.pa & ~0xFFF, o.perms)] = ep
        return outs

    # ------------------------------------------------------------------ other hardware events
    def evict(self, what: str, idx: int) -> None:
        """Drop one cached entry (or everything with what='all')."""
        self.cache_ver += 1
        if what == "all":
            self.tlb.clear()
            self.wc.clear()
            self.atc.clear()
            self.cfgc.clear()
            self.cdc.clear()
            self.atc_pasid.clear()
            return
        d = self.tlb if what == "tlb" else self.wc
        if d:
            keys = sorted(d, key=repr)
            del d[keys[idx % len(keys)]]

    def writeback(self, idx: int | None) -> None:
        """A dirty CPU cache line reaches the PoC (idx None: all of them)."""
        lines = self.mem.dirty_lines()
        if not lines:
            return
        if idx is None:
            for line in lines:
                self.mem.writeback(line)
        else:
            self.mem.writeback(lines[idx % len(lines)])


INSTANCE_NS = 1 << 16      # ASID/VMID are 16-bit: instance k's tags live at k * 2^16 + id


class SmmuInstance:
    """Another SMMU instance sharing the memory system (and the emulator's caches, kept apart by tag):
    its STEs and its command queue's TLBIs use ASID/VMID + k * 2^16, so an invalidation published to
    one instance never removes another instance's entries, and its CMD_SYNC completes only its own
    queue's commands. Stream IDs are the caller's to partition."""

    def __init__(self, smmu: Smmu, index: int):
        self.smmu = smmu
        self.index = index
        self.ns = index * INSTANCE_NS

    def __getattr__(self, name):
        return getattr(self.smmu, name)

    def write_ste(self, sid: int, ste: Ste) -> None:
        self.smmu.write_ste(sid, ste, self.ns)

    def write_ste_words(self, sid: int, words) -> None:
        self.smmu.write_ste_words(sid, words, self.ns)

    def store_ste(self, sid: int, q: int, val: int) -> None:
        self.smmu.store_ste(sid, q, val, self.ns)

    def ste_words(self, sid: int) -> tuple[int, ...]:
        self.smmu.ste_ns.setdefault(sid, self.ns)
        return self.smmu.ste_words(sid)

    def cmdq_publish(self, entries: list[tuple[int, int]]) -> None:
        self.smmu.cmdq_publish(entries, self.ns)
