"""Kernel arithmetic: iommu_pgsize (kernel-semantics §2.1), the gather helpers (§1.2), the SMMUv3 range
TLBI and ATC_INV encodings (§7.1) and the command encoder/decoder pair (smmu-reference §1.5)."""

import pytest

from smmufuzz.reference import cmdq as C
from smmufuzz.reference import spec as ref_spec
from smmufuzz.reference.smmu import HwConfig
from smmufuzz.variants import core as var_core
from smmufuzz.variants.arm_smmu_v3 import (ATC_INV_SIZE_ALL, CMDQ_OP_ATC_INV, CMDQ_OP_CFGI_STE,
                                           CMDQ_OP_CMD_SYNC, CMDQ_OP_TLBI_EL2_ASID, CMDQ_OP_TLBI_EL2_VA,
                                           CMDQ_OP_TLBI_NH_ASID, CMDQ_OP_TLBI_NH_VA,
                                           CMDQ_OP_TLBI_S12_VMALL, CMDQ_OP_TLBI_S2_IPA, ArmSmmuV3Driver,
                                           CmdqEnt, SmmuDomain, build_cmd)
from smmufuzz.variants.core import Domain, IommuCore
from smmufuzz.variants.gather import ULONG_MAX, Gather, add_page, add_range, is_disjoint
from smmufuzz.variants.io_pgtable_arm import PgtableCfg

K4, K16, K64 = 1 << 12, 1 << 14, 1 << 16
M2, M32, M512, G1 = 1 << 21, 1 << 25, 1 << 29, 1 << 30
BM4K = K4 | M2 | G1
BM16K = K16 | M32
BM64K = K64 | M512

PGSIZE_IMPLS = [pytest.param(var_core.iommu_pgsize, id="variants.core"),
                pytest.param(ref_spec.iommu_pgsize, id="reference.spec")]

# (bitmap, iova, paddr, size) -> (pgsize, count); each derived by hand from §2.1's pseudo-code.
PGSIZE_CASES = [
    # the worked example of §2.1: 0x201000 bytes at 0x1ff000 -> one 4K page up to the 2M boundary...
    (BM4K, 0x1ff000, 0x1ff000, 0x201000, (K4, 1)),
    # ...then the rest is exactly one 2M block
    (BM4K, 0x200000, 0x200000, 0x200000, (M2, 1)),
    # iova 0, paddr 0, 1G: cand = all three sizes, merge = 0 -> 1G; no bigger size -> count 1
    (BM4K, 0, 0, G1, (G1, 1)),
    # paddr not 2M-congruent with iova: 4K only, and no trimming at 2M boundaries -> 0x400000/4K
    (BM4K, 0, 0x1000, 0x400000, (K4, 1024)),
    # 6M at 2M alignment: 2M pages; next boundary (1G) is 1G-2M away, beyond size -> 3 pages
    (BM4K, 0x200000, 0x200000, 0x600000, (M2, 3)),
    # at 1G-2M with 1G+2M bytes: 2M pages, but a 1G block fits after 2M: off = 2M -> count 1
    (BM4K, G1 - M2, G1 - M2, G1 + M2, (M2, 1)),
    # size below the merge alignment: __fls(size) limits it to 4K
    (BM4K, 0x40000000, 0x80000000, 0x3000, (K4, 3)),
    # 16K granule: 32M-16K with 32M+16K bytes -> one 16K page up to the 32M boundary
    (BM16K, M32 - K16, M32 - K16, M32 + K16, (K16, 1)),
    # 16K granule: 64M at 32M alignment, no bigger size in the bitmap -> two 32M pages
    (BM16K, M32, 3 * M32, 2 * M32, (M32, 2)),
    # 64K granule: 512M + 3*64K at 512M -> one 512M page (cand limited by __fls(size) = 29)
    (BM64K, M512, M512, M512 + 3 * K64, (M512, 1)),
    # 64K granule: 8 pages at 64K alignment, 512M boundary far away -> 8 pages of 64K
    (BM64K, K64, 2 * K64, 8 * K64, (K64, 8)),
    # near the top of the 64-bit space: 2^64-2M-4K with 2M+4K bytes -> 4K then the 2M block
    (BM4K, (1 << 64) - M2 - K4, (1 << 64) - M2 - K4, M2 + K4, (K4, 1)),
]


@pytest.mark.parametrize("fn", PGSIZE_IMPLS)
@pytest.mark.parametrize("bitmap,iova,paddr,size,expected", PGSIZE_CASES)
def test_iommu_pgsize(fn, bitmap, iova, paddr, size, expected):
    assert fn(bitmap, iova, paddr, size) == expected


