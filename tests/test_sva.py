"""SVA (docs/sva.md): substreams in the emulator, the SVA ops, and arm_smmu_mm_arch_invalidate_secondary_tlbs()'s
commands."""

import random

from smmufuzz.reference import cmdq as C
from smmufuzz.reference.lpae import Geometry
from smmufuzz.reference.process_mm import ProcessMm
from smmufuzz.reference.smmu import HwConfig, Smmu
from smmufuzz.reference.ste import Ste
from smmufuzz.reference.substream import Cd
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program, run_variant

CFG = "config(granule=4K, ias=48, stage=1, coherent=1, range_inv={ril}, ats={ats}, e2h=0)\n"
BOUND = ("iommu_attach_device(d0, sid=0)\npci_ats(sid=0, on=1)\niommu_sva_bind_device(sid=0, mm=0)\n"
         "set_ptes(mm=0, va=0x400000, paddr=0x80000000, size=0x8000, prot=RW)\n")


def _smmu(ats=False):
    smmu = Smmu(HwConfig(ats=ats, range_inv=True))
    mm = ProcessMm(smmu.mem)
    for k in range(4):
        mm.set_pte(0x400000 + k * 0x1000, 0x80000000 + k * 0x1000, 3)
    other = ProcessMm(smmu.mem)
    other.set_pte(0x400000, 0x90000000, 3)
    smmu.write_ste(0, Ste("s1", asid=1, ttb=smmu.mem.alloc_pages(0x1000), geo=Geometry(12, 48, 0), eats=ats,
                          s1cdmax=2))
    if ats:
        smmu.set_ats(0, True)
    smmu.write_substream_cd(0, 1, Cd(16, mm.pgd, mm.geo))
    return smmu, mm, other


def _publish(smmu, *cmds):
    from smmufuzz.variants.arm_smmu_v3 import CmdqEnt, build_cmd
    smmu.cmdq_publish([build_cmd(c) for c in cmds] + [build_cmd(CmdqEnt(C.CMD_SYNC))])


def test_a_cached_cd_is_used_until_its_cfgi_cd_completes():
    """IHI 0070 §4.3.3: after a CD is rewritten the old one may translate until CFGI_CD for (sid, ssid) completes."""
    from smmufuzz.variants.arm_smmu_v3 import CmdqEnt
    smmu, mm, other = _smmu()
    smmu.fill_all()
    smmu.write_substream_cd(0, 1, Cd(17, other.pgd, other.geo))
    _publish(smmu, CmdqEnt(C.CMD_TLBI_NH_ASID, asid=16))       # not a CFGI: the old CD stays cached
    pas = {o.pa for o in smmu.translate(0, 0x400000, ssid=1)}
    assert {0x80000000, 0x90000000} <= pas
    _publish(smmu, CmdqEnt(C.CMD_CFGI_CD, sid=0, ssid=2, leaf=True))      # another SSID: still cached
    assert 0x80000000 in {o.pa for o in smmu.translate(0, 0x400000, ssid=1)}
    _publish(smmu, CmdqEnt(C.CMD_CFGI_CD, sid=0, ssid=1, leaf=True), CmdqEnt(C.CMD_TLBI_NH_ASID, asid=16))
    assert {o.pa for o in smmu.translate(0, 0x400000, ssid=1)} == {0x90000000}
    assert smmu.translate(0, 0x400000, ssid=3) == []             # no CD for SSID 3
    assert all(o.pa != 0x80000000 for o in smmu.translate(0, 0x400000))   # the RID's own CD: no mapping there


def test_atc_inv_with_ssv_is_per_pasid_and_without_it_covers_every_pasid():
    """§4.5.1 and PCIe ATS: SSV=1 invalidates that PASID's entries only, SSV=0 every entry in range."""
    from smmufuzz.variants.arm_smmu_v3 import CmdqEnt
    smmu, mm, _other = _smmu(ats=True)
    smmu.cfg.policy = "none"
    smmu.ats_translate(0, 0x401000, ssid=1)
    assert smmu.atc_pasid[(0, 1)]
    _publish(smmu, CmdqEnt(C.CMD_ATC_INV, sid=0, ssid=2, substream_valid=True, size=C.ATC_INV_SIZE_ALL))
    assert smmu.atc_pasid[(0, 1)]
    _publish(smmu, CmdqEnt(C.CMD_ATC_INV, sid=0, addr=0x400000, size=2))
    assert not smmu.atc_pasid[(0, 1)]


