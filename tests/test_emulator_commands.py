"""The reference SMMU's command semantics, driven as a hardware test would drive an SMMU (no variants).

Every test builds VMSAv8-64 tables by hand, fills the caches, publishes commands and checks exactly
which entries are left: what each command must remove (IHI 0070 §4) and, because the reference is
the laziest legal SMMU, nothing more. Run just these with `pytest -m emulator` (a few seconds).
"""

from collections import Counter

import pytest

from smmufuzz.reference import cmdq as C
from smmufuzz.reference.lpae import ADDR_MASK_48, PTE_AF, S1_AP_RDONLY, S2_HAP_READ, S2_HAP_WRITE, geometry_for
from smmufuzz.reference.smmu import HwConfig, Smmu, SmmuInstance
from smmufuzz.reference.ste import Ste

pytestmark = pytest.mark.emulator

K4, K16, K64, M2, M32, G1 = 1 << 12, 1 << 14, 1 << 16, 1 << 21, 1 << 25, 1 << 30
TG4K, TG16K, TG64K = 1, 2, 3
SYNC = (C.CMD_SYNC, 0)


# ---------------------------------------------------------------------------------- command encodings
def tlbi(op, addr=0, asid=0, vmid=0, leaf=0, tg=0, ttl=0, num=0, scale=0):
    """A CMD_TLBI_* entry (IHI 0070 §4.4: NUM [16:12], SCALE [24:20], VMID [47:32], ASID [63:48]; Leaf [64],
    TTL [73:72], TG [75:74], Address [127:76])."""
    return (op | num << 12 | scale << 20 | vmid << 32 | asid << 48,
            leaf | ttl << 8 | tg << 10 | addr)


def atc_inv(sid, addr=0, size=0, ssv=0, ssid=0):
    """CMD_ATC_INV (§4.5.1: SSV [11], SubstreamID [31:12], StreamID [63:32]; Size [69:64], Address [127:76])."""
    return C.CMD_ATC_INV | ssv << 11 | ssid << 12 | sid << 32, size | addr


def cfgi(op, sid, ssid=0, leaf=1, rng=None):
    """CMD_CFGI_STE / _STE_RANGE / _CD / _CD_ALL (§4.3: SubstreamID [31:12], StreamID [63:32]; Leaf [64]
    or Range [68:64])."""
    return op | ssid << 12 | sid << 32, (rng if rng is not None else leaf)


# ---------------------------------------------------------------------------------- a test rig
class Tables:
    """Translation tables written into the SMMU's memory the way a driver would (coherent walks)."""

    def __init__(self, smmu, pg_shift=12, ias=48, stage=1):
        self.mem = smmu.mem
        self.stage = stage
        self.geo = geometry_for(pg_shift, ias, stage)
        self.root = self.mem.alloc_pages(8 << self.geo.pgd_bits)

    def _slot(self, va, level, make):
        geo, mem = self.geo, self.mem
        table = self.root
        for lvl in range(geo.start_level, level):
            addr = table + 8 * ((va >> geo.lvl_shift(lvl)) & ((1 << geo.idx_bits(lvl)) - 1))
            desc = mem.cpu_read(addr)
            if not desc & 1:
                assert make, f"no table at level {lvl} for {va:#x}"
                nxt = mem.alloc_pages(geo.granule)
                mem.cpu_write(addr, nxt | 3)
                desc = nxt | 3
            table = desc & ADDR_MASK_48
        return table + 8 * ((va >> geo.lvl_shift(level)) & ((1 << geo.idx_bits(level)) - 1))

    def map(self, va, pa=None, level=3, perms="rw"):
        pa = 0x8000_0000 + va if pa is None else pa
        if self.stage == 1:
            attrs = PTE_AF | (S1_AP_RDONLY if perms == "r" else 0)
        else:
            attrs = PTE_AF | (S2_HAP_READ if "r" in perms else 0) | (S2_HAP_WRITE if "w" in perms else 0)
        self.mem.cpu_write(self._slot(va, level, True), pa | attrs | (3 if level == 3 else 1))
        return self

    def clear(self, va, level=3):
        self.mem.cpu_write(self._slot(va, level, False), 0)

    def raw(self, va, level, desc):
        """Write any descriptor at the slot for va at level (the tables above it are made)."""
        self.mem.cpu_write(self._slot(va, level, True), desc)
        return self


def rig(**cfg):
    cfg.setdefault("policy", "none")
    return Smmu(HwConfig(**cfg))


def attach(smmu, sid, tables, config="s1", asid=1, vmid=0, eats=False, el2=False):
    """A stage-2 STE has no ASID (its words hold none)."""
    ste = Ste(config, asid=asid if config == "s1" else 0, vmid=vmid, ttb=tables.root, geo=tables.geo, eats=eats,
              el2=el2)
    smmu.write_ste(sid, ste)
    return ste


def publish(smmu, *cmds):
    """The commands then a CMD_SYNC, as one batch; CERROR_ILL messages raised by them."""
    n = len(smmu.errors)
    smmu.cmdq_publish(list(cmds) + [SYNC])
    return smmu.errors[n:]


def tlb(smmu, tag=None):
    """{(va, span)} of the TLB's leaf entries (of one tag)."""
    return {(k[1], k[2]) for k in smmu.tlb if tag is None or k[0] == tag}


def tlb_levels(smmu, tag=None):
    return {(k[1], k[5]) for k in smmu.tlb if tag is None or k[0] == tag}


def walks(smmu, tag=None):
    """{(level, va)} of the walk cache's table-descriptor entries (of one tag)."""
    return {(k[1], k[2]) for k in smmu.wc if tag is None or k[0] == tag}


def walks_g(smmu):
    """The walk cache's (level, va) with their multiplicity (entries of several tables)."""
    return Counter((k[1], k[2]) for k in smmu.wc)


def atc(smmu, sid):
    return {k[0] for k in smmu.atc.get(sid, {})}


# ================================================================================ item 8: batched TLBIs
def test_single_address_tlbis_at_a_stride_remove_only_their_own_pages():
    """TLBI_NH_VA at 0x200000 and 0x400000 in one batch leave the 4K entry at 0x300000 (§4.4.2.4)."""
    smmu = rig()
    t = Tables(smmu)
    for va in (0x200000, 0x300000, 0x400000):
        t.map(va)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x200000, asid=1, leaf=1),
                   tlbi(C.CMD_TLBI_NH_VA, 0x400000, asid=1, leaf=1)) == []
    assert tlb(smmu) == {(0x300000, K4)}


@pytest.mark.parametrize("stride", [K4, 2 * K4, 3 * K4, 0x10000, M2])
@pytest.mark.parametrize("leaf", [0, 1])
def test_a_long_run_of_single_address_tlbis_equals_the_commands_one_by_one(stride, leaf):
    """A run of per-page TLBIs (the kernel's non-RIL loop) removes the entries holding one of its addresses
    and nothing else, walk-cache entries included when Leaf=0."""
    smmu = rig()
    t = Tables(smmu)
    pages = [i * K4 for i in range(0x1FE, 0x1FE + 1200)]          # 4K pages across 3 level-3 tables
    for va in pages:
        t.map(va)
    t.map(0x4000_0000, level=1)                                    # a 1G block far away
    ste = attach(smmu, 0, t)
    smmu.fill_all()
    first, count = 0x1FF000, 300
    addrs = [first + i * stride for i in range(count)]
    before_wc = walks(smmu)
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, a, asid=1, leaf=leaf) for a in addrs])
    hit = set(addrs)
    assert tlb(smmu, ste.tag) == {(va, K4) for va in pages if va not in hit} | {(0x4000_0000, G1)}
    if leaf:
        assert walks(smmu) == before_wc
    else:
        assert walks(smmu) == {(lvl, va) for lvl, va in before_wc
                               if not any(va <= a < va + (1 << t.geo.lvl_shift(lvl)) for a in addrs)}


def test_a_sparse_run_of_single_address_tlbis_covers_only_its_pages():
    """The runner's coverage question (FQ settling): a 2M-stride run covers its own pages, not the ones between."""
    smmu = rig()
    t = Tables(smmu).map(0x200000)
    ste = attach(smmu, 0, t)
    smmu.fill_all()
    seq = smmu.seq
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, 0x200000 + i * M2, asid=1) for i in range(4)])
    assert smmu.covered_since(ste.tag, seq, 0x200000, 0x201000)
    assert smmu.covered_since(ste.tag, seq, 0x600000, 0x601000)
    assert not smmu.covered_since(ste.tag, seq, 0x300000, 0x301000)
    assert not smmu.covered_since(ste.tag, seq, 0x200000, 0x202000)
    assert not smmu.covered_since(ste.tag, smmu.seq, 0x200000, 0x201000)    # published before seq
    assert not smmu.covered_since(ste.tag, seq + 1, 0x200000, 0x201000)     # published at seq + 1
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, 0x800000 + i * K4, asid=1) for i in range(4)])
    assert smmu.covered_since(ste.tag, seq, 0x800000, 0x804000)
    assert not smmu.covered_since(ste.tag, seq, 0x800000, 0x805000)
    assert not smmu.covered_since(("nh", 0, 2), seq, 0x800000, 0x801000)