@pytest.mark.parametrize("fn", PGSIZE_IMPLS)
def test_iommu_pgsize_split_covers_range(fn):
    """Iterating iommu_pgsize() like __iommu_map() tiles the range exactly with aligned pages."""
    iova, paddr, size = 0x3fe00000 - 0x3000, 0x7fe00000 - 0x3000, 0x40600000 + 0x3000
    chunks = []
    while size:
        pg, count = fn(BM4K, iova, paddr, size)
        assert count >= 1 and pg & BM4K == pg
        assert iova % pg == 0 and paddr % pg == 0
        chunks.append((pg, count))
        iova += pg * count
        paddr += pg * count
        size -= pg * count
        assert size >= 0
    # hand-derived: start 0x3fdfd000 -> 0x3fe00000 (3 x 4K), -> 0x40000000 (1 x 2M, stopping at the
    # 1G boundary), -> 0x80000000 (1 x 1G; paddr is congruent mod 1G: iova ^ paddr = 1 << 30),
    # remaining 0x40603000 - 0x3000 - 0x200000 - 0x40000000 = 0x400000 -> 2 x 2M
    assert chunks == [(K4, 3), (M2, 1), (G1, 1), (M2, 2)]


def test_iommu_pgsize_no_fitting_size():
    # iova misaligned to the smallest page: BUG_ON(!pgsizes) in the kernel
    with pytest.raises(AssertionError):
        var_core.iommu_pgsize(BM4K, 0x800, 0x800, 0x1000)
    with pytest.raises(ValueError):
        ref_spec.iommu_pgsize(BM4K, 0x800, 0x800, 0x1000)


# ---- gather helpers (§1.2) ----------------------------------------------------------------------

def test_gather_init_is_empty():
    g = Gather()
    assert (g.start, g.end, g.pgsize, g.queued) == (ULONG_MAX, 0, 0, False)
    assert g.empty()


def test_add_range_basic_and_grow():
    g = Gather()
    add_range(g, 0x2000, 0x1000)
    assert (g.start, g.end) == (0x2000, 0x2fff)       # end inclusive
    add_range(g, 0x8000, 0x2000)
    assert (g.start, g.end) == (0x2000, 0x9fff)
    add_range(g, 0x1000, 0x1000)                      # only start moves
    assert (g.start, g.end) == (0x1000, 0x9fff)


def test_add_range_size_zero_wraps():
    # size 0 at iova 0: last = 0 + 0 - 1 wraps to ULONG_MAX -> the gather covers everything
    g = Gather()
    add_range(g, 0, 0)
    assert (g.start, g.end) == (0, ULONG_MAX)
    # size 0 elsewhere: last = iova - 1 < start -> still "empty" by the start < end rule
    g = Gather()
    add_range(g, 0x5000, 0)
    assert (g.start, g.end) == (0x5000, 0x4fff)
    assert g.empty()


def test_is_disjoint():
    g = Gather()
    assert not is_disjoint(g, 0x100000, 0x1000)       # empty gather (end == 0): never disjoint
    add_range(g, 0x10000, 0x1000)                     # [0x10000, 0x10fff]
    assert not is_disjoint(g, 0x11000, 0x1000)        # touches the end
    assert not is_disjoint(g, 0xf000, 0x1000)         # touches the start
    assert not is_disjoint(g, 0x10800, 0x1000)        # overlaps
    assert is_disjoint(g, 0x12000, 0x1000)            # one page gap after
    assert is_disjoint(g, 0xe000, 0x1000)             # one page gap before
    # end == ULONG_MAX: end + 1 wraps to 0, so any start > 0 is "disjoint"
    g2 = Gather()
    add_range(g2, ULONG_MAX - 0xfff, 0x1000)
    assert g2.end == ULONG_MAX
    assert is_disjoint(g2, 0x1000, 0x1000)


class _RecordingOps:
    def __init__(self):
        self.synced = []

    def iotlb_sync(self, domain, g):
        self.synced.append((g.start, g.end, g.pgsize))


def _core_and_domain():
    ops = _RecordingOps()
    return IommuCore(hw=None), Domain(0, ops, BM4K), ops


