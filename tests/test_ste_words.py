"""STEs as words (reference/ste_words.py): layout, encoder and decoder, the emulator's stream table in memory,
and the words the arm-smmu-v3 model writes (variants/arm_smmu_v3_ste.py)."""

import os
import re

import pytest

from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_variant
from smmufuzz.reference import cmdq as C
from smmufuzz.reference import ste_words as W
from smmufuzz.reference.lpae import Geometry, geometry_for
from smmufuzz.reference.smmu import HwConfig, Smmu, SmmuInstance
from smmufuzz.reference.ste import Cd, Ste
from smmufuzz.variants import arm_smmu_v3_ste as S

pytestmark = pytest.mark.emulator

GEOS = [Geometry(12, 48, 0), Geometry(12, 48, 1), Geometry(12, 39, 1), Geometry(12, 32, 2), Geometry(14, 47, 1),
        Geometry(14, 36, 2), Geometry(16, 48, 1), Geometry(16, 42, 2), Geometry(16, 29, 3)]


def _stes():
    yield Ste("abort")
    yield Ste("bypass")
    for geo in GEOS:
        for eats in (False, True):
            yield Ste("s2", vmid=7, ttb=0x4000_0001_0000, geo=geo, eats=eats)
            for el2 in (False, True):
                yield Ste("s1", asid=3, ttb=0x4000_0002_0000, geo=geo, eats=eats, el2=el2)


def test_fields_are_disjoint_and_inside_their_qword():
    seen = {}
    for name, (q, lo, width) in W.FIELDS.items():
        assert 0 <= q < W.STE_DWORDS and lo + width <= 64, name
        for b in range(lo, lo + width):
            assert (q, b) not in seen, f"{name} overlaps {seen.get((q, b))}"
            seen[(q, b)] = name


def test_every_field_round_trips_through_the_words():
    for name, (_q, _lo, width) in W.FIELDS.items():
        shift = W.ADDR_FIELDS.get(name, 0)
        for v in (1, (1 << width) - 1, 0b101 & ((1 << width) - 1)):
            words = W.encode(**{name: v << shift})
            assert W.field(words, name) == v << shift
            assert all(W.field(words, other) == 0 for other in W.FIELDS if other != name)


def test_a_value_too_wide_for_its_field_is_refused():
    with pytest.raises(ValueError):
        W.encode(S2VMID=1 << 16)


def test_decoded_stes_round_trip():
    cds = {}
    for ste in _stes():
        words, cd = W.from_ste(ste, 0x2000_0000_0040)
        if cd is not None:
            cds[0x2000_0000_0040] = cd
        got, why = W.decode(words, cds.get)
        assert why is None and got == ste, (ste, got)


def test_sl0_is_io_pgtable_arms_encoding_and_its_inverse():
    for pg_shift in (12, 14, 16):
        for lvl in range(0, 3) if pg_shift == 12 else range(1, 4):     # what io-pgtable-arm gives at stage 2
            sl = lvl + (pg_shift == 12)                 # arm_64_lpae_alloc_pgtable_s2(): sl++ for 4K
            assert W.s2_sl0(pg_shift, lvl) == ~sl & 3
            assert W.s2_start_level(pg_shift, W.s2_sl0(pg_shift, lvl)) == lvl
    assert W.s2_start_level(16, 3) is None and W.s2_start_level(14, 3) is None     # level 0: FEAT_LPA2 only


def test_what_does_not_translate():
    s2 = W.from_ste(Ste("s2", vmid=1, ttb=0x10000, geo=GEOS[0]), 0)[0]
    assert W.decode((0,) * 8, {}.get) == (Ste("abort"), None)                 # V=0: terminated, no error
    assert W.decode((s2[0] & ~1,) + s2[1:], {}.get) == (Ste("abort"), None)    # V cleared on a valid STE
    for bad in (dict(Config=0b001), dict(Config=0b111)):
        ste, why = W.decode(W.encode(V=1, **bad), {}.get)
        assert ste == Ste("abort") and why
    no_aa64 = (s2[0], s2[1], s2[2] & ~(1 << 51)) + s2[3:]
    bad_tg = (s2[0], s2[1], s2[2] | 3 << 46) + s2[3:]
    for words in (no_aa64, bad_tg):
        ste, why = W.decode(words, {}.get)
        assert ste == Ste("abort") and "ILLEGAL" in why
    ste, why = W.decode(W.encode(V=1, Config=W.CONFIG_S1, S1ContextPtr=0x1000), {}.get)
    assert ste == Ste("abort") and "no CD" in why