def _run(text, variant="smmuv3", ril=0, ats=0):
    return run_variant(parse(CFG.format(ril=ril, ats=ats) + text), variant)


def test_the_notifier_covers_any_small_range_with_and_without_ril():
    """Arbitrary page counts (odd NUM/SCALE, the NUM=SCALE=0 corner, the 512-op threshold): after the notifier
    returns no cleared page of the range is visible through the PASID, with and without RIL and ATS."""
    rng = random.Random(5)
    for ril in (0, 1):
        for ats in (0, 1):
            for pages in (1, 2, 3, 5, 31, 32, 33, 34, 63, 65, 511, 512, 513, rng.randrange(1, 600)):
                start = 0x400000 + rng.randrange(8) * 0x1000
                text = (BOUND + f"set_ptes(mm=0, va=0x800000, paddr=0x88000000, size={pages * 0x1000:#x}, prot=RW)\n"
                        f"dev_dma_pasid(sid=0, pasid=1, iova=0x800000, write=1)\n"
                        f"ats_translate_pasid(sid=0, pasid=1, iova={0x800000 + (pages - 1) * 0x1000:#x})\n"
                        f"ptep_get_and_clear(mm=0, va=0x800000, size={pages * 0x1000:#x})\n"
                        f"arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x800000, "
                        f"end={0x800000 + pages * 0x1000:#x})\n"
                        f"dev_dma_pasid(sid=0, pasid=1, iova={0x800000 + (pages - 1) * 0x1000:#x}, write=0)\n"
                        f"ptep_get_and_clear(mm=0, va={start:#x}, size=0x1000)\n"
                        f"arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start={start:#x}, end={start + 0x1000:#x})\n")
                run = _run(text, ril=ril, ats=ats)
                assert run.finding is None, (ril, ats, pages, run.finding)
                assert run.returns[2] == 1 and None in run.returns[4:]


def test_the_planted_short_notifier_leaves_the_last_page():
    """smmuv3:sva-notifier-short invalidates a page short: the last cleared page stays in the TLB (with RIL from three
    pages on: two are rounded up to an even count)."""
    text = (BOUND + "ptep_get_and_clear(mm=0, va=0x401000, size=0x3000)\n"
            "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x401000, end=0x404000)\n")
    for ril in (0, 1):
        bad = _run(text, "smmuv3:sva-notifier-short", ril=ril)
        assert bad.finding is not None and bad.finding.kind == "MISSED_INVALIDATION"
        assert "va=0x403000" in bad.finding.message
        assert _run(text, ril=ril).finding is None


def test_threshold_and_asid_reuse():
    """Without RIL, 512 pages or more invalidate the whole ASID (CMDQ_MAX_TLBI_OPS); an unbind frees the SVA
    domain with TLBI_NH_ASID, and the next process bound gets the ASID again, clean."""
    def cmds(text):
        prog = parse(CFG.format(ril=0, ats=0) + text)
        seen = []
        run_variant(prog, "smmuv3", probe=lambda ex, i, op, ret: seen.append(list(ex.smmu.cmd_log)))
        return seen
    base = BOUND + "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x400000, end={end:#x})\n"
    for pages, want in ((511, C.CMD_TLBI_NH_VA), (512, C.CMD_TLBI_NH_ASID)):
        log = cmds(base.format(end=0x400000 + pages * 0x1000))
        new = [c.op for _s, c in log[-1][len(log[-2]):]]
        assert new[0] == want and new.count(want) == (pages if want == C.CMD_TLBI_NH_VA else 1)
    text = (BOUND + "dev_dma_pasid(sid=0, pasid=1, iova=0x400000, write=1)\niommu_sva_unbind_device(sid=0, mm=0)\n"
            "iommu_sva_bind_device(sid=0, mm=1)\nset_ptes(mm=1, va=0x400000, paddr=0x90000000, size=0x1000, prot=RW)\n"
            "dev_dma_pasid(sid=0, pasid=2, iova=0x400000, write=1)\n")
    log = cmds(text)
    tlbi = [c for _s, c in log[5][len(log[4]):] if c.op == C.CMD_TLBI_NH_ASID]
    binds = [c for _s, c in log[-1] if c.op == C.CMD_CFGI_CD and c.ssid]     # (SSID 0's: the attach's own CD)
    assert [c.asid for c in tlbi] == [16] and [c.ssid for c in binds] == [1, 1, 2]
    assert run_program(parse(CFG.format(ril=0, ats=0) + text), ["smmuv3"]).findings == []