def test_add_page_syncs_on_pgsize_change_and_disjoint():
    core, dom, ops = _core_and_domain()
    g = Gather()
    add_page(core, dom, g, 0x0, K4)
    add_page(core, dom, g, 0x1000, K4)               # contiguous, same size: keep gathering
    assert ops.synced == []
    assert (g.start, g.end, g.pgsize) == (0, 0x1fff, K4)
    add_page(core, dom, g, 0x200000, M2)             # pgsize changes: the 4K run is synced first
    assert ops.synced == [(0, 0x1fff, K4)]
    assert (g.start, g.end, g.pgsize) == (0x200000, 0x3fffff, M2)
    add_page(core, dom, g, 0x400000, M2)             # touching, same size: no sync
    assert len(ops.synced) == 1
    add_page(core, dom, g, 0x800000, M2)             # disjoint: sync [2M, 6M)
    assert ops.synced[1] == (0x200000, 0x5fffff, M2)
    assert (g.start, g.end, g.pgsize) == (0x800000, 0x9fffff, M2)


def test_iotlb_sync_skips_empty_gather_but_reinits():
    # 90c5def10bea: the driver is called only when start < end; the gather is always re-inited
    core, dom, ops = _core_and_domain()
    g = Gather()
    g.pgsize = K4
    core.iotlb_sync(dom, g)
    assert ops.synced == []
    assert (g.start, g.end, g.pgsize) == (ULONG_MAX, 0, 0)
    add_range(g, 0x1000, 0x1000)
    core.iotlb_sync(dom, g)
    assert ops.synced == [(0x1000, 0x1fff, 0)]


# ---- SMMUv3 range TLBI / ATC encodings (§7.1) -----------------------------------------------------

class FakeHw:
    """Records cmdq_publish() batches and decodes every command the way the SMMU does."""

    def __init__(self, **cfg):
        self.cfg = HwConfig(**cfg)
        self.batches = []

    def tick(self, n=1):
        pass

    def cmdq_publish(self, entries):
        self.batches.append([C.decode(dw0, dw1) for dw0, dw1 in entries])

    @property
    def cmds(self):
        return [c for b in self.batches for c in b]


def _driver(pg_shift=12, **cfg):
    hw = FakeHw(**cfg)
    drv = ArmSmmuV3Driver(hw, core=None, pgcfg=PgtableCfg(pg_shift=pg_shift))
    d = SmmuDomain(stage=1, asid=7, vmid=0, pgsize_bitmap=PgtableCfg(pg_shift=pg_shift).pgsize_bitmap)
    return hw, drv, d


def _span(c, tg_shift):
    """Bytes covered by a range TLBI: (NUM+1) << (SCALE + log2 granule(TG))."""
    return (c.num + 1) << (c.scale + tg_shift)


def test_range_inv_37_pages_leaf():
    hw, drv, d = _driver(range_inv=True)
    iova = 0x10_0000_0000
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=True), iova, 37 * K4, K4, d)
    cmds = hw.cmds
    assert [c.op for c in cmds] == [C.CMD_TLBI_NH_VA, C.CMD_TLBI_NH_VA, C.CMD_SYNC]
    c1, c2 = cmds[0], cmds[1]
    # 37 = 0b100101: scale 0 with 5 pages (NUM field 4), then scale 5 with 1 chunk (NUM field 0)
    assert (c1.scale, c1.num, c1.addr) == (0, 4, iova)
    assert (c2.scale, c2.num, c2.addr) == (5, 0, iova + 5 * K4)
    for c in (c1, c2):
        assert (c.tg, c.ttl, c.leaf, c.asid) == (1, 3, 1, 7)    # TG 4K = 1; leaf 4K at level 3
    assert _span(c1, 12) + _span(c2, 12) == 37 * K4


@pytest.mark.parametrize("pages,expect", [
    # non-leaf: (num_pages & 31) == 1 -> num_pages + 1, avoiding NUM = SCALE = TTL = 0
    (1, [(1, 0)]),              # 2 pages: scale 1, num 1 -> field 0
    (33, [(1, 16)]),            # 34 = 0b100010: scale 1, num 17 -> field 16, covers all 33
    (3, [(0, 2)]),              # 3 & 31 != 1: unchanged, scale 0 num 3 -> field 2
])
def test_range_inv_nonleaf_bumps_num_pages(pages, expect):
    hw, drv, d = _driver(range_inv=True)
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=False), 0x400000, pages * K4, K4, d)
    tlbis = [c for c in hw.cmds if c.op == C.CMD_TLBI_NH_VA]
    assert [(c.scale, c.num) for c in tlbis] == expect
    assert all(c.ttl == 0 and c.leaf == 0 and c.tg == 1 for c in tlbis)
    assert sum(_span(c, 12) for c in tlbis) >= pages * K4
    assert hw.cmds[-1].op == C.CMD_SYNC