def test_the_stream_table_is_words_in_memory_fetched_by_the_smmu():
    smmu = Smmu(HwConfig(policy="none", coherent=False))
    ste = Ste("s2", vmid=2, ttb=0x4000_0000_0000, geo=GEOS[0])
    smmu.write_ste(5, ste)
    a = smmu.ste_addr(5)
    assert [smmu.mem.smmu_read(a + 8 * q) for q in range(8)] == list(W.from_ste(ste, 0)[0])
    assert smmu.mem.poc.get(a) == smmu.mem.cpu.get(a)          # a coherent mapping: the PoC has it at once
    assert smmu.ste_addr(6) == a + 64
    assert smmu.strtab[5] == ste
    smmu.store_ste(5, 0, 0)                                     # one qword at a time: V=0 now
    assert smmu.strtab[5] == Ste("abort") and not smmu.errors


def test_the_config_cache_keeps_the_old_ste_until_a_cfgi_ste_completes():
    smmu = Smmu(HwConfig(policy="max-cache"))
    old = Ste("s2", vmid=2, ttb=0x4000_0000_0000, geo=GEOS[0])
    smmu.write_ste(1, old)
    smmu.fill_all()
    new = Ste("s2", vmid=3, ttb=0x4000_0000_0000, geo=GEOS[0])
    smmu.write_ste_words(1, W.from_ste(new, 0)[0])
    assert smmu.configs(1) == [new, old]
    smmu.cmdq_publish([(C.CMD_CFGI_STE | 1 << 32, 1)])         # published, not complete
    assert old in smmu.configs(1)
    smmu.cmdq_publish([(C.CMD_SYNC, 0)])
    assert smmu.configs(1) == [new]


def _store_cd(smmu, addr, words):
    for q, v in enumerate(words):
        smmu.store_cd(addr, q, v)


def test_a_cd_rewritten_in_place_is_what_the_ste_fetches_next():
    smmu = Smmu(HwConfig(policy="none"))
    cd = smmu.mem.alloc_coherent(64)
    _store_cd(smmu, cd, S.make_s1_cd(1, 0x4000_0000_0000, 12, 48, 48, True))
    smmu.write_ste_words(0, S.make_cdtable_ste(cd, False, False))
    assert smmu.strtab[0].asid == 1 and smmu.strtab[0].geo == geometry_for(12, 48, 1)
    smmu.store_cd(cd, 0, S.make_s1_cd(2, 0x4000_0000_0000, 12, 48, 48, True)[0])
    assert smmu.strtab[0].asid == 2 and smmu.strtab[0].ttb == 0x4000_0000_0000
    smmu.store_cd(cd, 0, 0)                                         # V=0: translates nothing, and no C_BAD_STE
    assert smmu.strtab[0].config == "abort" and not smmu.errors


def test_the_cd_words_are_the_kernels_layout_and_decode_back():
    w = S.make_s1_cd(0x1234, 0x8_1234_5000, 16, 39, 44, False)
    assert W.cd_field(w, "ASID") == 0x1234 and w[0] >> 31 & 1 and w[1] == 0x8_1234_5000   # CTXDESC_CD_0_V, TTB0
    assert W.cd_field(w, "T0SZ") == 25 and W.cd_field(w, "TG0") == 1 and W.cd_field(w, "IPS") == 4
    assert W.cd_decode(w) == Cd(0x1234, 0x8_1234_5000, geometry_for(16, 39, 1))
    assert not W.cd_decode((w[0] | 1 << 14,) + w[1:]).valid              # EPD0: no TTB0 walks


def test_the_cd_writer_breaks_a_live_cd_whose_asid_and_table_both_change():
    """arm_smmu_write_cd_entry() from one stage-1 domain's CD to another's: ASID (qword 0) and TTB0 (qword 1)
    both used, so V=0 first; each fetch meanwhile is the old CD, the new one, or none (arm_smmu_get_cd_used)."""
    old = S.make_s1_cd(1, 0x4000_0000_0000, 12, 48, 48, True)
    new = S.make_s1_cd(2, 0x4000_0001_0000, 12, 48, 48, True)
    diff, _u = S.entry_qword_diff(list(old), new, S.get_cd_used)
    assert diff == 0b11
    seen = []
    cur = list(old)
    S.write_entry(cur, new, lambda q, v: seen.append((q, v)), lambda: seen.append("sync"), S.get_cd_used)
    assert cur == list(new) and seen[0] == (0, 0) and seen[1] == "sync" and seen[-2] == (0, new[0])


