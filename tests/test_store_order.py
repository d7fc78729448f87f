"""Weakly ordered CPU stores as a coherent SMMU observes them (issue 18 item 5, reference/store_order.py):
dma_wmb() cuts epochs, wmb() and a command publication complete them, max-cache fills the partial views; the
planted io-pgtable-arm without arm_lpae_install_table()'s dma_wmb() is caught, and only because of them."""

from dataclasses import replace

import pytest

from smmufuzz.exec import runner
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.reference.memory import Memory
from smmufuzz.reference.store_order import StoreBuffer
from smmufuzz.variants.caps import caps
from smmufuzz.variants.registry import variant as lookup_variant

PTE, TABLE, OLD = 0x1000, 0x2000, 0x2008


def _buffer(barrier: bool) -> StoreBuffer:
    """A reused table page whose old word at OLD is zeroed, then the table's PTE published."""
    sb = StoreBuffer()
    sb.record(OLD, 0xdead_0003, 0)           # alloc_pages() zeroing what the page held
    if barrier:
        sb.dma_wmb()
    sb.record(PTE, 0, TABLE | 3)             # the table PTE
    return sb


def test_a_pointer_may_be_seen_before_the_zeroing_of_what_it_points_to():
    cpu = {PTE: TABLE | 3}
    assert _buffer(False).views(cpu) == [{OLD: 0xdead_0003}]


def test_dma_wmb_orders_the_zeroing_before_the_pointer():
    cpu = {PTE: TABLE | 3}
    assert _buffer(True).views(cpu) == []


def test_a_view_that_only_hides_entries_is_left_out():
    sb = StoreBuffer()
    sb.record(PTE, 0, TABLE | 3)
    sb.dma_wmb()
    sb.record(TABLE, 0, 0x8000_0003)
    # epoch 0 visible alone hides the leaf (a zero where the CPU has one): it reaches nothing new
    assert sb.views({PTE: TABLE | 3, TABLE: 0x8000_0003}) == []


def test_completion_gives_the_smmu_a_last_look_then_empties_the_buffer():
    looks = []
    sb = _buffer(False)
    sb.on_complete = lambda: looks.append(len(sb.stores))
    assert sb.complete() and looks == [2] and not sb.stores and sb.cuts == [0]
    assert not sb.complete() and looks == [2]


def test_walks_read_through_a_partial_view_under_a_version_of_its_own():
    mem = Memory(coherent=True, weak=True)
    mem.cpu_write(PTE, TABLE | 3)
    v = mem.version
    mem.look_through({PTE: 0, OLD: 5})
    assert (mem.smmu_read(PTE), mem.smmu_read(OLD), mem.smmu_nonzero(0x1000, 0x2000)) == (0, 5, [OLD])
    assert mem.version < 0
    mem.look_through(None)
    assert (mem.smmu_read(PTE), mem.version, mem.smmu_nonzero(0x1000, 0x2000)) == (TABLE | 3, v, [PTE])


def test_non_coherent_memory_keeps_its_own_model():
    assert Memory(coherent=False, weak=True).stores is None


# A 2 MiB range mapped as 4K pages has a level-3 table; unmapping the whole range frees it (after the walk
# flush), and the next map needing a level-3 table gets the same page back with its old PTEs in it.
REUSE = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x0, paddr=0x80001000, size=0x200000, prot=RW)
iommu_unmap(d0, iova=0x0, size=0x200000)
iommu_map(d0, iova=0x400000, paddr=0x90000000, size=0x1000, prot=RW)
"""


def test_install_without_dma_wmb_walks_the_old_table_and_mainline_does_not():
    res = run_program(parse(REUSE), ["smmuv3", "smmuv3:install-no-wmb"])
    assert [(f.kind, f.variant) for f in res.findings] == [("WRONG_PA", "smmuv3:install-no-wmb")]
    assert "va=0x401000" in res.findings[0].message and "never mapped" in res.findings[0].message


def test_the_planted_bug_is_invisible_with_stores_in_order(monkeypatch):
    """The capability is what exposes it: judged with every store visible at once, the same program is clean."""
    def in_order(factory):
        return replace(caps(factory), store_barriers=False)
    monkeypatch.setattr(runner, "caps", in_order)
    assert not run_program(parse(REUSE), ["smmuv3:install-no-wmb"]).findings


@pytest.mark.parametrize("name", ["smmuv3", "invs:merged", "pte-sync:coherent", "gather:legacy:arm-smmu"])
def test_io_pgtable_arm_variants_are_judged_on_store_order(name):
    assert caps(lookup_variant(name).factory).store_barriers


def test_a_lazily_unmapped_range_stays_unsettled_while_its_pte_clear_may_be_unobserved():
    """arm_smmu_tlb_inv_context(): in non-strict mode a cleared PTE may reach the SMMU only with the flush
    queue's flush-all; until then a walk may refill the old translation, which is legal for an IOVA still queued.
    The evict empties the caches, so only the pending store keeps the range from settling early."""
    prog = parse("""config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_dma_init_fq(d0)