@pytest.mark.parametrize("pg_shift,granule,tg,ttl", [
    # ttl = 4 - (log2(granule) - 3) / (tg - 3): 4K:3, 2M:2, 1G:1; 16K:3, 32M:2; 64K:3, 512M:2
    (12, K4, 1, 3), (12, M2, 1, 2), (12, G1, 1, 1),
    (14, K16, 2, 3), (14, M32, 2, 2),
    (16, K64, 3, 3), (16, M512, 3, 2),
])
def test_range_inv_tg_ttl(pg_shift, granule, tg, ttl):
    hw, drv, d = _driver(pg_shift=pg_shift, range_inv=True)
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=True), 0, granule, granule, d)
    tlbis = [c for c in hw.cmds if c.op == C.CMD_TLBI_NH_VA]
    assert len(tlbis) == 1
    c = tlbis[0]
    assert (c.tg, c.ttl) == (tg, ttl)
    # one granule = 2^(log2 granule - pg_shift) leaf pages, a power of two: NUM 0, SCALE = log2
    assert (c.num, c.scale) == (0, granule.bit_length() - 1 - pg_shift)


def test_no_range_inv_one_tlbi_per_granule():
    hw, drv, d = _driver(range_inv=False)
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=True), 0x200000, 5 * K4, K4, d)
    cmds = hw.cmds
    assert [c.op for c in cmds] == [C.CMD_TLBI_NH_VA] * 5 + [C.CMD_SYNC]
    assert [c.addr for c in cmds[:5]] == [0x200000 + i * K4 for i in range(5)]
    assert all((c.tg, c.num, c.scale, c.ttl) == (0, 0, 0, 0) for c in cmds[:5])
    # a 2M granule over 4M: two commands, 2M apart
    hw2, drv2, d2 = _driver(range_inv=False)
    drv2._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d2.asid, leaf=True), 0, 2 * M2, M2, d2)
    assert [c.addr for c in hw2.cmds if c.op == C.CMD_TLBI_NH_VA] == [0, M2]


def test_no_range_inv_batches_of_64_then_sync():
    # arm_smmu_cmdq_batch_add(): a full batch (64) is issued without sync; submit appends CMD_SYNC
    hw, drv, d = _driver(range_inv=False)
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=True), 0, 100 * K4, K4, d)
    assert [len(b) for b in hw.batches] == [64, 36 + 1]
    assert all(c.op == C.CMD_TLBI_NH_VA for c in hw.batches[0])
    assert [c.op for c in hw.cmds].count(C.CMD_SYNC) == 1 and hw.cmds[-1].op == C.CMD_SYNC
    assert sorted(c.addr for c in hw.cmds if c.op == C.CMD_TLBI_NH_VA) == [i * K4 for i in range(100)]


def test_zero_size_inv_range_issues_nothing():
    hw, drv, d = _driver(range_inv=True)
    drv._tlb_inv_range(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=d.asid, leaf=True), 0x1000, 0, K4, d)
    assert hw.batches == []


@pytest.mark.parametrize("first,last,addr,size", [
    (8, 11, 8 << 12, 2),        # 8 ^ 11 = 0b011 -> fls 2, span 4 pages at 8
    (7, 10, 0, 4),              # 7 ^ 10 = 0b1101 -> fls 4, 16 pages aligned down to 0
    (5, 5, 5 << 12, 0),         # a single page -> size 0
    (0x100, 0x1ff, 0x100 << 12, 8),   # 256 aligned pages -> exactly 2^8
])
def test_atc_inv_to_cmd(first, last, addr, size):
    iova = first << 12
    length = (last - first + 1) << 12
    cmd = ArmSmmuV3Driver.atc_inv_to_cmd(0, iova, length)
    assert cmd.opcode == CMDQ_OP_ATC_INV
    assert (cmd.addr, cmd.size) == (addr, size)
    assert not cmd.substream_valid
    # the span covers the requested pages
    assert cmd.addr <= iova and iova + length <= cmd.addr + (4096 << cmd.size)


def test_atc_inv_to_cmd_unaligned_bytes_and_all():
    # bytes 0x1800..0x27ff touch pages 1 and 2: 1 ^ 2 = 3 -> fls 2 -> 4 pages at 0
    cmd = ArmSmmuV3Driver.atc_inv_to_cmd(0, 0x1800, 0x1000)
    assert (cmd.addr, cmd.size) == (0, 2)
    cmd = ArmSmmuV3Driver.atc_inv_to_cmd(0, 0x1234000, 0)
    assert cmd.size == ATC_INV_SIZE_ALL == 52
    cmd = ArmSmmuV3Driver.atc_inv_to_cmd(3, 0x1000, 0x1000)
    assert cmd.substream_valid and cmd.ssid == 3


