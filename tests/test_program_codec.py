"""Program text format and fuzz-byte codec: totality, determinism, round trips, parse errors."""

import random
import re
from pathlib import Path

import pytest

from smmufuzz.prog.codec import decode, encode
from smmufuzz.prog.program import (MAX_OPS, NUM_DOMAINS, NUM_GATHERS, NUM_SIDS, OPS, Config, Op,
                                      Program, ProgramSyntaxError, parse)

SEEDS_DIR = Path(__file__).resolve().parent.parent / "corpus" / "seeds"


def _random_inputs(n=3000, seed=1234, max_len=400):
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, max_len))) for _ in range(n)]


RANDOM_INPUTS = _random_inputs()


def _check_well_formed(p: Program):
    """Every value is in the range the text format accepts (so the program is a valid program)."""
    c = p.config
    assert c.pg_shift in (12, 14, 16)
    assert 32 <= c.ias <= 48
    assert c.stage in (1, 2)
    assert not (c.e2h and c.stage == 2)
    assert len(p.ops) <= MAX_OPS
    for op in p.ops:
        assert op.kind in OPS
        fields = OPS[op.kind][1]
        assert len(op.args) == len(fields)
        for (_name, ftype), v in zip(fields, op.args):
            if ftype == "dom":
                assert 0 <= v < NUM_DOMAINS
            elif ftype == "sid":
                assert 0 <= v < NUM_SIDS
            elif ftype == "gather":
                assert 0 <= v < NUM_GATHERS
            elif ftype in ("addr", "size"):
                assert 0 <= v < 1 << 64
            elif ftype == "prot":
                assert v in (0, 1, 2, 3)
            elif ftype == "sg":
                assert 1 <= len(v) <= 16
                assert all(0 <= a < 1 << 64 and 0 <= b < 1 << 64 for a, b in v)


def test_decode_total_and_deterministic():
    lengths = set()
    for data in RANDOM_INPUTS:
        p = decode(data)
        assert isinstance(p, Program)
        _check_well_formed(p)
        assert decode(data) == p
        lengths.add(len(p.ops))
    # the sample exercises both short and capped programs
    assert 1 in lengths and MAX_OPS in lengths


def test_decode_edge_inputs():
    for data in (b"", b"\x00", b"\xff", b"\xff" * 4000, bytes(range(256)) * 4, b"\xf0" * 401):
        p = decode(data)
        _check_well_formed(p)
    # empty input: default header (4K, ias 48, stage 1, coherent) with the implicit attach of sid 0
    p = decode(b"")
    assert p.config == Config(pg_shift=12, ias=48, stage=1, coherent=True)
    assert p.ops == (Op("attach", (0, 0)),)


WRITEBACK_ALL = Op("writeback", (-1,))


def test_text_round_trip_random():
    progs = [decode(data) for data in RANDOM_INPUTS[:1000]]
    assert any(WRITEBACK_ALL in p.ops for p in progs)      # the sample covers hw_writeback(all)
    for p in progs:
        assert parse(p.text()) == p


def test_writeback_all_text_round_trip():
    # regression: a bare "all" used to be taken as an evict 'what' before the writeback rule
    p = Program(Config(), (WRITEBACK_ALL, Op("evict", ("all", 3))))
    assert p.text().splitlines()[1:] == ["hw_writeback(all)", "hw_evict(all, n=3)"]
    assert parse(p.text()) == p


def test_bytes_round_trip_random():
    for data in RANDOM_INPUTS[:1000]:
        p = decode(data)
        assert decode(encode(p)) == p


HAND_WRITTEN = [
    """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_unmap(d0, iova=0x200000, size=0x1000)
""",
    """config(granule=16K, ias=39, stage=2, coherent=0, range_inv=1)
# comment lines and trailing comments are ignored
iommu_attach_device(d1, sid=3)   # attach
iommu_map_sg(d1, iova=0x4000000, sg=[0x80000000+0x4000, 0x80004000+0x8000, 0x90000000+0x4000], prot=R)
iommu_unmap_fast(d1, iova=0x4000000, size=0x4000, gather=g1)
iommu_unmap_fast(d1, iova=0x4008000, size=0x8000, gather=g1)
iommu_iotlb_sync(d1, gather=g1)
hw_writeback(all)
hw_writeback(n=3)
hw_evict(walk, n=2)
hw_fill(sid=3, iova=0x4000000)
iommu_flush_iotlb_all(d1)
iommu_detach_device(sid=3)
""",
    """config(granule=64K, ias=42, stage=1, coherent=1, range_inv=0, ats=1, e2h=1)
pci_ats(sid=2, on=1)
iommu_attach_device(d0, sid=2)
iommu_map(d0, iova=0x20000000, paddr=0x123450000, size=0x20000000, prot=W)
ats_translate(sid=2, iova=0x20010000)
dev_dma(sid=2, iova=0x20010000, write=1)
iommu_unmap(d0, iova=0xfffff0000, size=0x12345)
pci_ats(sid=2, on=0)
""",
]


