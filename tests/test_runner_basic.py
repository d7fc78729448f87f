"""The mainline variant must be clean on realistic programs, and runs must be deterministic.

Mainline Linux (core + io-pgtable-arm + arm-smmu-v3 classic path) keeps every promise of the iommu
API for these call sequences (kernel-semantics §1-§4, §7.1), so any finding here is a false positive
of the reference/oracle or a modelling bug in the variant.
"""

import random

import pytest

from smmufuzz.prog.codec import decode, encode
from smmufuzz.prog.program import GRANULES, parse
from smmufuzz.exec.runner import run_program
from smmufuzz.variants.core import IommuCore
from smmufuzz.variants.os_smmuv3 import SmmuV3Os
from smmufuzz.variants.registry import VARIANTS, register


def _program_texts(pg_shift: int):
    """Realistic call sequences, with sizes in units of the granule g and the level-2 block b1."""
    g = 1 << pg_shift
    b1 = g << (pg_shift - 3)          # 2M / 32M / 512M
    base = 0x8000_0000                # aligned to every block size above
    X = 4 * b1                        # a table-mapped area
    Y = 16 * b1                       # a second, disjoint area
    h = lambda v: f"{v:#x}"           # noqa: E731
    return {
        "map_dma_unmap_remap": f"""
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova={h(X)}, paddr={h(base)}, size={h(4 * g)}, prot=RW)
dev_dma(sid=0, iova={h(X)}, write=1)
dev_dma(sid=0, iova={h(X + 3 * g)}, write=0)
iommu_unmap(d0, iova={h(X)}, size={h(4 * g)})
dev_dma(sid=0, iova={h(X)}, write=0)
iommu_map(d0, iova={h(X)}, paddr={h(base + 64 * g)}, size={h(4 * g)}, prot=R)
dev_dma(sid=0, iova={h(X + g)}, write=0)
iommu_map(d0, iova={h(2 * b1)}, paddr={h(base + b1)}, size={h(b1)}, prot=RW)
dev_dma(sid=0, iova={h(2 * b1 + 5 * g)}, write=1)
iommu_unmap(d0, iova={h(2 * b1)}, size={h(b1)})
iommu_map(d0, iova={h(2 * b1)}, paddr={h(base + 3 * b1)}, size={h(2 * g)}, prot=RW)
dev_dma(sid=0, iova={h(2 * b1)}, write=1)
iommu_map(d0, iova={h(8 * b1 - 2 * g)}, paddr={h(base + b1 - 2 * g)}, size={h(b1 + 4 * g)}, prot=RW)
dev_dma(sid=0, iova={h(8 * b1)}, write=0)
iommu_unmap(d0, iova={h(8 * b1 - 2 * g)}, size={h(b1 + 4 * g)})
iommu_unmap(d0, iova={h(X)}, size={h(4 * g)})
iommu_unmap(d0, iova={h(2 * b1)}, size={h(2 * g)})
dev_dma(sid=0, iova={h(2 * b1)}, write=0)
""",
        "unmap_fast_two_ranges": f"""
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova={h(X)}, paddr={h(base)}, size={h(8 * g)}, prot=RW)
iommu_map(d0, iova={h(Y)}, paddr={h(base + 8 * g)}, size={h(8 * g)}, prot=RW)
hw_fill(sid=0, iova={h(X)})
hw_fill(sid=0, iova={h(Y + 2 * g)})
iommu_unmap_fast(d0, iova={h(X)}, size={h(2 * g)}, gather=g0)
iommu_unmap_fast(d0, iova={h(Y)}, size={h(4 * g)}, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
dev_dma(sid=0, iova={h(X)}, write=0)
dev_dma(sid=0, iova={h(Y + 2 * g)}, write=0)
dev_dma(sid=0, iova={h(Y + 4 * g)}, write=1)
iommu_unmap_fast(d0, iova={h(X + 2 * g)}, size={h(6 * g)}, gather=g1)
iommu_unmap_fast(d0, iova={h(Y + 4 * g)}, size={h(4 * g)}, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
iommu_iotlb_sync(d0, gather=g1)
dev_dma(sid=0, iova={h(X + 7 * g)}, write=0)
""",
        "map_sg": f"""
iommu_attach_device(d1, sid=1)
iommu_map_sg(d1, iova={h(X)}, sg=[{h(base)}+{h(2 * g)}, {h(base + 2 * g)}+{h(g)}, {h(base + 64 * g)}+{h(4 * g)}], prot=RW)
dev_dma(sid=1, iova={h(X + 2 * g)}, write=1)
dev_dma(sid=1, iova={h(X + 6 * g)}, write=0)
iommu_map_sg(d1, iova={h(b1)}, sg=[{h(base + b1)}+{h(b1)}, {h(base + 2 * b1)}+{h(g)}], prot=R)
dev_dma(sid=1, iova={h(b1 + 3 * g)}, write=0)
iommu_unmap(d1, iova={h(X)}, size={h(7 * g)})
iommu_unmap(d1, iova={h(b1)}, size={h(b1 + g)})
dev_dma(sid=1, iova={h(X + 6 * g)}, write=0)
""",
        "flush_all": f"""
iommu_attach_device(d0, sid=0)
iommu_attach_device(d0, sid=2)
iommu_map(d0, iova={h(X)}, paddr={h(base)}, size={h(16 * g)}, prot=RW)
hw_fill(sid=2, iova={h(X + 8 * g)})
iommu_unmap_fast(d0, iova={h(X)}, size={h(16 * g)}, gather=g1)
iommu_flush_iotlb_all(d0)
dev_dma(sid=2, iova={h(X + 8 * g)}, write=0)
iommu_map(d0, iova={h(X)}, paddr={h(base + b1)}, size={h(16 * g)}, prot=RW)
iommu_iotlb_sync(d0, gather=g1)
dev_dma(sid=0, iova={h(X)}, write=1)
""",
        "attach_detach": f"""
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova={h(X)}, paddr={h(base)}, size={h(2 * g)}, prot=RW)
iommu_map(d1, iova={h(X)}, paddr={h(base + b1)}, size={h(2 * g)}, prot=R)
dev_dma(sid=0, iova={h(X)}, write=1)
iommu_attach_device(d1, sid=0)
dev_dma(sid=0, iova={h(X)}, write=0)
iommu_attach_device(d0, sid=1)
dev_dma(sid=1, iova={h(X + g)}, write=1)
iommu_detach_device(sid=0)
dev_dma(sid=0, iova={h(X)}, write=0)
iommu_unmap(d0, iova={h(X)}, size={h(2 * g)})
iommu_detach_device(sid=1)
iommu_attach_device(d1, sid=3)
iommu_unmap(d1, iova={h(X)}, size={h(2 * g)})
dev_dma(sid=3, iova={h(X)}, write=0)
""",
    }