# ---- build_cmd / cmdq.decode round trip --------------------------------------------------------

ROUND_TRIP = [
    (CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=0xBEEF, vmid=0x1234, leaf=True, ttl=3, tg=1, num=17, scale=9,
             addr=0xFFFF_8000_1234_5000),
     dict(op=C.CMD_TLBI_NH_VA, asid=0xBEEF, vmid=0x1234, leaf=1, ttl=3, tg=1, num=17, scale=9,
          addr=0xFFFF_8000_1234_5000)),
    (CmdqEnt(CMDQ_OP_TLBI_EL2_VA, asid=0x77, leaf=False, ttl=2, tg=3, num=31, scale=31, addr=0x4_0000_0000),
     dict(op=C.CMD_TLBI_EL2_VA, asid=0x77, vmid=0, leaf=0, ttl=2, tg=3, num=31, scale=31, addr=0x4_0000_0000)),
    (CmdqEnt(CMDQ_OP_TLBI_S2_IPA, vmid=0xFFFF, leaf=True, ttl=1, tg=2, num=3, scale=4,
             addr=0x000F_FFFF_FFFF_F000),
     dict(op=C.CMD_TLBI_S2_IPA, vmid=0xFFFF, asid=0, leaf=1, ttl=1, tg=2, num=3, scale=4,
          addr=0x000F_FFFF_FFFF_F000)),
    (CmdqEnt(CMDQ_OP_TLBI_NH_ASID, asid=42, vmid=3), dict(op=C.CMD_TLBI_NH_ASID, asid=42, vmid=3)),
    (CmdqEnt(CMDQ_OP_TLBI_EL2_ASID, asid=9), dict(op=C.CMD_TLBI_EL2_ASID, asid=9, vmid=0)),
    (CmdqEnt(CMDQ_OP_TLBI_S12_VMALL, vmid=513), dict(op=C.CMD_TLBI_S12_VMALL, vmid=513)),
    (CmdqEnt(CMDQ_OP_ATC_INV, sid=0xDEADBEEF, ssid=0xABCDE, substream_valid=True, size=13,
             addr=0x1234_5678_9000),
     dict(op=C.CMD_ATC_INV, sid=0xDEADBEEF, ssid=0xABCDE, ssv=1, size=13, addr=0x1234_5678_9000)),
    (CmdqEnt(CMDQ_OP_ATC_INV, sid=1, size=ATC_INV_SIZE_ALL), dict(op=C.CMD_ATC_INV, sid=1, size=52, addr=0)),
    (CmdqEnt(CMDQ_OP_CFGI_STE, sid=0x10203, leaf=True), dict(op=C.CMD_CFGI_STE, sid=0x10203, leaf=1)),
    (CmdqEnt(CMDQ_OP_CMD_SYNC), dict(op=C.CMD_SYNC)),
]


@pytest.mark.parametrize("ent,fields", ROUND_TRIP, ids=[f"{e.opcode:#x}-{i}" for i, (e, _f) in enumerate(ROUND_TRIP)])
def test_build_cmd_decode_round_trip(ent, fields):
    dw0, dw1 = build_cmd(ent)
    assert 0 <= dw0 < 1 << 64 and 0 <= dw1 < 1 << 64
    c = C.decode(dw0, dw1)
    for k, v in fields.items():
        assert getattr(c, k) == v, f"{k}: {getattr(c, k)!r} != {v!r}"


def test_build_cmd_field_positions():
    # smmu-reference §1.5: NUM dw0[16:12], SCALE dw0[24:20], VMID dw0[47:32], ASID dw0[63:48],
    # LEAF dw1[0], TTL dw1[9:8], TG dw1[11:10], VA dw1[63:12]
    dw0, dw1 = build_cmd(CmdqEnt(CMDQ_OP_TLBI_NH_VA, asid=1, vmid=1, leaf=True, ttl=1, tg=1, num=1,
                                 scale=1, addr=0x1000))
    assert dw0 == 0x12 | 1 << 12 | 1 << 20 | 1 << 32 | 1 << 48
    assert dw1 == 1 | 1 << 8 | 1 << 10 | 0x1000
    # the S2 IPA field stops at bit 51
    _dw0, dw1 = build_cmd(CmdqEnt(CMDQ_OP_TLBI_S2_IPA, vmid=1, addr=(1 << 63) | 0x5000))
    assert dw1 == 0x5000