# ================================================================================ single-address TLBIs
def test_a_single_address_removes_every_leaf_holding_it_at_any_level():
    """§4.4: the address's low bits are ignored as needed for the size of the entry."""
    smmu = rig()
    t = Tables(smmu).map(0x4000_0000, level=1).map(0x200000, level=2).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x4123_4000, asid=1, leaf=1),
            tlbi(C.CMD_TLBI_NH_VA, 0x3FF000, asid=1, leaf=1), tlbi(C.CMD_TLBI_NH_VA, 0x2000, asid=1, leaf=1))
    assert tlb(smmu) == {(0x1000, K4)}


def test_tg0_ignores_ttl_num_and_scale():
    """§4.4.1.1: with TG=0b00 NUM, SCALE and TTL are RES0; the command is the single address at any level."""
    smmu = rig(range_inv=True)
    t = Tables(smmu).map(0x200000, level=2).map(0x400000).map(0x401000)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x200000, asid=1, leaf=1, ttl=3, num=31, scale=5)) == []
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x400000, asid=1, leaf=1, ttl=2, num=1)) == []
    assert tlb(smmu) == {(0x401000, K4)}


def test_nothing_is_removed_before_the_cmd_sync():
    """§4.1.4, §4.4: the laziest SMMU completes a TLBI at the next CMD_SYNC, not at consumption."""
    smmu = rig()
    t = Tables(smmu).map(0x1000)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1), tlbi(C.CMD_TLBI_NH_ASID, asid=1),
                       cfgi(C.CMD_CFGI_STE, 0)])
    assert tlb(smmu) == {(0x1000, K4)} and walks(smmu)
    smmu.cmdq_publish([SYNC])
    assert tlb(smmu) == set() and walks(smmu) == set()


def test_entries_filled_after_publication_survive_the_sync():
    """An invalidation only removes what was cached before it was published: a walk between the TLBI and its
    CMD_SYNC (the PTE still valid) leaves an entry that a later TLBI + CMD_SYNC removes."""
    smmu = rig()
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1, leaf=0), tlbi(C.CMD_TLBI_NH_ASID, asid=1)])
    smmu.translate(0, 0x1000)                         # refilled after both were published
    smmu.cmdq_publish([SYNC])
    assert tlb(smmu) == {(0x1000, K4)}
    assert {lvl for lvl, _va in walks(smmu)} == {0, 1, 2}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1, leaf=0))
    assert tlb(smmu) == set() and walks(smmu) == set()


def test_leaf_tlbi_keeps_the_walk_cache_and_non_leaf_removes_only_walks_of_its_address():
    """§4.4.2.4: Leaf=1 needs only last-level entries; Leaf=0 also the table descriptors used for the
    address (and no other's)."""
    smmu = rig()
    t = Tables(smmu).map(0x1000).map(0x4000_0000).map(0x80_0000_0000)
    attach(smmu, 0, t)
    smmu.fill_all()
    wc = walks(smmu)
    assert wc == {(0, 0), (1, 0), (2, 0), (1, 0x4000_0000), (2, 0x4000_0000), (0, 0x80_0000_0000),
                  (1, 0x80_0000_0000), (2, 0x80_0000_0000)}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1, leaf=1))
    assert walks(smmu) == wc and (0x1000, K4) not in tlb(smmu)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x4000_0000, asid=1, leaf=0))
    assert walks(smmu) == wc - {(0, 0), (1, 0x4000_0000), (2, 0x4000_0000)}
    assert tlb(smmu) == {(0x80_0000_0000, K4)}


def test_a_non_leaf_range_keeps_walks_that_start_at_its_end():
    """[Address, Address + Range) is half-open: a table descriptor for the next 1G is not in a 1G range."""
    smmu = rig(range_inv=True)
    t = Tables(smmu).map(0x1000).map(0x4000_0000)
    attach(smmu, 0, t)
    smmu.fill_all()
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=0, tg=TG4K, num=0, scale=18))
    assert walks(smmu) == {(1, 0x4000_0000), (2, 0x4000_0000)}
    assert tlb(smmu) == {(0x4000_0000, K4)}


# ================================================================================ range TLBIs (RIL)
def _range_rig(pg_shift=12):
    smmu = rig(range_inv=True)
    t = Tables(smmu, pg_shift=pg_shift)
    g = 1 << pg_shift
    for i in range(40):
        t.map(0x1000_0000 + i * g)
    t.map(0xFFFF_FFFF_F000 & ~(g - 1))            # the last page of the 48-bit space
    t.map(0)                                      # the first
    ste = attach(smmu, 0, t)
    smmu.fill_all()
    return smmu, t, ste, g


@pytest.mark.parametrize("num,scale,offset", [
    (0, 0, 0), (0, 0, 39), (1, 0, 0), (30, 0, 3), (31, 0, 0), (31, 0, 8),   # NUM 0..31
    (0, 1, 2), (3, 2, 0), (0, 5, 0), (4, 3, 1), (9, 2, 4),                   # SCALE > 0
    (0, 31, 0), (31, 31, 0),                                                 # 2^31 and 2^36 granules
])
@pytest.mark.parametrize("pg_shift", [12, 14, 16])
def test_range_covers_exactly_num_plus_1_times_2_to_scale_granules(pg_shift, num, scale, offset):
    """§4.4.1.1: Address <= A < Address + (NUM+1) * 2^SCALE * granule, for each TG."""
    smmu, t, ste, g = _range_rig(pg_shift)
    lo = 0x1000_0000 + offset * g
    hi = lo + ((num + 1) << scale) * g
    before = tlb(smmu, ste.tag)
    tg = {12: TG4K, 14: TG16K, 16: TG64K}[pg_shift]
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, lo, asid=1, leaf=1, tg=tg, ttl=3, num=num, scale=scale)) == []
    assert tlb(smmu, ste.tag) == {(va, s) for va, s in before if not (lo <= va < hi)}


def test_range_at_the_top_of_the_address_space_does_not_wrap():
    """§4.4.1.1: a range past the top of the 48-bit space, or past 2^64, does not wrap to address 0."""
    smmu, t, ste, g = _range_rig()
    top = 0xFFFF_FFFF_F000
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, top, asid=1, leaf=1, tg=TG4K, ttl=3, num=31, scale=31))
    assert (top, K4) not in tlb(smmu) and (0, K4) in tlb(smmu)
    n = len(tlb(smmu))
    for addr in (0xFFFF_FFFF_FFFF_F000, 0xFFFF_0000_0000_0000, 1 << 48):
        assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, addr, asid=1, leaf=0, tg=TG4K, num=31, scale=31)) == []
    assert len(tlb(smmu)) == n and (0, K4) in tlb(smmu)


def test_range_of_2_to_52_bytes_from_zero_covers_the_whole_48_bit_space():
    smmu, t, ste, g = _range_rig(16)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1, tg=TG64K, num=31, scale=31))
    assert tlb(smmu) == set()


@pytest.mark.parametrize("tg,pg_shift", [(TG4K, 16), (TG16K, 12), (TG64K, 14), (TG64K, 12)])
def test_tg_scopes_leaves_and_walks_to_its_granule(tg, pg_shift):
    """§4.4.1.1 TG: only entries inserted with that granule, TLB and table descriptors alike."""
    smmu = rig(range_inv=True)
    other = Tables(smmu, pg_shift=pg_shift).map(0x1000_0000)
    attach(smmu, 0, other)
    smmu.fill_all()
    before_tlb, before_wc = tlb(smmu), walks_g(smmu)
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000_0000, asid=1, leaf=0, tg=tg, num=31, scale=20)) == []
    assert (tlb(smmu), walks_g(smmu)) == (before_tlb, before_wc)
    g = {TG4K: 12, TG16K: 14, TG64K: 16}[tg]
    same = Tables(smmu, pg_shift=g).map(0x1000_0000)
    attach(smmu, 1, same)                          # same ASID, the TG's granule
    smmu.fill_all()
    assert len(smmu.tlb) == 2 * len(before_tlb) and len(smmu.wc) > len(before_wc)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000_0000, asid=1, leaf=0, tg=tg, num=31, scale=20))
    assert (tlb(smmu), walks_g(smmu)) == (before_tlb, before_wc)


def _levels_rig():
    smmu = rig(range_inv=True)
    t = Tables(smmu).map(0x4000_0000, level=1).map(0x200000, level=2).map(0x1000).map(0x80_0000_0000, level=1)
    ste = attach(smmu, 0, t)
    smmu.fill_all()
    return smmu, t, ste


@pytest.mark.parametrize("ttl,left", [
    (0, set()),
    (1, {(0x200000, 2), (0x1000, 3)}),
    (2, {(0x4000_0000, 1), (0x1000, 3)}),
    (3, {(0x4000_0000, 1), (0x200000, 2)}),
])
def test_ttl_limits_leaf_entries_to_its_level(ttl, left):
    """§4.4.1.1 TTL: leaf entries at the TTL level only (0b00: any level); the 1G block at 512G is out of range."""
    smmu, t, ste = _levels_rig()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1, tg=TG4K, ttl=ttl, num=1, scale=18)) == []
    assert tlb_levels(smmu) == left | {(0x80_0000_0000, 1)}


@pytest.mark.parametrize("ttl,walks_left", [
    (0, set()),
    (1, {(1, 0), (2, 0)}),             # levels before 1: level 0 only
    (2, {(2, 0)}),                     # §4.4.1.1's example: levels 0 and 1 go, level-2 tables stay
    (3, set()),
])
def test_ttl_with_leaf_0_removes_table_descriptors_before_its_level_only(ttl, walks_left):
    """§4.4.1.1: with Leaf=0 table descriptors go from the start of the walk to the level before TTL."""
    smmu, t, ste = _levels_rig()
    assert walks(smmu) == {(0, 0), (1, 0), (2, 0), (0, 0x80_0000_0000)}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=0, tg=TG4K, ttl=ttl, num=1, scale=18))
    assert walks(smmu) == walks_left | {(0, 0x80_0000_0000)}