dma_map(d0, paddr=0x0, size=0x800, prot=RW)
hw_evict(all, n=40)
dma_unmap(handle=0)
dma_map(d0, paddr=0x0, size=0x1000, prot=RW)
""")
    for name in ("smmuv3", "pte-sync:coherent"):
        assert not run_program(prog, [name]).findings, name


S2_ATTACH = """config(granule=4K, ias=48, stage=2, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
"""


def test_an_ste_step_without_its_sync_lets_the_smmu_see_the_critical_qword_first():
    """abort -> stage 2 is hitless: VMID/VTCR and S2TTB (ignored by an abort STE), CFGI_STE + CMD_SYNC, then
    qword 0. Without that sync every prefix is harmless, but qword 0 may be observed before the others."""
    res = run_program(parse(S2_ATTACH), ["smmuv3", "smmuv3:ste-no-unused-sync"])
    assert [(f.kind, f.variant) for f in res.findings] == [("TORN_STE", "smmuv3:ste-no-unused-sync")]
    assert "ttb=0x0" in res.findings[0].message


def test_the_unsynced_ste_step_is_invisible_with_stores_in_order(monkeypatch):
    monkeypatch.setattr(runner, "caps", lambda factory: replace(caps(factory), store_barriers=False))
    assert not run_program(parse(S2_ATTACH), ["smmuv3:ste-no-unused-sync"]).findings


S1_REATTACH = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
iommu_attach_device(d1, sid=0)
"""


def test_a_live_cd_moved_to_another_domain_breaks_and_syncs_after_clearing_v():
    """arm_smmu_attach_dev() from one stage-1 domain to another (6.12: the stream stays live, its STE unchanged):
    the SSID 0 CD's ASID and TTB0 both change, so arm_smmu_write_entry() clears V, syncs, writes the rest. The
    planted writer skips the sync after V=0: in program order every fetch sees V=0, but the SMMU may observe
    the new TTB0 before V=0 and fetch the old ASID with the new table."""
    res = run_program(parse(S1_REATTACH), ["smmuv3", "smmuv3:cd-break-no-sync"])
    assert [(f.kind, f.variant) for f in res.findings] == [("TORN_STE", "smmuv3:cd-break-no-sync")]
    assert "fetch [s1 asid=1 vmid=0 ttb=0x400000004000" in res.findings[0].message


def test_the_unsynced_cd_step_is_invisible_with_stores_in_order(monkeypatch):
    monkeypatch.setattr(runner, "caps", lambda factory: replace(caps(factory), store_barriers=False))
    assert not run_program(parse(S1_REATTACH), ["smmuv3:cd-break-no-sync"]).findings


def test_a_cd_that_translates_nothing_ends_the_cached_configuration_at_its_cfgi_cd():
    """CFGI_CD + CMD_SYNC after V=0: the stream's cached stage-1 configuration (its CD folded in) may not be
    used any more; before it completes it may."""
    from smmufuzz.reference import cmdq as C
    from smmufuzz.reference.smmu import HwConfig, Smmu
    from smmufuzz.variants import arm_smmu_v3_ste as S
    smmu = Smmu(HwConfig(policy="max-cache"))
    cd = smmu.mem.alloc_coherent(64)
    for q, v in enumerate(S.make_s1_cd(1, 0x4000_0000_0000, 12, 48, 48, True)):
        smmu.store_cd(cd, q, v)
    smmu.write_ste_words(0, S.make_cdtable_ste(cd, False, False))
    smmu.fill_all()
    assert [s.config for s in smmu.configs(0)] == ["s1"]
    smmu.store_cd(cd, 0, 0)
    assert sorted(s.config for s in smmu.configs(0)) == ["abort", "s1"]
    smmu.cmdq_publish([(C.CMD_CFGI_CD, 0), (C.CMD_SYNC, 0)])
    assert [s.config for s in smmu.configs(0)] == ["abort"]


REGISTER_TLBI = """config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_map(d0, iova=0x10000, paddr=0x0, size=0x1000, prot=RW)
iommu_attach_device(d0, sid=0)
iommu_unmap_fast(d0, iova=0x10000, size=0x1000, gather=g1)
dma_map(d0, paddr=0x0, size=0x1000, prot=RW)
iommu_iotlb_sync(d0, gather=g1)
"""


def test_a_register_tlbi_makes_the_pte_stores_before_it_visible():
    """arm-smmu.c writes its TLBIs relaxed after a wmb() with coherent walks ("ensure that PTEs cleared by the
    current CPU are visible beforehand"); qcom_iommu and ipmmu-vmsa use writel()/iowrite32(), which order the
    same way. Without that barrier in the emulator's register TLBI, the quick start found a stale entry on the
    correct gather:legacy:arm-smmu (the unmap's PTE clear still unobserved when its TLBI ran, the walk refilling
    the old PTE after it): this program."""
    from smmufuzz.reference.smmu import HwConfig, Smmu
    from smmufuzz.reference import cmdq as C
    smmu = Smmu(HwConfig(coherent=True, weak_stores=True))
    smmu.mem.cpu_write(0x1000, 5)
    assert smmu.mem.stores_pending
    smmu.tlbi(C.CMD_TLBI_NH_VA, asid=1, addr=0x10000, leaf=True)
    assert not smmu.mem.stores_pending
    smmu.mem.cpu_write(0x1008, 5)
    smmu.tlbi_run(C.CMD_TLBI_NH_VA, 0x10000, 0x1000, 4, asid=1, leaf=True)
    assert not smmu.mem.stores_pending
    prog = parse(REGISTER_TLBI)
    assert not run_program(prog, ["gather:legacy:arm-smmu", "gather:robin-v2:arm-smmu"]).findings
    assert caps(lookup_variant("gather:legacy:arm-smmu").factory).store_barriers      # judged on store order