def test_each_instance_has_its_own_table_and_tags():
    smmu = Smmu(HwConfig(policy="none"))
    inst = SmmuInstance(smmu, 1)
    inst.write_ste(2, Ste("s2", vmid=4, ttb=0x4000_0000_0000, geo=GEOS[0]))
    smmu.write_ste(1, Ste("s2", vmid=4, ttb=0x4000_0000_0000, geo=GEOS[0]))
    assert smmu.strtab[2].vmid == (1 << 16) + 4 and smmu.strtab[1].vmid == 4
    assert smmu.ste_addr(2, 1 << 16) != smmu.ste_addr(2)


def test_the_models_stes_decode_to_what_the_domain_asks_for():
    """Attach a stage-1 and a stage-2 domain on smmuv3: the words in the table decode to the domain's tables."""
    for stage, e2h in ((1, 0), (1, 1), (2, 0)):
        text = (f"config(granule=4K, ias=48, stage={stage}, coherent=1, range_inv=0, ats=1, e2h={e2h})\n"
                "pci_ats(sid=1, on=1)\niommu_attach_device(d0, sid=1)\n"
                "iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)\n")
        prog = parse(text)
        seen = {}

        def probe(ex, i, op, ret, prog=prog, seen=seen):
            if i == len(prog.ops) - 1:
                seen["smmu"] = ex.smmu

        assert run_variant(prog, "smmuv3", probe=probe).finding is None
        smmu = seen["smmu"]
        words = smmu.ste_words(1)
        ste = smmu.strtab[1]
        assert W.field(words, "V") == 1 and ste.config == f"s{stage}" and ste.eats
        assert ste.el2 == bool(e2h and stage == 1)
        assert smmu.tree(ste)[0], "the STE's tables hold the mapping"


HEADER = "drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h"
_ALIAS = {"CFG": "Config", "S1CTXPTR_MASK": "S1ContextPtr", "S2TTB_MASK": "S2TTB", "VTCR_S2T0SZ": "S2T0SZ",
          "VTCR_S2SL0": "S2SL0", "VTCR_S2IR0": "S2IR0", "VTCR_S2OR0": "S2OR0", "VTCR_S2SH0": "S2SH0",
          "VTCR_S2TG": "S2TG", "VTCR_S2PS": "S2PS"}


def test_the_layout_is_the_trees():
    """Every STRTAB_STE_<q>_<field> the tree's arm-smmu-v3.h defines as a mask or bit sits where FIELDS says."""
    from smmufuzz.kernel.tree import TreeError, find
    try:
        tree = find()
    except TreeError as e:
        pytest.skip(str(e))
    path = os.path.join(tree.path, HEADER)
    if not os.path.exists(path):
        pytest.skip(f"no {HEADER} in the tree")
    text = open(path).read()
    checked = 0
    for q, name, body in re.findall(r"#define\s+STRTAB_STE_(\d)_(\w+)\s+(.+)", text):
        field = _ALIAS.get(name, name)
        if field not in W.FIELDS:
            continue
        m = re.match(r"GENMASK_ULL\((\d+),\s*(\d+)\)", body.strip())
        b = re.match(r"\(1UL << (\d+)\)", body.strip())
        if m:
            hi, lo = int(m[1]), int(m[2])
        elif b:
            hi = lo = int(b[1])
        else:
            continue
        fq, flo, width = W.FIELDS[field]
        if name.startswith("VTCR_"):
            lo, hi = lo + 32, hi + 32                            # inside STRTAB_STE_2_VTCR, GENMASK_ULL(50, 32)
        assert (fq, flo, flo + width - 1) == (int(q), lo, hi), field
        checked += 1
    assert checked >= 20, checked


def _linux_stes():
    """The STEs the model's arm-smmu-v3 builds: abort, bypass, stage 1 (two CD tables, ATS, E2H), stage 2."""
    out = [S.make_abort_ste(), S.make_bypass_ste()]
    for cd in (0x2000_0000_0040, 0x2000_0000_0080):
        for ats in (False, True):
            for e2h in (False, True):
                out.append(S.make_cdtable_ste(cd, ats, e2h))
    for vmid, pgd, geo in ((1, 0x4000_0001_0000, GEOS[0]), (2, 0x4000_0002_0000, GEOS[6])):
        for ats in (False, True):
            out.append(S.make_s2_domain_ste(vmid, pgd, geo.pg_shift, geo.ias, 48, geo.start_level, True, ats))
    return out