def _seed_files():
    return sorted(SEEDS_DIR.glob("*.txt")) if SEEDS_DIR.is_dir() else []


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_hand_written_round_trips(text):
    p = parse(text)
    assert parse(p.text()) == p
    assert decode(encode(p)) == p


@pytest.mark.parametrize("path", [pytest.param(f, id=f.name) for f in _seed_files()]
                         or [pytest.param(None, marks=pytest.mark.skip("no corpus/seeds/*.txt"))])
def test_seed_files_round_trip(path):
    p = parse(path.read_text())
    assert parse(p.text()) == p
    assert decode(encode(p)) == p


def test_hand_written_values():
    """The text form means what the docstring of program.py says."""
    p = parse(HAND_WRITTEN[1])
    assert p.config == Config(pg_shift=14, ias=39, stage=2, coherent=False, range_inv=True)
    assert p.ops[0] == Op("attach", (1, 3))
    assert p.ops[1].get("sg") == ((0x80000000, 0x4000), (0x80004000, 0x8000), (0x90000000, 0x4000))
    assert p.ops[1].get("prot") == 1
    assert p.ops[2] == Op("unmap_fast", (1, 0x4000000, 0x4000, 1))
    assert p.ops[5] == Op("writeback", (-1,))
    assert p.ops[6] == Op("writeback", (3,))
    assert p.ops[7] == Op("evict", ("walk", 2))
    assert p.ops[10] == Op("detach", (3,))


# ---- parse errors: ProgramSyntaxError with "line N, column M" (1-based) -----------------------

CFG = "config(granule=4K, ias=48, stage=1)\n"


def _err(text):
    with pytest.raises(ProgramSyntaxError) as ei:
        parse(text)
    return ei.value


def test_error_unknown_op():
    # line 3; the name starts after 4 spaces -> column 5
    e = _err(CFG + "iommu_attach_device(d0, sid=0)\n    iommu_frobnicate(d0, iova=0x1000)\n")
    assert "line 3, column 5" in str(e)
    assert (e.line, e.col) == (3, 5)
    assert "iommu_frobnicate" in str(e)


def test_error_bad_number():
    # "iommu_unmap(" is 12 characters; "d0, " takes columns 13-16, "iova=" 17-21: the bad value is at 22
    e = _err(CFG + "iommu_unmap(d0, iova=0xZZ, size=0x1000)\n")
    assert "line 2, column 22" in str(e)
    assert "0xZZ" in str(e)


def test_error_missing_argument():
    # missing size: reported at the call's argument list, i.e. its "(" (column 12)
    e = _err(CFG + "\n" + "iommu_unmap(d0, iova=0x1000)\n")
    assert "line 3, column 12" in str(e)
    assert "size" in str(e)


def test_error_bad_config_key_first():
    # "config(" is 7 characters: the first key starts at column 8
    e = _err("config(bogus=1, granule=4K)\n")
    assert "line 1, column 8" in str(e)
    assert "bogus" in str(e)


def test_error_bad_config_key_after_space():
    # "config(granule=4K, " spans columns 1-19: the bad key starts at column 20
    e = _err("config(granule=4K, bogus=1)\n")
    assert "line 1, column 20" in str(e)


def test_error_other_cases():
    assert "line 1, column 1" in str(_err("this is not a call\n"))
    # config after an operation
    e = _err("iommu_attach_device(d0, sid=0)\nconfig(granule=4K)\n")
    assert "line 2, column 1" in str(e)
    # domain out of range: "iommu_attach_device(" is 20 characters, d7 at column 21
    e = _err("iommu_attach_device(d7, sid=0)\n")
    assert "line 1, column 21" in str(e)
    # too many operations
    with pytest.raises(ProgramSyntaxError):
        parse("iommu_flush_iotlb_all(d0)\n" * (MAX_OPS + 1))
    assert len(parse("iommu_flush_iotlb_all(d0)\n" * MAX_OPS).ops) == MAX_OPS


# -- every text that parses encodes, and decodes back to the same program (issue 15 item 7) ------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from smmufuzz.prog.latitude import WALK_ALL  # noqa: E402
from smmufuzz.prog.ops import ALLOC_KINDS, NUM_MMS, NUM_PASIDS  # noqa: E402
from smmufuzz.prog.program import CONTEXTS, EVICT_WHAT, MAX_AFTER, MAX_SG, MAX_SWITCHES  # noqa: E402

_U64 = st.one_of(st.integers(0, 0x10_0000_0000), st.integers(0, (1 << 64) - 1))