ATS_PROGRAM = """
pci_ats(sid=0, on=1)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova={X}, paddr={P}, size={S4}, prot=RW)
ats_translate(sid=0, iova={X})
dev_dma(sid=0, iova={X}, write=1)
iommu_unmap_fast(d0, iova={X}, size={S2}, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
ats_translate(sid=0, iova={X2})
iommu_unmap(d0, iova={X2}, size={S2})
dev_dma(sid=0, iova={X2}, write=0)
iommu_map(d0, iova={X}, paddr={P}, size={S4}, prot=RW)
ats_translate(sid=0, iova={X})
pci_ats(sid=0, on=0)
ats_translate(sid=0, iova={X})
iommu_detach_device(sid=0)
dev_dma(sid=0, iova={X}, write=0)
"""

CONFIGS = [(pg, st, coh, ri) for pg in (12, 14, 16) for st in (1, 2) for coh in (0, 1) for ri in (0, 1)]
CFG_IDS = [f"{GRANULES[pg]}-s{st}-coh{coh}-ri{ri}" for pg, st, coh, ri in CONFIGS]


def _config_line(pg, st, coh, ri, ats=0):
    return f"config(granule={GRANULES[pg]}, ias=48, stage={st}, coherent={coh}, range_inv={ri}, ats={ats})\n"


def _assert_clean(prog, name):
    res = run_program(prog, ["smmuv3"])
    assert res.findings == [], f"{name}:\n" + "\n".join(f.text() for f in res.findings)
    run = res.runs[0]
    assert len(run.returns) == len(prog.ops)
    return run


@pytest.mark.parametrize("pg,st,coh,ri", CONFIGS, ids=CFG_IDS)
def test_mainline_clean(pg, st, coh, ri):
    for name, body in _program_texts(pg).items():
        prog = parse(_config_line(pg, st, coh, ri) + body)
        run = _assert_clean(prog, name)
        # the kernel API's own return values (§2.2, §2.3): map 0, unmap = bytes requested,
        # map_sg = total length of the list
        for op, ret in zip(prog.ops, run.returns):
            if op.kind == "map":
                assert ret == 0, f"{name}: {op.text()} returned {ret}"
            elif op.kind in ("unmap", "unmap_fast"):
                assert ret == op.get("size"), f"{name}: {op.text()} returned {ret}"
            elif op.kind == "map_sg":
                assert ret == sum(ln for _pa, ln in op.get("sg"))
            elif op.kind == "attach":
                assert ret == 0


@pytest.mark.parametrize("pg,st,coh,ri", [c for c in CONFIGS if c[2] == 1 or c[0] == 12],
                         ids=[i for c, i in zip(CONFIGS, CFG_IDS) if c[2] == 1 or c[0] == 12])