def test_variants_without_sva_skip_the_ops_and_do_not_diverge():
    """On the invs target (the classic smmuv3 beside the invalidation-array designs, which do not model SVA) the SVA
    ops run on smmuv3 only and their skipped returns are not a DIVERGENCE."""
    text = (CFG.format(ril=1, ats=1) + BOUND + "dev_dma_pasid(sid=0, pasid=1, iova=0x401000, write=1)\n"
            "ptep_get_and_clear(mm=0, va=0x401000, size=0x1000)\n"
            "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x401000, end=0x402000)\n")
    res = run_program(parse(text), ["smmuv3", "invs:merged"])
    assert res.findings == []
    assert res.runs[0].returns[2] == 1 and isinstance(res.runs[1].returns[2], str)


def test_cfgi_cd_all_and_cfgi_ste_drop_the_streams_cached_cds():
    """IHI 0070 §4.3.4 (every CD of the stream) and §4.3.1 (the STE and every CD cached through it): after either
    completes, only the CD the table holds now translates; another stream's cached CD stays."""
    from smmufuzz.variants.arm_smmu_v3 import CmdqEnt
    for op in (C.CMD_CFGI_CD_ALL, C.CMD_CFGI_STE):
        smmu, mm, other = _smmu()
        smmu.write_ste(1, smmu.strtab[0])
        smmu.write_substream_cd(1, 1, Cd(16, mm.pgd, mm.geo))
        smmu.fill_all()
        for sid in (0, 1):
            smmu.write_substream_cd(sid, 1, Cd(17, other.pgd, other.geo))
        _publish(smmu, CmdqEnt(op, sid=0, leaf=True), CmdqEnt(C.CMD_TLBI_NH_ASID, asid=16))
        assert {o.pa for o in smmu.translate(0, 0x400000, ssid=1)} == {0x90000000}, op
        assert {cd.asid for cd in smmu.cdc[(1, 1)]} == {16, 17}, op                # stream 1: both may be used
        assert 0x80000000 in {o.pa for o in smmu.translate(1, 0x400000, ssid=1)}, op


def test_a_pte_cleared_before_the_flush_is_seen_by_a_later_bind():
    """Found by `smmufuzz fuzz --time 60 --seed 1` as UNEXPECTED on smmuv3, a model bug: the CPU's TLB flush of a
    range begins with dsb(ishst) before its TLBIs and the mm's notifier (arm64 __flush_tlb_range_nosync()), so a
    PTE ptep_get_and_clear() cleared is visible to the SMMU once the notifier has run. The model lacked that
    barrier: with nothing bound the notifier sends nothing, the cleared PTE stayed among the stores on their way,
    and max-cache filled the old translation through the PASID the later bind set up. Without the flush, a bind
    may still see the old PTE, and the spec holds it pending: no finding either."""
    head = ("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
            "iommu_attach_device(d0, sid=0)\n"
            "set_ptes(mm=0, va=0x200b0000, paddr=0x0, size=0x80000, prot=RW)\n"
            "ptep_get_and_clear(mm=0, va=0x200ff000, size=0x1000)\n")
    flushed = head + ("arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x0, end=0x20132000)\n"
                      "iommu_sva_bind_device(sid=0, mm=0)\n"
                      "dev_dma_pasid(sid=0, pasid=1, iova=0x200ff000, write=0)\n")
    assert not run_program(parse(flushed), ["smmuv3"]).findings
    unflushed = head + "iommu_sva_bind_device(sid=0, mm=0)\n"
    assert not run_program(parse(unflushed), ["smmuv3"]).findings
    # and the flush still matters once bound: the planted short notifier leaves a cleared page cached
    bound = ("config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"
             "iommu_attach_device(d0, sid=0)\n"
             "iommu_sva_bind_device(sid=0, mm=0)\n"
             "set_ptes(mm=0, va=0x200b0000, paddr=0x0, size=0x2000, prot=RW)\n"
             "ptep_get_and_clear(mm=0, va=0x200b1000, size=0x1000)\n"
             "arm_smmu_mm_arch_invalidate_secondary_tlbs(mm=0, start=0x200b0000, end=0x200b2000)\n")
    assert not run_program(parse(bound), ["smmuv3"]).findings
    assert run_program(parse(bound), ["smmuv3:sva-notifier-short"]).findings