def test_ttl_1_with_a_16k_granule_is_treated_as_0():
    """§4.4.1.1: TTL=0b01 with TG=16KB is Reserved (no SMMU_IDR5.DS) and treated as 0b00: any level, and
    CERROR_ILL when NUM=SCALE=0."""
    smmu = rig(range_inv=True)
    t = Tables(smmu, pg_shift=14).map(0x200_0000, level=2).map(0x1000_0000)
    attach(smmu, 0, t)
    smmu.fill_all()
    errs = publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000_0000, asid=1, leaf=1, tg=TG16K, ttl=1))
    assert len(errs) == 1 and "CERROR_ILL" in errs[0]
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1, tg=TG16K, ttl=1, num=0, scale=20)) == []
    assert tlb(smmu) == set()


@pytest.mark.parametrize("tg,ttl,addr,ok", [
    (TG4K, 2, 0x201000, False), (TG4K, 2, 0x300000, False), (TG4K, 2, 0x200000, True), (TG4K, 1, 0x4020_0000, False),
    (TG4K, 1, 0x4000_0000, True), (TG4K, 3, 0x201000, True), (TG4K, 0, 0x201000, True),
    (TG16K, 3, 0x201000, False), (TG16K, 0, 0x202000, False), (TG16K, 3, 0x204000, True),
    (TG16K, 2, 0x200_4000, False), (TG16K, 2, 0x200_0000, True),
    (TG64K, 3, 0x208000, False), (TG64K, 3, 0x210000, True), (TG64K, 2, 0x2000_0000 + K64, False),
])
def test_a_range_address_misaligned_for_its_level_invalidates_nothing(tg, ttl, addr, ok):
    """§4.4.1.1: Address bits below the TTL level's block size (the granule with TTL=0) must be zero, else the
    range is UNPREDICTABLE; the laziest SMMU invalidates nothing."""
    smmu = rig(range_inv=True)
    pg_shift = {TG4K: 12, TG16K: 14, TG64K: 16}[tg]
    t = Tables(smmu, pg_shift=pg_shift)
    level = ttl or 3
    span = 1 << t.geo.lvl_shift(level)
    base = addr & ~(span - 1)
    t.map(base, level=level)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, addr, asid=1, leaf=1, tg=tg, ttl=ttl, num=3, scale=0)) == []
    assert tlb(smmu) == (set() if ok else {(base, span)})


def test_s2_range_by_ipa():
    """§4.4.3.1 with §4.4.1.1: TLBI_S2_IPA ranges over stage-2 entries of its VMID."""
    smmu = rig(range_inv=True)
    t = Tables(smmu, stage=2)
    for i in range(8):
        t.map(0x10_0000 + i * K4)
    ste = attach(smmu, 0, t, config="s2", vmid=3)
    smmu.fill_all()
    publish(smmu, tlbi(C.CMD_TLBI_S2_IPA, 0x10_2000, vmid=3, leaf=1, tg=TG4K, ttl=3, num=2))
    publish(smmu, tlbi(C.CMD_TLBI_S2_IPA, 0x10_0000, vmid=4, leaf=1, tg=TG4K, ttl=3, num=7))
    assert tlb(smmu, ste.tag) == {(0x10_0000 + i * K4, K4) for i in (0, 1, 5, 6, 7)}


# ================================================================================ ASID / VMID scoping
CTX = {          # name: (config, asid, vmid, el2)
    "A": ("s1", 1, 0, False), "B": ("s1", 2, 0, False), "C": ("s1", 1, 5, False),
    "S2": ("s2", 0, 5, False), "S2b": ("s2", 0, 6, False), "E": ("s1", 1, 0, True), "Eb": ("s1", 2, 0, True),
}
VA = 0x20_0000


def _contexts():
    smmu = rig(e2h=True, range_inv=True)
    tags = {}
    for sid, (name, (config, asid, vmid, el2)) in enumerate(CTX.items()):
        t = Tables(smmu, stage=2 if config == "s2" else 1).map(VA).map(VA + K4)
        tags[name] = attach(smmu, sid, t, config=config, asid=asid, vmid=vmid, el2=el2).tag
    smmu.fill_all()
    return smmu, tags


@pytest.mark.parametrize("cmd,hit,whole", [
    (tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, vmid=0), {"A"}, False),
    (tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, vmid=5), {"C"}, False),
    (tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, vmid=0, tg=TG4K, ttl=3, num=1), {"A"}, True),
    (tlbi(C.CMD_TLBI_NH_VAA, VA, vmid=0), {"A", "B"}, False),
    (tlbi(C.CMD_TLBI_NH_ASID, asid=1, vmid=0), {"A"}, True),
    (tlbi(C.CMD_TLBI_NH_ASID, asid=2, vmid=5), set(), True),
    (tlbi(C.CMD_TLBI_NH_ALL, vmid=0), {"A", "B"}, True),
    (tlbi(C.CMD_TLBI_NH_ALL, vmid=5), {"C"}, True),
    (tlbi(C.CMD_TLBI_S2_IPA, VA, vmid=5), {"S2"}, False),
    (tlbi(C.CMD_TLBI_S12_VMALL, vmid=5), {"C", "S2"}, True),
    (tlbi(C.CMD_TLBI_NSNH_ALL), {"A", "B", "C", "S2", "S2b"}, True),
    (tlbi(C.CMD_TLBI_EL2_VA, VA, asid=1), {"E"}, False),
    (tlbi(C.CMD_TLBI_EL2_ASID, asid=2), {"Eb"}, True),
    (tlbi(C.CMD_TLBI_EL2_ALL), {"E", "Eb"}, True),
])
def test_tlbi_scope_by_asid_vmid_and_world(cmd, hit, whole):
    """§4.4.2, §4.4.3, §4.4.4: each TLBI reaches its translation regime, VMID and ASID only."""
    smmu, tags = _contexts()
    before = {n: tlb(smmu, tag) for n, tag in tags.items()}
    wc_before = {n: walks(smmu, tag) for n, tag in tags.items()}
    assert publish(smmu, cmd) == []
    for name, tag in tags.items():
        left = tlb(smmu, tag)
        if name not in hit:
            assert left == before[name], name
            assert walks(smmu, tag) == wc_before[name], name
        elif whole:
            assert left == set(), name
        else:
            assert left == before[name] - {(VA, K4)}, name


def test_a_second_instance_namespaces_its_tags():
    """Two SMMU instances on one memory system: one's TLBIs never reach the other's entries."""
    smmu = rig()
    inst = SmmuInstance(smmu, 1)
    t = Tables(smmu).map(VA)
    attach(smmu, 0, t)
    inst.write_ste(1, Ste("s1", asid=1, ttb=t.root, geo=t.geo))
    smmu.fill_all()
    assert smmu.strtab[1].tag == ("nh", 1 << 16, (1 << 16) + 1) and smmu.strtab[1].ttb == t.root
    assert tlb(smmu, ("nh", 1 << 16, (1 << 16) + 1)) == {(VA, K4)}
    inst.cmdq_publish([tlbi(C.CMD_TLBI_NH_ASID, asid=1), SYNC])
    assert tlb(smmu, ("nh", 0, 1)) == {(VA, K4)} and tlb(smmu, ("nh", 1 << 16, (1 << 16) + 1)) == set()
    inst.write_ste(2, Ste("abort"))
    assert smmu.strtab[2] == Ste("abort")


def test_a_cmd_sync_completes_only_its_own_queues_commands():
    """§4.1.4: CMD_SYNC completes the commands before it in the same queue; another instance's SYNC does not."""
    smmu = rig()
    inst = SmmuInstance(smmu, 1)
    t = Tables(smmu).map(VA)
    attach(smmu, 0, t)
    inst.write_ste(1, Ste("s1", asid=1, ttb=t.root, geo=t.geo))
    smmu.fill_all()
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_ASID, asid=1)])
    inst.cmdq_publish([tlbi(C.CMD_TLBI_NH_ASID, asid=1)])
    inst.cmdq_publish([SYNC])
    assert tlb(smmu, ("nh", 0, 1)) == {(VA, K4)} and tlb(smmu, ("nh", 1 << 16, (1 << 16) + 1)) == set()
    smmu.cmdq_publish([SYNC])
    assert tlb(smmu) == set()


# ================================================================================ configuration caches
def _stale_stes(n=8, **new):
    smmu = rig()
    t = Tables(smmu).map(VA)
    for sid in range(n):
        attach(smmu, sid, t, asid=1)
    smmu.fill_all()
    for sid in range(n):
        attach(smmu, sid, t, **{"asid": 2, **new})
    return smmu


def stale(smmu, n=8):
    """The StreamIDs whose old STE (ASID 1) may still be used."""
    return {sid for sid in range(n) if any(s.asid == 1 for s in smmu.configs(sid))}


