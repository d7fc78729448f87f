"""The SMMU's latitude in the program config (prog/latitude.py): text and bytes round-trip, older inputs
keep the defaults, bad values give one clear error, and each choice changes what the emulator keeps."""

import random

import pytest

from smmufuzz.prog.codec import FORMAT_MAGIC, decode, encode, reheader
from smmufuzz.prog.latitude import DEFAULTS, WALK_ALL
from smmufuzz.prog.program import Config, Program, ProgramSyntaxError, parse
from smmufuzz.reference import cmdq as C
from tests.test_emulator_commands import TG4K, Tables, attach, publish, rig, tlb_levels, tlbi, walks

ATTACH = "iommu_attach_device(d0, sid=0)\n"


def test_defaults_are_not_printed_and_others_round_trip_through_text_and_bytes():
    assert parse("config(granule=4K)\n" + ATTACH).text() == Program(Config(), parse(ATTACH).ops).text()
    assert "ttl" not in Config().text() and "walk_levels" not in Config().text()
    rng = random.Random(7)
    for _ in range(200):
        cfg = Config(range_inv=rng.random() < .5, ttl_strict=rng.random() < .5,
                     walk_levels=rng.randrange(WALK_ALL + 1))
        prog = parse(cfg.text() + "\n" + ATTACH)
        assert prog.config == cfg
        assert decode(encode(prog)) == prog


def test_inputs_of_format_2_and_1_read_the_default_latitude():
    prog = parse("config(granule=4K, range_inv=1)\n" + ATTACH + "iommu_flush_iotlb_all(d0)\n")
    v3 = encode(prog)
    v2 = bytes([FORMAT_MAGIC, 2]) + v3[2:4] + v3[5:]     # the same program without the latitude byte
    old = decode(v2)
    assert old.ops == prog.ops and old.config == prog.config
    assert {k: getattr(old.config, k) for k in DEFAULTS} == DEFAULTS
    assert decode(reheader(v2, bytes([0x80, 0, 0xFF]))).ops == prog.ops     # a config edit keeps the ops


def test_the_fuzzer_reaches_every_latitude_through_the_header_byte():
    prog = parse("config(granule=4K)\n" + ATTACH)
    seen = {(c.ttl_strict, c.walk_levels)
            for c in (decode(reheader(encode(prog), bytes([0, 0, b]))).config for b in range(256))}
    assert len(seen) == 2 * (WALK_ALL + 1)


@pytest.mark.parametrize("line,msg", [
    ("config(ttl=loose)", "ttl must be strict or ignored"),
    ("config(walk_levels=3)", "walk_levels must be digits of 0..2"),
    ("config(walk_levels=)", "walk_levels must be digits of 0..2"),
])
def test_bad_latitude_is_one_clear_error(line, msg):
    with pytest.raises(ProgramSyntaxError, match=msg):
        parse(line + "\n")


@pytest.mark.parametrize("levels", [0b111, 0b100, 0b011, 0])
def test_the_walk_cache_holds_only_the_configured_levels(levels):
    smmu = rig(walk_levels=levels)
    attach(smmu, 0, Tables(smmu).map(0x1000).map(0x4000_0000))
    smmu.fill_all()
    assert {lvl for lvl, _va in walks(smmu)} == {lv for lv in range(3) if levels >> lv & 1}


@pytest.mark.parametrize("strict", [True, False])
def test_an_smmu_that_ignores_ttl_removes_leaves_at_every_level(strict):
    smmu = rig(range_inv=True, ttl_strict=strict)
    t = Tables(smmu).map(0x200000, level=2).map(0x1000)
    attach(smmu, 0, t)
    smmu.fill_all()
    assert publish(smmu, tlbi(C.CMD_TLBI_NH_VA, 0, asid=1, leaf=1, tg=TG4K, ttl=3, num=1, scale=18)) == []
    assert tlb_levels(smmu) == ({(0x200000, 2)} if strict else set())