def test_mainline_clean_ats(pg, st, coh, ri):
    g = 1 << pg
    X = 0x4000_0000
    body = ATS_PROGRAM.format(X=hex(X), X2=hex(X + 2 * g), P=hex(0x8000_0000), S4=hex(4 * g), S2=hex(2 * g))
    prog = parse(_config_line(pg, st, coh, ri, ats=1) + body)
    run = _assert_clean(prog, "ats")
    # ATS was really in use: the driver issued ATC invalidations
    assert run.stats["cmds"].get("ATC_INV", 0) > 0


def test_mainline_clean_noncoherent_with_writebacks():
    """Hardware write-backs of dirty lines at any time change nothing for a correct OS."""
    body = _program_texts(12)["map_dma_unmap_remap"]
    lines = body.strip().splitlines()
    mixed = []
    for i, ln in enumerate(lines):
        mixed.append(ln)
        if i % 3 == 1:
            mixed.append(f"hw_writeback(n={i})")
            mixed.append("hw_evict(walk, n=1)")
    prog = parse(_config_line(12, 1, 0, 1) + "\n".join(mixed[:48 - 1]) + "\n")
    _assert_clean(prog, "writebacks")


def test_range_inv_changes_commands_not_outcome():
    """Sanity check that the configs really differ: RIL uses range TLBIs (fewer commands)."""
    body = _program_texts(12)["unmap_fast_two_ranges"]
    no_ri = _assert_clean(parse(_config_line(12, 1, 1, 0) + body), "ri0")
    ri = _assert_clean(parse(_config_line(12, 1, 1, 1) + body), "ri1")
    assert sum(ri.stats["cmds"].values()) < sum(no_ri.stats["cmds"].values())


# ---- a deliberately broken variant: proves the oracle is not vacuous, and gives findings to compare --

class _NoSyncCore(IommuCore):
    """iommu_iotlb_sync() never calls the driver: every unmap leaves stale TLB entries."""

    def sync_skips_gather(self, g):
        return True


class _NoSyncOs(SmmuV3Os):
    core_cls = _NoSyncCore


@pytest.fixture
def nosync_variant():
    name = "test-nosync"
    register(name, _NoSyncOs, True, "test", "tests only: iotlb_sync never reaches the driver")
    yield name
    VARIANTS.pop(name, None)


def test_broken_variant_is_caught(nosync_variant):
    body = _program_texts(12)["map_dma_unmap_remap"]
    prog = parse(_config_line(12, 1, 1, 0) + body)
    res = run_program(prog, [nosync_variant])
    assert [f.kind for f in res.findings] == ["MISSED_INVALIDATION"]
    f = res.findings[0]
    # the first promise broken is the first iommu_unmap (op 4): it returned with no TLBI issued
    assert f.op_index == 4 and prog.ops[4].kind == "unmap"
    # side by side with mainline the run also reports the findings of the broken one only
    res2 = run_program(prog, ["smmuv3", nosync_variant])
    assert {f.variant for f in res2.findings if f.kind == "MISSED_INVALIDATION"} == {nosync_variant}


def _bounded(p):
    """Drop map/unmap calls over more than 4 level-2 blocks: a 4K-page map of many GiB is legal but
    slow in the pure-Python model (the runner also has its own per-op leaf budget); keeps this fast."""
    lim = 4 * ((1 << p.config.pg_shift) << (p.config.pg_shift - 3))

    def size(op):
        if op.kind == "map_sg":
            return sum(ln for _a, ln in op.get("sg"))
        if op.kind in ("map", "unmap", "unmap_fast"):
            return op.get("size")
        return 0
    return p.with_ops(op for op in p.ops if size(op) <= lim)


def test_deterministic_runs(nosync_variant):
    rng = random.Random(99)
    progs = [_bounded(decode(bytes(rng.getrandbits(8) for _ in range(rng.randint(10, 200)))))
             for _ in range(60)]
    # random programs seldom unmap what they mapped: add the realistic ones, through the byte codec
    for pg, st, coh, ri in CONFIGS[::5]:
        for body in _program_texts(pg).values():
            progs.append(decode(encode(parse(_config_line(pg, st, coh, ri) + body))))
    total_findings = 0
    for prog in progs:
        a = run_program(prog, ["smmuv3", nosync_variant])
        b = run_program(prog, ["smmuv3", nosync_variant])
        assert a.findings == b.findings, prog.text()
        assert [r.stats for r in a.runs] == [r.stats for r in b.runs], prog.text()
        assert [r.returns for r in a.runs] == [r.returns for r in b.runs], prog.text()
        total_findings += len(a.findings)
    assert total_findings > 0      # the comparison covered real findings (kind, op, message, witness)