@pytest.mark.parametrize("cmd,left", [
    (cfgi(C.CMD_CFGI_STE, 3), {0, 1, 2, 4, 5, 6, 7}),
    (cfgi(C.CMD_CFGI_STE, 3, leaf=0), {0, 1, 2, 4, 5, 6, 7}),
    (cfgi(C.CMD_CFGI_ALL, 6, rng=0), {0, 1, 2, 3, 4, 5}),          # 2 StreamIDs: 6, 7
    (cfgi(C.CMD_CFGI_ALL, 5, rng=1), {0, 1, 2, 3}),                # 4: 4..7 (low bits IGNORED)
    (cfgi(C.CMD_CFGI_ALL, 9, rng=2), set(range(8))),               # 8: 8..15
    (cfgi(C.CMD_CFGI_ALL, 0, rng=31), set()),                      # CMD_CFGI_ALL
    (cfgi(C.CMD_CFGI_ALL, 0x1234, rng=31), set()),
])
def test_cfgi_ste_forms_invalidate_their_streamids_only(cmd, left):
    """§4.3.1, §4.3.2, §4.3.6."""
    smmu = _stale_stes()
    assert stale(smmu) == set(range(8))
    assert publish(smmu, cmd) == []
    assert stale(smmu) == left
    assert tlb(smmu) == {(VA, K4)}            # configuration invalidation leaves the TLB alone (§4.3.1)


def test_cfgi_cd_refetches_the_cd_but_keeps_the_cached_ste_fields():
    """§4.3.3, §4.3: CFGI_CD invalidates the CD (ASID, TTB, TCR), not the STE (here: EATS)."""
    smmu = _stale_stes()
    t2 = Tables(smmu, pg_shift=16).map(VA)
    for sid in range(8):
        attach(smmu, sid, t2, asid=2, eats=True)
    new = smmu.strtab[3]
    old = smmu.configs(3)[1]
    assert (old.asid, old.eats, old.ttb) == (1, False, smmu.configs(0)[1].ttb) and old.ttb != new.ttb
    publish(smmu, cfgi(C.CMD_CFGI_CD, 3))
    assert set(smmu.configs(3)) == {new, Ste("s1", asid=2, ttb=t2.root, geo=t2.geo, eats=False)}
    publish(smmu, cfgi(C.CMD_CFGI_CD_ALL, 2))
    assert set(smmu.configs(2)) == {new, Ste("s1", asid=2, ttb=t2.root, geo=t2.geo, eats=False)}
    assert stale(smmu) == {0, 1, 4, 5, 6, 7}
    publish(smmu, cfgi(C.CMD_CFGI_CD, 4, ssid=1))          # no CD at SubstreamID 1 (SSIDSIZE = 0)
    assert 4 in stale(smmu)
    publish(smmu, cfgi(C.CMD_CFGI_STE, 3))
    assert smmu.configs(3) == [new]


def test_cfgi_cd_keeps_a_cached_ste_without_a_cd_or_with_no_cd_now():
    """A stage-2 STE has no CD; with no stage-1 STE in the table now there is no CD to fetch."""
    smmu = rig()
    t1, t2 = Tables(smmu).map(VA), Tables(smmu, stage=2).map(VA)
    s2 = attach(smmu, 0, t2, config="s2", vmid=4)
    s1 = attach(smmu, 1, t1, asid=1)
    smmu.fill_all()
    new0 = attach(smmu, 0, t1, asid=7)
    smmu.write_ste(1, Ste("abort"))
    publish(smmu, cfgi(C.CMD_CFGI_CD, 0), cfgi(C.CMD_CFGI_CD_ALL, 1))
    assert smmu.configs(0) == [new0, s2] and smmu.configs(1) == [Ste("abort"), s1]


def test_cfgi_published_before_a_config_fill_removes_only_older_snapshots():
    smmu = _stale_stes(n=1)
    smmu.cmdq_publish([cfgi(C.CMD_CFGI_STE, 0)])
    smmu.fill_all()                                         # caches the new STE after publication
    smmu.cmdq_publish([SYNC])
    assert [s.asid for s in smmu.configs(0)] == [2] and smmu.cfgc[0]


# ================================================================================ ATC_INV
def _atc_rig(n=64):
    smmu = rig(ats=True)
    t = Tables(smmu)
    for i in range(n):
        t.map(i * K4)
    t.map(0x1_0000_0000)
    for sid in (0, 1):
        attach(smmu, sid, t, eats=True)
        smmu.set_ats(sid, True)
        for i in range(n):
            smmu.ats_translate(sid, i * K4)
    return smmu, t


@pytest.mark.parametrize("addr,size,gone", [
    (0x5000, 0, {0x5000}),
    (0x5000, 2, {0x4000, 0x5000, 0x6000, 0x7000}),          # 4 pages, aligned down to 16K
    (0x3F000, 3, {0x38000 + i * K4 for i in range(8)}),
    (0x0, 6, {i * K4 for i in range(64)}),
    (0x1_0000_0000, 0, set()),
    (0x1_0000_0000, 20, set()),                              # 4G span at 4G
    (0x1_0000_0000, 21, {i * K4 for i in range(64)}),       # 8G aligned down to 0
    (0xFFFF_FFFF_FFFF_F000, 51, set()),                     # the top half of 2^64
    (0xFFFF_FFFF_FFFF_F000, 52, {i * K4 for i in range(64)}),   # Size 52: all
])
def test_atc_inv_span_is_4k_times_2_to_size_aligned(addr, size, gone):
    """§4.5.1: the span 4096 * 2^Size, aligned to its size; one StreamID only."""
    smmu, t = _atc_rig()
    assert publish(smmu, atc_inv(0, addr, size)) == []
    assert atc(smmu, 0) == {i * K4 for i in range(64)} - gone
    assert atc(smmu, 1) == {i * K4 for i in range(64)}


def test_atc_inv_timing_entries_filled_after_publication_survive_until_a_later_sync():
    """§4.5.1: completion at a later CMD_SYNC; a Translation Request answered after the ATC_INV was
    published is not required to be invalidated by it."""
    smmu, t = _atc_rig(4)
    smmu.cmdq_publish([atc_inv(0, 0, 52)])
    assert atc(smmu, 0) == {0, K4, 2 * K4, 3 * K4}           # nothing before the CMD_SYNC
    smmu.ats_translate(0, K4)                                # answered after publication
    smmu.cmdq_publish([SYNC])
    assert atc(smmu, 0) == {K4}
    publish(smmu, atc_inv(0, K4, 0))
    assert atc(smmu, 0) == set()


def test_atc_inv_ignores_the_substreamid_when_ssv_is_0():
    smmu, t = _atc_rig(4)
    assert publish(smmu, atc_inv(0, K4, 0, ssv=0, ssid=1)) == []
    assert atc(smmu, 0) == {0, 2 * K4, 3 * K4}


def test_atc_inv_with_ssv_and_no_pasids_does_nothing():
    """§4.5.1: SSV=1 without PASID support is CONSTRAINED UNPREDICTABLE: no effect is allowed (laziest)."""
    smmu, t = _atc_rig(4)
    assert publish(smmu, atc_inv(0, 0, 52, ssv=1, ssid=0)) == []
    assert atc(smmu, 0) == {0, K4, 2 * K4, 3 * K4}


# ================================================================================ CERROR_ILL
@pytest.mark.parametrize("cfg,cmd,why", [
    ({}, (0x00, 0), "unknown opcode"),
    ({}, (0x14, 0), "unknown opcode"),
    ({}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG4K, ttl=3), "RIL"),
    ({}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, num=1), "RIL"),
    ({}, tlbi(C.CMD_TLBI_S2_IPA, VA, vmid=1, scale=1), "RIL"),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG4K), "NUM=SCALE=TTL=0"),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_S2_IPA, VA, vmid=1, tg=TG64K), "NUM=SCALE=TTL=0"),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG16K, ttl=1), "NUM=SCALE=TTL=0"),
    ({}, tlbi(C.CMD_TLBI_EL2_VA, VA, asid=1), "EL2"),
    ({}, tlbi(C.CMD_TLBI_EL2_ASID, asid=1), "EL2"),
    ({}, tlbi(C.CMD_TLBI_EL2_ALL), "EL2"),
    ({}, atc_inv(0, 0, 0), "ATS"),
    ({"ats": True}, atc_inv(0, 0, 53), "size"),
    ({"ats": True}, atc_inv(0, 0, 63), "size"),
])
def test_illegal_encodings_raise_cerror_ill_and_have_no_effect(cfg, cmd, why):
    """§4.1.3, §4.4.1.1, §4.4.2, §4.5.1; the commands around the bad one still complete."""
    smmu = rig(**cfg)
    t = Tables(smmu).map(VA).map(VA + K4)
    attach(smmu, 0, t, el2=False)
    smmu.fill_all()
    errs = publish(smmu, tlbi(C.CMD_TLBI_NH_VA, VA + K4, asid=1), cmd)
    assert len(errs) == 1 and errs[0].startswith("CERROR_ILL") and why in errs[0], errs
    assert tlb(smmu) == {(VA, K4)}


@pytest.mark.parametrize("cfg,cmd", [
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG4K, ttl=3)),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG4K, num=1)),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG4K, scale=1)),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, tg=TG16K, ttl=2)),
    ({"range_inv": True}, tlbi(C.CMD_TLBI_NH_VA, VA, asid=1, num=3)),
    ({"e2h": True}, tlbi(C.CMD_TLBI_EL2_VA, VA, asid=1)),
    ({"ats": True}, atc_inv(0, 0, 52)),
    ({}, cfgi(C.CMD_CFGI_ALL, 0, rng=31)),
    ({}, (C.CMD_PREFETCH_CONFIG, 0)),
])
def test_legal_encodings_raise_nothing(cfg, cmd):
    smmu = rig(**cfg)
    assert publish(smmu, cmd) == []