def test_the_writer_never_shows_a_third_configuration():
    """arm_smmu_write_entry()'s promise, on the model's writer: after every 64-bit store the words decode to the
    old STE, the new one, or a non-translating one; it ends at the target, and a sync follows each step."""
    cds = {a: Cd(5, 0x4000_0003_0000, GEOS[0]) for a in (0x2000_0000_0040, 0x2000_0000_0080)}
    dec = lambda w: W.decode(w, cds.get)[0]  # noqa: E731
    stes = _linux_stes()
    hitless = breaking = 0
    for old in stes:
        for new in stes:
            entry = list(old)
            log = []

            def store(q, v, entry=entry, log=log):
                log.append(("store", dec(entry)))

            W_old, W_new = dec(old), dec(new)
            S.write_entry(entry, new, store, lambda log=log: log.append(("sync", None)))
            assert tuple(entry) == new
            for kind, ste in log:
                if kind == "store":
                    assert ste in (W_old, W_new) or not ste.translates, (old, new, ste)
            assert (log[-1][0] == "sync") if log else old == new
            syncs = sum(k == "sync" for k, _ in log)
            if old != new and W_old != W_new:
                hitless += syncs == 2
                breaking += syncs == 3
    assert hitless and breaking


def test_the_models_attach_writes_ste_steps_with_a_cfgi_ste_each():
    text = ("config(granule=4K, ias=48, stage=2, coherent=1, range_inv=0, ats=0, e2h=0)\n"
            "iommu_attach_device(d0, sid=1)\niommu_attach_device(d1, sid=1)\n")
    prog = parse(text)
    logs = []

    def probe(ex, i, op, ret):
        logs.append([c for _s, c in ex.smmu.cmd_log])

    assert run_variant(prog, "smmuv3", probe=probe).finding is None
    first = [C.OPCODE_NAMES[c.op] for c in logs[0]]
    second = [C.OPCODE_NAMES[c.op] for c in logs[1][len(logs[0]):]]
    # V=0 -> s2: the unused qwords, then qword 0 (hitless); 6.12's re-attach goes s2 -> s2 with the stream live
    # (arm_smmu_attach_dev(): no abort between): S2VMID (qword 2) and S2TTB (qword 3) both change, so it breaks:
    # V=0, qwords 1-7, qword 0, a CFGI_STE + CMD_SYNC after each; PREFETCH_CFG after each STE
    one = ["CFGI_STE", "CMD_SYNC"] * 2 + ["PREFETCH_CONFIG"]
    assert first == one and second == ["CFGI_STE", "CMD_SYNC"] * 3 + ["PREFETCH_CONFIG"]


def _torn_after(stores, before, geo=GEOS[0]):
    """Store these (qword, value) into sid 0's STE, from `before`, as one update; what the emulator judged."""
    smmu = Smmu(HwConfig(policy="max-cache"))
    smmu.write_ste_words(0, before)
    smmu.begin_ste_update(0)
    for q, v in stores:
        smmu.store_ste(0, q, v)
    smmu.end_ste_update(0)
    return smmu


def test_an_update_that_shows_a_mix_of_old_and_new_is_torn():
    """s2 (VMID 1, table A) -> s2 (VMID 2, table B) by qword 2 then qword 3: the SMMU may fetch VMID 2 over
    table A in between."""
    a = S.make_s2_domain_ste(1, 0x4000_0001_0000, 12, 48, 48, 0, True, False)
    b = S.make_s2_domain_ste(2, 0x4000_0002_0000, 12, 48, 48, 0, True, False)
    smmu = _torn_after([(q, b[q]) for q in (2, 3)], a)
    assert "vmid=2" in smmu.torn[0] and "0x400000010000" in smmu.torn[0]
    # the breaking update arm_smmu_write_entry() makes of it: V=0, qwords 1-7, qword 0
    assert _torn_after([(0, 0), (2, b[2]), (3, b[3]), (0, b[0])], a).torn == []
    # a hitless one from abort: the ignored qwords, then qword 0
    ab = S.make_abort_ste()
    assert _torn_after([(2, a[2]), (3, a[3]), (0, a[0])], ab).torn == []
    # outside an update nothing is judged, and with no fetch policy nothing is fetched
    smmu = Smmu(HwConfig(policy="none"))
    smmu.write_ste_words(0, a)
    smmu.begin_ste_update(0)
    smmu.store_ste(0, 2, b[2])
    smmu.store_ste(0, 3, b[3])
    smmu.end_ste_update(0)
    assert smmu.torn == []