@st.composite
def _programs(draw, wide=False):
    """Any program the text format accepts: every field anywhere in its documented range (`wide`: and
    beyond it, where the text format may refuse it)."""
    stage = draw(st.sampled_from((1, 2)))
    cfg = Config(draw(st.sampled_from((12, 14, 16))), draw(st.integers(32, 48)), stage, draw(st.booleans()),
                 draw(st.booleans()), draw(st.booleans()), (wide or stage == 1) and draw(st.booleans()),
                 ttl_strict=draw(st.booleans()), walk_levels=draw(st.integers(0, WALK_ALL)))
    u64 = st.one_of(_U64, st.integers(-2, 2), st.integers((1 << 64) - 2, (1 << 64) + 2)) if wide else _U64
    ops, maps = [], 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(sorted(OPS)))
        args = []
        for _name, ftype in OPS[kind][1]:
            args.append(draw({
                "dom": st.integers(0, NUM_DOMAINS - 1), "sid": st.integers(0, NUM_SIDS - 1),
                "gather": st.integers(0, NUM_GATHERS - 1), "addr": _U64, "size": _U64,
                "mm": st.integers(0, NUM_MMS - 1), "pasid": st.integers(1, NUM_PASIDS),
                "prot": st.sampled_from((0, 1, 2, 3)), "bool": st.booleans(), "what": st.sampled_from(EVICT_WHAT),
                "alloc": st.sampled_from(ALLOC_KINDS),
                "n": st.integers(-3, 300) if wide else st.integers(-1, 254) if kind == "writeback"
                else st.integers(0, 7) if kind == "fail_alloc" else st.integers(0, 255),
                "handle": st.integers(0, 5) if wide else st.integers(0, max(1, maps) - 1),
                "sg": st.lists(st.tuples(u64, u64), min_size=1, max_size=MAX_SG + 8 if wide else MAX_SG).map(tuple),
            }[ftype]))
        maps += kind == "dma_map"
        ops.append(Op(kind, tuple(args), draw(st.integers(0, len(CONTEXTS) - 1))))
    sched = {}
    if ops:
        for _ in range(draw(st.integers(0, MAX_SWITCHES))):
            sched[(draw(st.integers(0, len(ops) - 1)), draw(st.integers(0, MAX_AFTER - 1)))] = \
                draw(st.integers(0, len(CONTEXTS) - 1))
    return Program(cfg, tuple(ops), tuple(sorted((i, a, c) for (i, a), c in sched.items())))


@settings(max_examples=300, deadline=None)
@given(_programs())
def test_every_program_the_text_accepts_round_trips_through_text_and_bytes(prog):
    assert parse(prog.text()) == prog
    assert decode(encode(prog)) == prog


@settings(max_examples=300, deadline=None)
@given(_programs(wide=True))
def test_every_text_that_parses_encodes_and_decodes_back(prog):
    try:
        parsed = parse(prog.text())
    except ProgramSyntaxError:
        return
    assert decode(encode(parsed)) == parsed


@pytest.mark.parametrize("line, msg", [
    ("iommu_map_sg(d0, iova=0x0, sg=[" + ", ".join(["0x80000000+0x1000"] * 20) + "], prot=RW)", "sg must have 1..16"),
    ("iommu_map_sg(d0, iova=0x0, sg=[-0x1000+0x1000], prot=RW)", "sg entry out of 64-bit range"),
    ("dma_unmap(handle=3)", "handle=3 names no earlier dma_map (there are 0"),
    ("hw_writeback(n=255)", "n must be 0..254 or all"),
    ("hw_writeback(n=-2)", "n must be 0..254 or all"),
    ("hw_evict(tlb, n=256)", "n must be 0..255"),
])
def test_text_the_byte_encoding_cannot_hold_is_a_parse_error(line, msg):
    with pytest.raises(ProgramSyntaxError, match=re.escape(msg)):
        parse("config(granule=4K)\n" + line + "\n")
    with pytest.raises(ProgramSyntaxError, match="e2h=1 needs stage=1"):
        parse("config(granule=4K, e2h=1, stage=2)\n")


def test_the_edges_the_byte_encoding_holds_round_trip():
    text = ("config(granule=4K)\ndma_map(d0, paddr=0x80000000, size=0x1000, prot=RW)\ndma_unmap(handle=0)\n"
            "dma_unmap(handle=0)\nhw_evict(tlb, n=255)\nhw_writeback(n=254)\nhw_writeback(all)\n"
            "iommu_map_sg(d0, iova=0x0, sg=[" + ", ".join(["0x80000000+0x1000"] * 16) + "], prot=RW)\n")
    prog = parse(text)
    assert decode(encode(prog)) == prog and parse(prog.text()) == prog