# ================================================================================ register-style and max-cache
def test_register_tlbi_with_an_end_covers_its_range():
    """A register-style by-address invalidation of [addr, end) (IOMMUs without a command queue)."""
    smmu = rig()
    t = Tables(smmu)
    for i in range(8):
        t.map(i * K4)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.tlbi(C.CMD_TLBI_NH_VA, asid=1, addr=0x2000, end=0x5000, leaf=True)
    assert len(tlb(smmu)) == 8
    smmu.tlb_sync()
    assert tlb(smmu) == {(i * K4, K4) for i in (0, 1, 5, 6, 7)}


def test_max_cache_refills_live_entries_but_not_cleared_ones():
    """The adversarial policy: every translation the tables still give is cached again before the CMD_SYNC
    completes (so it survives), a cleared one is not."""
    smmu = rig(policy="max-cache")
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    t.clear(0x1000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_ASID, asid=1))
    assert tlb(smmu) == {(0x2000, K4)}
    publish(smmu, tlbi(C.CMD_TLBI_NH_ASID, asid=1), tlbi(C.CMD_TLBI_NH_VA, 0x2000, asid=1))   # no change since
    assert tlb(smmu) == {(0x2000, K4)} and walks(smmu)
    t.clear(0x2000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x2000, asid=1, leaf=1))
    assert tlb(smmu) == set()


def test_register_tlbi_leaf_vmid_and_log():
    """Register-style TLBIs: Leaf keeps the walk cache, VMID scopes, each write is logged in order."""
    smmu = rig()
    t1, t2 = Tables(smmu).map(0x1000), Tables(smmu, stage=2).map(0x1000)
    attach(smmu, 0, t1)
    attach(smmu, 1, t2, config="s2", vmid=2)
    attach(smmu, 2, t2, config="s2", vmid=3)
    smmu.fill_all()
    wc = walks(smmu, ("nh", 0, 1))
    smmu.tlbi(C.CMD_TLBI_NH_VA, asid=1, addr=0x1000, leaf=True)
    smmu.tlbi(C.CMD_TLBI_S12_VMALL, vmid=2)
    smmu.tlb_sync()
    assert walks(smmu, ("nh", 0, 1)) == wc and tlb(smmu, ("nh", 0, 1)) == set()
    assert tlb(smmu, ("s2", 2, -1)) == set() and tlb(smmu, ("s2", 3, -1)) == {(0x1000, K4)}
    assert [(c.name, c.leaf, c.vmid, c.addr) for _s, c in smmu.cmd_log] == [
        ("TLBI_NH_VA", 1, 0, 0x1000), ("TLBI_S12_VMALL", 0, 2, 0), ("CMD_SYNC", 0, 0, 0)]
    assert [s for s, _c in smmu.cmd_log] == sorted(s for s, _c in smmu.cmd_log)


@pytest.mark.parametrize("pages", [4, 100])
def test_max_cache_register_tlbi_refills_its_own_range(pages):
    """max-cache at a register TLBI: what the tables still map in its range is cached again after it (and
    survives), what they no longer map is not; beyond 64 pages the whole view is refilled."""
    smmu = rig(policy="max-cache")
    t = Tables(smmu)
    for i in range(pages):
        t.map(i * K4)
    attach(smmu, 0, t)
    smmu.fill_all()
    t.clear(K4)
    smmu.tlbi(C.CMD_TLBI_NH_VA, asid=1, addr=0, end=pages * K4, leaf=True)
    smmu.tlb_sync()
    assert tlb(smmu) == {(i * K4, K4) for i in range(pages) if i != 1}


# ================================================================================ translation
def outcomes(smmu, sid, va):
    return {(o.source, o.pa, o.perms) for o in smmu.translate(sid, va, insert=False)}


def test_a_walk_gives_the_leaf_pa_plus_offset_and_its_permissions():
    """VMSAv8-64 walk as the SMMU performs it: page, 2M and 1G blocks; stage-1 AP and stage-2 S2AP."""
    smmu = rig()
    t = Tables(smmu).map(0x1000, 0x9000_1000).map(0x2000, 0x9000_2000, perms="r")
    t.map(0x20_0000, 0xA020_0000, level=2).map(0x4000_0000, 0x1_C000_0000, level=1)
    attach(smmu, 0, t)
    assert outcomes(smmu, 0, 0x1234) == {("walk", 0x9000_1234, "rw")}
    assert outcomes(smmu, 0, 0x2FFF) == {("walk", 0x9000_2FFF, "r")}
    assert outcomes(smmu, 0, 0x3F_FFF8) == {("walk", 0xA03F_FFF8, "rw")}
    assert outcomes(smmu, 0, 0x7654_3210) == {("walk", 0x1_F654_3210, "rw")}
    s2 = Tables(smmu, stage=2).map(0x1000, perms="r").map(0x2000, perms="w").map(0x3000, perms="rw")
    attach(smmu, 1, s2, config="s2", vmid=1)
    assert [next(iter(outcomes(smmu, 1, va)))[2] for va in (0x1000, 0x2000, 0x3000)] == ["r", "w", "rw"]
    smmu.fill_all()
    assert {k[1:6] for k in smmu.tlb if k[0] == ("nh", 0, 1)} == {
        (0x1000, K4, 0x9000_1000, "rw", 3), (0x2000, K4, 0x9000_2000, "r", 3),
        (0x20_0000, M2, 0xA020_0000, "rw", 2), (0x4000_0000, G1, 0x1_C000_0000, "rw", 1)}
    assert {k[4] for k in smmu.tlb if k[0] == ("s2", 1, -1)} == {"r", "w", "rw"}


@pytest.mark.parametrize("pg_shift,level,desc_bits,why", [
    (12, 3, 0x401, "page descriptor without the table/page type"),
    (12, 3, 0x003, "no Access Flag"),
    (12, 2, 0x001, "block without the Access Flag"),
    (12, 0, 0x401, "4K level-0 block"),
    (14, 1, 0x401, "16K level-1 block"),
    (16, 1, 0x401, "64K level-1 block"),
    (12, 3, 0x402, "invalid"),
])
def test_invalid_leaves_translate_nothing_and_are_not_cached(pg_shift, level, desc_bits, why):
    smmu = rig()
    t = Tables(smmu, pg_shift=pg_shift)
    va = {0: 0x80_0000_0000, 1: 0x400_0000_0000}.get(level, 0x4000_0000)   # apart from the valid page's tables
    t.raw(va, level, 0x8000_0000_0000 >> 4 | desc_bits)
    t.map(0x10_0000_0000)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert outcomes(smmu, 0, va) == set(), why
    assert tlb(smmu) == {(0x10_0000_0000, 1 << pg_shift)}, why


def test_addresses_beyond_the_ias_translate_nothing():
    smmu = rig()
    t = Tables(smmu, ias=39).map(0)
    attach(smmu, 0, t)
    assert outcomes(smmu, 0, 0) and outcomes(smmu, 0, 1 << 39) == set()


def test_a_stale_tlb_entry_translates_until_invalidated():
    smmu = rig()
    t = Tables(smmu).map(0x5000, 0x7000_5000)
    attach(smmu, 0, t)
    smmu.translate(0, 0x5000)
    t.clear(0x5000)
    assert outcomes(smmu, 0, 0x5678) == {("tlb", 0x7000_5678, "rw")}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x5000, asid=1, leaf=1))
    assert outcomes(smmu, 0, 0x5678) == set()


def test_a_stale_walk_cache_entry_walks_the_old_table():
    """A table descriptor replaced without a non-leaf TLBI: the cached pointer still leads to the old table."""
    smmu = rig()
    t = Tables(smmu).map(0x1000, 0x7000_1000)
    attach(smmu, 0, t)
    smmu.translate(0, 0x1000)
    l2 = t._slot(0x1000, 2, False)
    new_l3 = smmu.mem.alloc_pages(K4)
    smmu.mem.cpu_write(new_l3 + 8, 0x6000_1000 | PTE_AF | 3)
    smmu.mem.cpu_write(l2, new_l3 | 3)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1, leaf=1))
    assert outcomes(smmu, 0, 0x1010) == {("walk", 0x6000_1010, "rw"), ("walk-cache", 0x6000_1010, "rw"),
                                         ("walk-cache", 0x7000_1010, "rw")}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1, leaf=0))
    assert outcomes(smmu, 0, 0x1010) == {("walk", 0x6000_1010, "rw")}


def test_bypass_abort_and_ats_translations():
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x3000, 0x7000_3000)
    smmu.write_ste(0, Ste("bypass"))
    attach(smmu, 1, t, eats=True)
    attach(smmu, 2, t, eats=False)
    assert outcomes(smmu, 0, 0x1234_5678) == {("bypass", 0x1234_5678, "rw")}
    assert outcomes(smmu, 3, 0x3000) == set() and smmu.configs(3) == [Ste()]
    assert smmu.ats_translate(1, 0x3000) == [] and smmu.ats_translate(2, 0x3000) == []   # ATS off
    smmu.set_ats(1, True)
    smmu.set_ats(2, True)
    assert smmu.ats_translate(2, 0x3000) == []                                          # no EATS
    outs = smmu.ats_translate(1, 0x3123)
    assert "walk" in {o.source for o in outs} and {(o.pa, o.perms) for o in outs} == {(0x7000_3123, "rw")}
    assert smmu.atc[1] and set(smmu.atc[1]) == {(0x3000, K4, 0x7000_3000, "rw")}
    t.clear(0x3000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_ASID, asid=1))
    assert outcomes(smmu, 1, 0x3456) == {("atc", 0x7000_3456, "rw")}
    smmu.set_ats(1, False)
    assert outcomes(smmu, 1, 0x3456) == set() and 1 not in smmu.atc


def test_a_fill_caches_translations_in_the_atc_of_ats_enabled_eats_streams_only():
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x3000, 0x7000_3000)
    for sid, eats in ((0, True), (1, False), (2, True)):
        attach(smmu, sid, t, eats=eats)
    smmu.set_ats(0, True)
    smmu.set_ats(1, True)
    smmu.fill_all()
    assert set(smmu.atc.get(0, {})) == {(0x3000, K4, 0x7000_3000, "rw")}
    assert not smmu.atc.get(1) and not smmu.atc.get(2)


# ================================================================================ coverage bookkeeping, statistics
def test_covered_since_single_address_register_range_and_context_flushes():
    """What the runner may take as invalidated (for promises it settles): exactly what was removed."""
    smmu = rig(range_inv=True)
    a, b = ("nh", 0, 1), ("nh", 0, 2)
    seq = smmu.seq
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x5000, asid=1))
    assert smmu.covered_since(a, seq, 0x5000, 0x6000) and not smmu.covered_since(a, seq, 0x5000, 0x7000)
    assert not smmu.covered_since(a, seq, 0x4000, 0x5000) and not smmu.covered_since(b, seq, 0x5000, 0x6000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x9000, asid=1, tg=TG4K, ttl=3, num=3))   # not recorded (TG/TTL scope)
    assert not smmu.covered_since(a, seq, 0x9000, 0xA000)
    smmu.tlbi(C.CMD_TLBI_NH_VA, asid=2, addr=0x10_0000, end=0x20_0000)
    smmu.tlb_sync()
    assert smmu.covered_since(b, seq, 0x10_0000, 0x20_0000) and not smmu.covered_since(b, seq, 0x10_0000, 0x20_1000)
    s2 = smmu.seq
    publish(smmu, tlbi(C.CMD_TLBI_NH_ASID, asid=2))
    assert smmu.covered_since(b, s2, 0, 1 << 48) and smmu.flushed_since(b, s2)
    assert not smmu.covered_since(a, s2, 0x5000, 0x6000) and not smmu.flushed_since(b, smmu.seq)
    assert not smmu.flushed_since(a, s2)


def test_statistics_count_commands_pages_and_removals():
    smmu = rig(range_inv=True, ats=True)
    t = Tables(smmu)
    for i in range(4):
        t.map(i * K4)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, True)
    smmu.fill_all()
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1), tlbi(C.CMD_TLBI_NH_VA, K4, asid=1, leaf=1))
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 2 * K4, asid=1, leaf=1, tg=TG4K, num=7))
    publish(smmu, atc_inv(0, 0, 52), tlbi(C.CMD_TLBI_NH_ASID, asid=1))
    st = smmu.stats
    assert st.cmds == {"TLBI_NH_ASID": 1, "TLBI_NH_VA": 3, "ATC_INV": 1, "CMD_SYNC": 3}
    assert (st.syncs, st.inv_pages, st.full_flushes) == (3, 2 + 8, 2)
    assert (st.tlb_killed, st.wc_killed, st.atc_killed) == (4, 3, 4)


# ================================================================================ memory system and hardware events
def test_non_coherent_walks_see_the_poc_only_after_a_clean_or_a_write_back():
    """IDR0.COHACC=0: table walks read the Point of Coherency, not the CPU cache."""
    smmu = rig(coherent=False)
    t = Tables(smmu)
    smmu.mem.clean(t.root, 8 << t.geo.pgd_bits)
    t.map(0x1000)
    attach(smmu, 0, t)
    assert outcomes(smmu, 0, 0x1000) == set() and smmu.mem.dirty_lines()
    for line in list(smmu.mem.dirty_lines()):
        if line != t._slot(0x1000, 3, False) & ~63:
            smmu.mem.clean(line, 8)
    assert outcomes(smmu, 0, 0x1000) == set() and len(smmu.mem.dirty_lines()) == 1
    smmu.writeback(0)
    assert outcomes(smmu, 0, 0x1000) == {("walk", 0x8000_1000, "rw")} and smmu.mem.dirty_lines() == []
    t.clear(0x1000)
    assert outcomes(smmu, 0, 0x1000) == {("walk", 0x8000_1000, "rw")}
    smmu.writeback(None)
    assert outcomes(smmu, 0, 0x1000) == set()


def test_freed_table_pages_are_tracked_and_reused_with_their_poc_contents():
    smmu = rig(coherent=False)
    mem = smmu.mem
    pa = mem.alloc_pages(K4)
    mem.cpu_write(pa + 8, 0x1234)
    mem.clean(pa, K4)
    tok = mem.page_token(pa)
    assert not mem.is_free(pa) and mem.smmu_read(pa + 8) == 0x1234
    mem.free_pages(pa, K4)
    assert mem.is_free(pa + 0x800) and mem.page_token(pa) != tok
    assert mem.alloc_pages(K4) == pa and not mem.is_free(pa)
    assert mem.cpu_read(pa + 8) == 0 and mem.smmu_read(pa + 8) == 0x1234     # zeroed in the CPU cache only
    mem.clean(pa, K4)
    assert mem.smmu_read(pa + 8) == 0 and mem.smmu_nonzero(pa, K4) == []


def test_evictions_drop_one_entry_or_everything():
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, True)
    smmu.fill_all()
    n_tlb, n_wc = len(smmu.tlb), len(smmu.wc)
    smmu.evict("tlb", 1)
    smmu.evict("walk", 5)
    assert (len(smmu.tlb), len(smmu.wc)) == (n_tlb - 1, n_wc - 1)
    attach(smmu, 0, t, asid=9)
    smmu.evict("all", 0)
    assert not smmu.tlb and not smmu.wc and not smmu.atc and smmu.configs(0) == [smmu.strtab[0]]


# ================================================================================ more edges (mutation-driven)
def test_atc_inv_reaches_its_streamid_only():
    smmu, t = _atc_rig(4)
    publish(smmu, atc_inv(1, 0, 52))
    assert atc(smmu, 1) == set() and atc(smmu, 0) == {0, K4, 2 * K4, 3 * K4}


def test_va_bits_above_52_are_part_of_the_va_but_not_of_an_ipa():
    """§4.1.6: VA fields are Address[63:12]; TLBI_S2_IPA's IPA is Address[51:12], the bits above are RES0
    (ignored here)."""
    smmu = rig()
    t1, t2 = Tables(smmu).map(0x1000), Tables(smmu, stage=2).map(0x1000)
    attach(smmu, 0, t1)
    attach(smmu, 1, t2, config="s2", vmid=2)
    smmu.fill_all()
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, (1 << 52) | 0x1000, asid=1, leaf=1))
    assert tlb(smmu, ("nh", 0, 1)) == {(0x1000, K4)}
    publish(smmu, tlbi(C.CMD_TLBI_S2_IPA, (1 << 52) | 0x1000, vmid=2, leaf=1))
    assert tlb(smmu, ("s2", 2, -1)) == set()


def _batch_vs_one_by_one(cmds, build):
    """The same commands published in one batch and each in its own CMD_SYNC leave the same caches."""
    res = []
    for together in (True, False):
        smmu = build()
        if together:
            assert publish(smmu, *cmds) == []
        else:
            for c in cmds:
                assert publish(smmu, c) == []
        res.append((sorted(smmu.tlb, key=repr), sorted(smmu.wc, key=repr)))
    assert res[0] == res[1]
    return res[0]


def _two_asids():
    smmu = rig(range_inv=True)
    for sid, (asid, vmid) in enumerate(((1, 0), (2, 0), (1, 3))):
        t = Tables(smmu)
        for i in range(16):
            t.map(0x10_0000 + i * K4)
        attach(smmu, sid, t, asid=asid, vmid=vmid)
    smmu.fill_all()
    return smmu


@pytest.mark.parametrize("cmds", [
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * K4, asid=1 + i % 2) for i in range(6)],               # ASIDs alternate
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * K4, asid=1, vmid=3 * (i % 2)) for i in range(6)],     # VMIDs alternate
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * K4, asid=1, leaf=i % 2) for i in range(6)],           # Leaf alternates
    [tlbi(C.CMD_TLBI_NH_VA if i % 2 else C.CMD_TLBI_NH_VAA, 0x10_0000 + i * K4, asid=1) for i in range(6)],
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000, asid=1, tg=TG4K, ttl=3)]
    + [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * K4, asid=1, tg=TG4K * (i % 2), ttl=3) for i in range(1, 6)],
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_2000, asid=1)] * 3 + [tlbi(C.CMD_TLBI_NH_VA, 0x10_4000, asid=1)],   # repeats
    [tlbi(C.CMD_TLBI_NH_ASID, asid=2)] + [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * 2 * K4, asid=1) for i in range(3)]
    + [tlbi(C.CMD_TLBI_NH_VA, 0x10_8000, asid=2)],                                               # a run at i > 0
    [tlbi(C.CMD_TLBI_NH_VA, 0x10_0000 + i * 3 * K4, asid=1, leaf=1) for i in range(4)]
    + [tlbi(C.CMD_TLBI_NH_VA, 0x10_F000, asid=1)],                                               # then another
])
def test_a_batch_removes_what_its_commands_remove_one_by_one(cmds):
    _batch_vs_one_by_one(cmds, _two_asids)


def test_commands_after_a_sync_in_the_same_batch_wait_for_the_next_sync():
    smmu = rig()
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1), SYNC, tlbi(C.CMD_TLBI_NH_VA, 0x2000, asid=1)])
    assert tlb(smmu) == {(0x2000, K4)}
    smmu.cmdq_publish([SYNC])
    assert tlb(smmu) == set()


def test_max_cache_refill_with_nothing_changed_moves_fill_times_past_the_tlbi():
    """Published without a sync, then synced: the second fill finds nothing changed and only moves the fill time
    of what it cached, so live entries still survive and a cleared one still goes."""
    smmu = rig(policy="max-cache")
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    t.clear(0x1000)
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_ASID, asid=1)])
    smmu.cmdq_publish([SYNC])
    assert tlb(smmu) == {(0x2000, K4)}


def test_covered_since_boundaries_of_runs_and_context_flushes():
    smmu = rig()
    tag = ("nh", 0, 1)
    seq = smmu.seq
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, 0x1000 + i * 3 * K4, asid=1) for i in range(4)])
    assert all(smmu.covered_since(tag, seq, a, a + K4) for a in (0x1000, 0x4000, 0x7000, 0xA000))
    assert not any(smmu.covered_since(tag, seq, a, a + K4) for a in (0x2000, 0x3000, 0x5000, 0xD000, 0))
    pub = smmu.seq + 1
    publish(smmu, tlbi(C.CMD_TLBI_NH_ALL))
    assert smmu.flushed_since(tag, pub - 1) and not smmu.flushed_since(tag, pub)


def test_statistics_count_a_merged_run_per_command():
    smmu = rig()
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, i * M2, asid=1) for i in range(5)])
    publish(smmu, *[tlbi(C.CMD_TLBI_NH_VA, i * M2, asid=1) for i in range(3)])
    assert smmu.stats.inv_pages == 8 and smmu.stats.cmds == {"TLBI_NH_VA": 8, "CMD_SYNC": 2}


def test_a_fill_uses_a_cached_older_ste_for_the_atc_too():
    """The SMMU may still use the cached STE with EATS=1 after the table's STE cleared EATS (no CFGI_STE yet)."""
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x3000, 0x7000_3000)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, True)
    smmu.fill_all()
    smmu.atc.clear()
    attach(smmu, 0, t, asid=1, eats=False)
    smmu.fill_all()
    assert set(smmu.atc.get(0, {})) == {(0x3000, K4, 0x7000_3000, "rw")}
    publish(smmu, cfgi(C.CMD_CFGI_STE, 0), atc_inv(0, 0, 52))
    smmu.fill_all()
    assert not smmu.atc.get(0)


def test_an_ats_request_is_answered_by_the_smmu_not_from_the_devices_own_atc():
    """A Translation Request after an ATC_INV was published: the answer comes from the SMMU's caches and walks
    (here: nothing), so the stale ATC entry is not refreshed and goes at the CMD_SYNC."""
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x3000)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, True)
    smmu.ats_translate(0, 0x3000)
    t.clear(0x3000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_ASID, asid=1))
    smmu.cmdq_publish([atc_inv(0, 0x3000, 0)])
    assert smmu.ats_translate(0, 0x3000) == []
    smmu.cmdq_publish([SYNC])
    assert atc(smmu, 0) == set()


def test_disabling_ats_stops_translation_requests():
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x3000)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, False)                      # never enabled, no ATC: nothing to drop
    smmu.set_ats(0, True)
    assert smmu.ats_translate(0, 0x3000)
    smmu.set_ats(0, False)
    assert smmu.ats_translate(0, 0x3000) == [] and 0 not in smmu.ats_enabled


def test_a_device_access_caches_its_walk_like_a_fill():
    """translate() inserts the leaf and the table descriptors it used, with their levels and spans."""
    smmu = rig(range_inv=True)
    t = Tables(smmu).map(0x20_1000).map(0x4000_0000, level=1)
    attach(smmu, 0, t)
    smmu.translate(0, 0x20_1000)
    smmu.translate(0, 0x4000_0000)
    assert {(k[1], k[2], k[3]) for k in smmu.wc} == {(0, 0, 1 << 39), (1, 0, G1), (2, 0x20_0000, M2)}
    assert tlb_levels(smmu) == {(0x20_1000, 3), (0x4000_0000, 1)}
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1, tg=TG4K, ttl=1, num=1, scale=18))
    assert tlb_levels(smmu) == {(0x20_1000, 3)}


def test_cached_translations_apply_from_their_first_to_their_last_byte():
    smmu = rig(ats=True)
    t = Tables(smmu).map(0x5000, 0x7000_5000).map(0x20_0000, 0x7020_0000)
    attach(smmu, 0, t, eats=True)
    smmu.set_ats(0, True)
    smmu.translate(0, 0x5000)
    smmu.ats_translate(0, 0x5000)
    t.clear(0x5000)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x7000, asid=1))   # an unrelated address
    assert outcomes(smmu, 0, 0x5000) == {("tlb", 0x7000_5000, "rw"), ("atc", 0x7000_5000, "rw")}
    assert outcomes(smmu, 0, 0x5FFF) == {("tlb", 0x7000_5FFF, "rw"), ("atc", 0x7000_5FFF, "rw")}
    assert outcomes(smmu, 0, 0x6000) == set() and outcomes(smmu, 0, 0x4FFF) == set()
    seqs = {o.source: o.seq for o in smmu.translate(0, 0x5000, insert=False)}
    assert seqs["tlb"] == smmu.fill_seq(next(iter(smmu.tlb.values()))) > 0 and seqs["atc"] > 0
    assert {o.seq for o in smmu.translate(0, 0x20_0000, insert=False) if o.source == "walk"} == {0}


def test_a_stale_walk_cache_entry_applies_to_its_own_range_only():
    smmu = rig()
    t = Tables(smmu).map(0x20_0000, 0x7020_0000)
    attach(smmu, 0, t)
    smmu.translate(0, 0x20_0000)
    l2 = t._slot(0x20_0000, 2, False)
    smmu.mem.cpu_write(l2, 0)                    # the level-3 table unlinked (no TLBI)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x20_0000, asid=1, leaf=1))
    assert outcomes(smmu, 0, 0x20_0000) == {("walk-cache", 0x7020_0000, "rw")}
    assert outcomes(smmu, 0, 0x40_0000) == set() and outcomes(smmu, 0, 0x1F_F000) == set()


def test_a_stale_walk_cache_entry_leads_to_a_block_too():
    """A cached level-1 table descriptor whose level-2 table now holds a 2M block: the walk continues there."""
    smmu = rig()
    t = Tables(smmu).map(0x20_0000)
    attach(smmu, 0, t)
    smmu.translate(0, 0x20_0000)
    l2_table = smmu.mem.cpu_read(t._slot(0x20_0000, 1, False)) & ADDR_MASK_48
    smmu.mem.cpu_write(t._slot(0x20_0000, 1, False), 0)
    smmu.mem.cpu_write(l2_table + 8, 0x9020_0000 | PTE_AF | 1)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x20_0000, asid=1, leaf=1))
    assert ("walk-cache", 0x9024_5000, "rw") in outcomes(smmu, 0, 0x24_5000)


def test_a_stream_may_translate_through_its_cached_ste_until_cfgi_ste():
    """§4.3.1: the SMMU may keep using a cached STE until CFGI_STE + CMD_SYNC (here the STE became abort)."""
    smmu = rig()
    t = Tables(smmu).map(0x1000, 0x7000_1000)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.write_ste(0, Ste("abort"))
    smmu.write_ste(1, Ste("bypass"))
    assert outcomes(smmu, 0, 0x1000) == {("tlb", 0x7000_1000, "rw"), ("walk", 0x7000_1000, "rw"),
                                         ("walk-cache", 0x7000_1000, "rw")}
    publish(smmu, cfgi(C.CMD_CFGI_STE, 0))
    assert outcomes(smmu, 0, 0x1000) == set()


def test_an_invalid_descriptor_does_not_stop_a_fill_of_its_table():
    smmu = rig()
    t = Tables(smmu)
    t.raw(0x1000, 3, 0x8000_1000 | 3)                              # no Access Flag
    t.map(0x2000)
    t.raw(0x40_0000, 2, 0x8040_0000 | PTE_AF)                      # bit 0 clear: invalid, not a block
    t.map(0x60_0000, level=2)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert tlb(smmu) == {(0x2000, K4), (0x60_0000, M2)}
    assert outcomes(smmu, 0, 0x40_0000) == set()


def test_a_concatenated_stage_2_first_level_is_indexed_with_all_its_bits():
    """Stage 2, 4K granule, IAS 40: the walk starts at level 1 with two concatenated tables (10 index bits)."""
    smmu = rig()
    t = Tables(smmu, ias=40, stage=2)
    assert (t.geo.start_level, t.geo.pgd_bits) == (1, 10)
    t.map(0x80_0000_1000, 0x1_2345_6000).map(0x1000, 0x6000)
    attach(smmu, 0, t, config="s2", vmid=1)
    assert outcomes(smmu, 0, 0x80_0000_1000) == {("walk", 0x1_2345_6000, "rw")}
    assert outcomes(smmu, 0, 0x1000) == {("walk", 0x6000, "rw")}
    smmu.fill_all()
    assert tlb(smmu) == {(0x80_0000_1000, K4), (0x1000, K4)}


def test_write_back_of_a_dense_page_copies_exactly_its_lines():
    """A page with more non-zero words than the cleaned lines hold takes the per-line path."""
    smmu = rig(coherent=False)
    mem = smmu.mem
    pa = mem.alloc_pages(K4)
    for i in range(512):
        mem.cpu_write(pa + 8 * i, i + 1)
    mem.clean(pa + 64, 1)
    assert [mem.smmu_read(pa + 8 * i) for i in range(7, 17)] == [0, 8 + 1, 9 + 1, 10 + 1, 11 + 1, 12 + 1, 13 + 1,
                                                                 14 + 1, 15 + 1, 0]
    assert mem.smmu_nonzero(pa, K4) == [pa + 8 * i for i in range(8, 16)]
    assert mem.smmu_nonzero(pa + 64, 64) == [pa + 8 * i for i in range(8, 16)]


def test_memory_figures_count_cleans_lines_write_backs_and_table_pages():
    smmu = rig(coherent=False)
    mem = smmu.mem
    a, b = mem.alloc_pages(K4), mem.alloc_pages(K4)
    assert mem.table_pages == 2 and mem.page_token(a) == 1
    mem.clean(a, K4)                                                # 64 dirty lines
    mem.clean(a, 128)                                               # 2 lines, already clean
    mem.cpu_write(b, 5)
    smmu.writeback(None)                                            # b's 64 lines by eviction
    assert (mem.cleans, mem.lines_cleaned, mem.redundant_cleans, mem.writebacks) == (2, 64 + 2 + 64, 2, 64)
    mem.free_pages(b, K4)
    assert mem.table_pages == 1 and mem.page_token(b) == 2 and mem.page_token(b + K4 * 100) == 0


@pytest.mark.parametrize("op,end", [(C.CMD_TLBI_NH_VA, None), (C.CMD_TLBI_NH_VA, 0x8000), (C.CMD_TLBI_NH_ASID, None)])
def test_max_cache_refill_at_a_register_tlbi_races_a_later_pte_change(op, end):
    """max-cache at a register TLBI: the SMMU may walk right after the write (by-address: its own range; else
    everything), before the PTE cleared next; that entry is younger than the TLBI and outlives the sync."""
    smmu = rig(policy="max-cache")
    t = Tables(smmu).map(0x5000, 0x7000_5000).map(0x9000)
    attach(smmu, 0, t)
    smmu.fill_all()
    addr = 0x5000 if op == C.CMD_TLBI_NH_VA else 0
    smmu.tlbi(op, asid=1, addr=addr, end=end, leaf=True)
    t.clear(0x5000)
    t.clear(0x9000)
    smmu.tlb_sync()
    assert tlb(smmu) == {(0x5000, K4), (0x9000, K4)}        # 0x9000: refilled (ASID) or out of scope
    assert smmu.stats.cmds == {C.OPCODE_NAMES[op]: 1, "CMD_SYNC": 1}


def test_a_fill_between_two_tlbis_is_older_than_the_second_one():
    """Two single-address TLBIs published apart with a walk in between: the second removes what that walk cached."""
    smmu = rig()
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_VA, 0x1000, asid=1)])
    smmu.translate(0, 0x2000)
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_VA, 0x2000, asid=1), SYNC])
    assert tlb(smmu) == set()


def test_atc_invs_at_a_stride_each_take_effect():
    smmu, t = _atc_rig(8)
    assert publish(smmu, *[atc_inv(0, a, 0) for a in (0x1000, 0x2000, 0x3000)]) == []
    assert atc(smmu, 0) == {0, 4 * K4, 5 * K4, 6 * K4, 7 * K4}


def test_full_flush_count_per_command():
    smmu = rig(ats=True)
    publish(smmu, atc_inv(0, 0, 52), tlbi(C.CMD_TLBI_NH_ASID, asid=1), atc_inv(0, 0, 52), atc_inv(0, 0, 51))
    assert smmu.stats.full_flushes == 3


def test_a_tg_range_does_not_count_as_covering_other_granules():
    smmu = rig(range_inv=True)
    seq = smmu.seq
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0x9000, asid=1, tg=TG4K, num=3))
    assert not smmu.covered_since(("nh", 0, 1), seq, 0x9000, 0xA000)


def test_enabling_ats_after_a_fill_lets_the_next_fill_reach_the_atc():
    smmu = rig(ats=True, policy="max-cache")
    t = Tables(smmu).map(0x3000)
    attach(smmu, 0, t, eats=True)
    smmu.fill_all()
    smmu.set_ats(0, True)
    smmu.fill_all()
    assert atc(smmu, 0) == {0x3000}


def test_evicting_a_tlb_entry_leaves_the_walk_cache():
    smmu = rig()
    t = Tables(smmu).map(0x1000).map(0x2000)
    attach(smmu, 0, t)
    smmu.fill_all()
    wc = dict(smmu.wc)
    smmu.evict("tlb", 0)
    assert len(smmu.tlb) == 1 and smmu.wc == wc


def test_a_stream_changed_to_bypass_may_still_translate_through_its_cached_ste():
    smmu = rig()
    t = Tables(smmu).map(0x1000, 0x7000_1000)
    attach(smmu, 0, t)
    smmu.fill_all()
    smmu.write_ste(0, Ste("bypass"))
    assert {o[0] for o in outcomes(smmu, 0, 0x1000)} == {"bypass", "tlb", "walk", "walk-cache"}


def test_a_stale_walk_cache_entry_at_address_0_ends_at_its_span():
    smmu = rig()
    t = Tables(smmu).map(0x0, 0x7000_0000)
    attach(smmu, 0, t)
    smmu.translate(0, 0)
    smmu.mem.cpu_write(t._slot(0, 2, False), 0)
    publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1))
    outs = smmu.translate(0, 0, insert=False)
    assert {(o.source, o.pa) for o in outs} == {("walk-cache", 0x7000_0000)} and all(o.seq > 0 for o in outs)
    assert outcomes(smmu, 0, M2) == set()


def test_the_budgets_stop_a_run():
    """The step and command budgets (a HANG, and a run that would ask for more than a fuzz run affords)."""
    from smmufuzz.reference.smmu import CommandBudgetExceeded, HangError
    smmu = rig(command_budget=3)
    smmu.tlbi(C.CMD_TLBI_NH_ALL)
    smmu.cmdq_publish([tlbi(C.CMD_TLBI_NH_ALL), SYNC])
    with pytest.raises(CommandBudgetExceeded):
        smmu.tlbi(C.CMD_TLBI_NH_ALL)
    smmu = rig(step_budget=10)
    smmu.tick(10)
    with pytest.raises(HangError):
        smmu.tick()


# ---------------------------------------------------------------------------------- ranges over part of a block
@pytest.mark.parametrize("addr,num,ttl", [(M2, 0, 2), (M2 + 4 * K4, 1, 0), (2 * M2 - 2 * K4, 1, 0)])
def test_a_range_over_part_of_a_block_removes_the_whole_block(addr, num, ttl):
    """§4.4.1.1: a range TLBI invalidates the set of addresses [Address, Address + Range), and with NUM=SCALE=0
    it behaves as a non-range TLBI of that address: every entry cached from a block that has an address in the
    range goes, whatever size the TLB cached it at (docs/architecture.md: why our TLB never splinters)."""
    smmu = rig(range_inv=True)
    t = Tables(smmu).map(M2, level=2)
    ste = attach(smmu, 0, t)
    smmu.fill_all()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, addr, asid=1, leaf=1, tg=TG4K, ttl=ttl, num=num)) == []
    assert tlb(smmu, ste.tag) == set()


# ---------------------------------------------------------------------------------- ATS disabled under an ATC_INV
def test_an_atc_inv_outstanding_when_ats_is_disabled_times_out_its_sync():
    """The endpoint may ignore an invalidation racing its ATS disable: the CMD_SYNC reports
    CERROR_ATC_INV_SYNC (ats_timeout.py); another endpoint's invalidation in the same batch completes."""
    smmu, t = _atc_rig(4)
    smmu.cmdq_publish([atc_inv(0, 0, 52), atc_inv(1, 0, 52)])
    smmu.set_ats(0, False)
    smmu.cmdq_publish([SYNC])
    assert len(smmu.errors) == 1 and smmu.errors[0].startswith("CERROR_ATC_INV_SYNC") and "sid=0" in smmu.errors[0]
    assert atc(smmu, 1) == set()
    assert publish(smmu) == []                                  # the next CMD_SYNC has nothing left to wait for


@pytest.mark.parametrize("order", ["sync-then-disable", "disable-then-publish"])
def test_an_atc_inv_completed_before_the_disable_or_sent_after_it_completes(order):
    """No timeout for an invalidation completed before the disable, nor for one sent to an endpoint whose ATS
    is already off (the kernel flushes before pci_enable_ats() and, before 6.8, after pci_disable_ats())."""
    smmu, t = _atc_rig(4)
    if order == "sync-then-disable":
        assert publish(smmu, atc_inv(0, 0, 52)) == []
        smmu.set_ats(0, False)
    else:
        smmu.set_ats(0, False)
        assert publish(smmu, atc_inv(0, 0, 52)) == []
    assert smmu.errors == []


def test_enabling_ats_does_not_drop_an_outstanding_atc_inv():
    smmu, t = _atc_rig(4)
    smmu.set_ats(0, False)
    smmu.cmdq_publish([atc_inv(0, 0, 52)])
    smmu.set_ats(0, True)
    assert publish(smmu) == [] and smmu.errors == []
