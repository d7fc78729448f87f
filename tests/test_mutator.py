"""The hybrid custom mutator: op-level edits give decodable programs within the length budget,
deterministically per seed, and retargeting picks IOVAs that are mapped at that point."""

import random

from smmufuzz.prog import mutator
from smmufuzz.prog.codec import decode, encode
from smmufuzz.prog.mutator import HybridMutator, hybrid, live_iovas, live_op, retarget, structured
from smmufuzz.prog.program import MAX_OPS, Op, parse, touched_domains

PROG = parse("""config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x4000, prot=RW)
iommu_map(d1, iova=0x400000, paddr=0x80010000, size=0x1000, prot=RW)
iommu_unmap(d0, iova=0x201000, size=0x1000)
dev_dma(sid=0, iova=0x0, write=0)
""")


def _no_fallback(data, max_size):
    raise AssertionError("the structured path was expected to succeed")


def test_structured_edits_stay_decodable_and_bounded():
    rng = random.Random(7)
    data = encode(PROG)
    edits = 0
    for _ in range(400):
        out = structured(data, 200, rng)
        if out is None:
            continue
        edits += 1
        assert len(out) <= 200
        prog = decode(out)
        assert len(prog.ops) <= MAX_OPS
        assert encode(prog) == out              # canonical: what the mutator writes re-encodes to itself
        data = out
    assert edits > 200


def test_hybrid_is_deterministic_given_the_seed():
    data = encode(PROG)
    fallback = lambda d, n: d[:n] + b"\x01"       # noqa: E731 (libFuzzer's mutation stands in)
    for seed in range(50):
        assert hybrid(data, 600, seed, fallback) == hybrid(data, 600, seed, fallback)
    outs = {hybrid(data, 600, seed, fallback) for seed in range(50)}
    assert len(outs) > 10 and data + b"\x01" in outs      # both halves are used


def test_live_iovas_follow_maps_and_unmaps():
    live = live_iovas(PROG, 4)
    assert live[0] == [(0x200000, 0x201000), (0x202000, 0x204000)]
    assert live[1] == [(0x400000, 0x401000)]
    assert live_iovas(PROG, 1) == {}


def test_retarget_moves_a_dma_to_a_mapped_iova_of_its_stream_domain():
    rng = random.Random(1)
    for _ in range(30):
        op = retarget(PROG, 4, rng)
        iova = op.get("iova")
        assert 0x200000 <= iova < 0x201000 or 0x202000 <= iova < 0x204000, hex(iova)
    assert retarget(PROG, 0, rng) is None        # attach has no IOVA


def test_the_length_limit_grows_with_the_number_of_mutations(monkeypatch):
    import atheris

    from smmufuzz.prog import mutator
    monkeypatch.setattr(atheris, "Mutate", lambda d, n: (d + b"\x07" * n)[:n])    # grows to the limit
    monkeypatch.setattr(mutator, "GEN_FIRST", 0.0)        # edits only: generated programs are not limited
    monkeypatch.setattr(mutator, "GEN_FLOOR", 0.0)
    m = HybridMutator(start=16, per=10)
    data, sizes = encode(PROG), []
    for seed in range(300):
        out = m(data, 600, seed)
        assert len(out) <= max(16 + m.calls // 10, len(data))
        sizes.append(len(out))
        data = out
    assert max(sizes[:20]) <= 40 < max(sizes[-20:])


def test_a_young_search_runs_generated_programs_of_realistic_length_then_mostly_mutates(monkeypatch):
    import atheris

    from smmufuzz.prog import mutator
    monkeypatch.setattr(atheris, "Mutate", lambda d, n: d[:n])
    m = HybridMutator()
    first = [decode(m(b"", 600, seed)) for seed in range(50)]
    lengths = sorted(len(p.ops) for p in first)
    assert lengths[len(lengths) // 2] >= 8, lengths        # not libFuzzer's 2-3 ops of the first minutes
    assert m.gen_share() > 0.8
    m.calls = 100_000
    assert m.gen_share() == mutator.GEN_FLOOR


def test_generated_programs_are_state_aware_and_encode_back():
    from smmufuzz.prog.generate import generate
    from smmufuzz.prog.mutator import live_iovas
    rng = random.Random(5)
    unmaps_of_mapped = 0            # seeds 1-5: blind codec ops (live=0) give 240-282, the generator 457-547
    for _ in range(200):
        p = generate(rng)
        assert decode(encode(p)) == p
        for i, op in enumerate(p.ops):
            if op.kind in ("unmap", "unmap_fast"):
                dom, iova = op.args[:2]
                unmaps_of_mapped += any(lo <= iova < hi for lo, hi in live_iovas(p, i).get(dom, []))
    assert unmaps_of_mapped >= 400


def test_live_ops_use_the_resources_live_at_their_position():
    from smmufuzz.prog.mutator import live_op
    rng = random.Random(3)
    live = live_iovas(PROG, 4)           # d0: [0x200000, 0x201000) and [0x202000, 0x204000); d1 one page
    kinds = set()
    for _ in range(300):
        op = live_op(PROG, 4, rng)
        kinds.add(op.kind)
        if op.kind == "unmap":
            dom, iova, size = op.args
            assert any(lo <= iova and iova + size <= hi for lo, hi in live[dom])
        elif op.kind in ("detach", "ats", "dma"):
            assert op.args[0] == 0       # the only attached stream
        if op.kind == "dma":
            assert any(lo <= op.args[1] < hi for lo, hi in live[0])
        elif op.kind == "flush_all":
            assert op.args == (0,)
    assert {"unmap", "detach", "dma", "attach", "map"} <= kinds
    # nothing live at 0: only the ops that need no resource (an SVA bind and a process mapping need none either)
    assert {op.kind for op in (live_op(PROG, 0, rng) for _ in range(50))} <= {"map", "attach", "sva_bind", "mm_map"}


def test_a_live_map_reuses_an_unmapped_iova_for_a_block(monkeypatch):
    """A share of live maps puts a block (2M with 4K pages), aligned, over an IOVA an earlier unmap on that domain
    freed: the buffer that reuses the IOVA space, whose map replaces the table the unmap left."""
    from smmufuzz.prog.mutator import live_op_of
    rng = random.Random(1)
    monkeypatch.setattr(mutator, "BLOCK_REMAP", 1.0)
    ops = {live_op_of(PROG, 5, "map", frozenset({0}), rng) for _ in range(20)}
    assert {op.args[1] for op in ops} == {0x200000} and {op.args[3] for op in ops} == {0x200000}
    assert all(op.args[2] % 0x200000 == 0 for op in ops)
    ops = {live_op_of(PROG, 5, "map", frozenset({1}), rng) for _ in range(20)}     # d1: nothing unmapped
    assert {op.args[3] for op in ops} == {0x1000}
    monkeypatch.setattr(mutator, "BLOCK_REMAP", 0.0)
    assert {live_op_of(PROG, 5, "map", frozenset({0}), rng).args[3] for _ in range(20)} == {0x1000}


def test_live_ops_mostly_follow_the_previous_ops_domain_and_change_ats():
    """A fresh op mostly works on what the op before it did (a stream attached to d1 with ATS turned on
    is followed by ops on d1), and a pci_ats mostly changes the endpoint's state."""
    prog = parse("""config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=1, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
iommu_map(d1, iova=0x400000, paddr=0x80010000, size=0x1000, prot=RW)
iommu_attach_device(d1, sid=1)
pci_ats(sid=1, on=1)
""")
    ops = [live_op(prog, len(prog.ops), random.Random(s)) for s in range(400)]
    doms = [touched_domains(list(prog.ops) + [op])[-1] for op in ops]
    on_d1 = sum(1 in d for d in doms)
    on_d0_only = sum(d == frozenset({0}) for d in doms)
    assert on_d1 > 2 * on_d0_only, (on_d1, on_d0_only)
    ats = [op for op in ops if op.kind == "ats"]
    off_sid1 = sum(op.args == (1, 0) for op in ats)
    on_sid0 = sum(op.args == (0, 1) for op in ats)
    assert ats and off_sid1 + on_sid0 >= 0.7 * len(ats)


def test_an_op_moved_to_another_context_takes_a_gather_of_its_own():
    """contract.gather_of_another_context: a fork, hoist or context edit (and a collision) of an unmap_fast/iotlb_sync
    gives the op a gather no other context uses on its domain (if one is free), so the moved op is issued, not skipped."""
    from smmufuzz.prog.contract import own_gather
    from smmufuzz.prog.program import Op
    prog = parse("""config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x2000, prot=RW)
iommu_unmap_fast(d0, iova=0x200000, size=0x1000, gather=g0)
iommu_iotlb_sync(d0, gather=g0)
iommu_unmap_fast(d1, iova=0x200000, size=0x1000, gather=g1)
""")
    ops = list(prog.ops)
    ops[2] = Op("sync", ops[2].args, 1)                         # the sync moved to cpu1: g0 is cpu0's, g1 free on d0
    ops[2] = own_gather(ops, 2)
    assert ops[2].text() == "cpu1: iommu_iotlb_sync(d0, gather=g1)"
    ops.insert(3, Op("unmap_fast", (0, 0x201000, 0x1000, 0), 3))   # irq1: both of d0's gathers are taken: left as is
    assert own_gather(ops, 3) == ops[3]
    assert own_gather(ops, 1) == ops[1]                          # already its context's own: unchanged


def test_a_fault_edit_fails_an_allocation_of_the_call_right_before_it(monkeypatch):
    from smmufuzz.prog import mutator
    monkeypatch.setattr(mutator, "EDITS", ("fault",))
    rng = random.Random(3)
    seen, nths = set(), set()
    for _ in range(40):
        prog = decode(structured(encode(PROG), 400, rng))
        i = next(i for i, op in enumerate(prog.ops) if op.kind == "fail_alloc")
        kind, n = prog.ops[i].args
        assert n in mutator.FAULT_NTH and kind in mutator.FAULT_SITES[prog.ops[i + 1].kind]
        assert [op for j, op in enumerate(prog.ops) if j != i] == list(PROG.ops)
        seen.add((prog.ops[i + 1].kind, kind))
        nths.add(n)
    assert seen == {("attach", "invs"), ("map", "pgtable")}
    assert nths == set(mutator.FAULT_NTH)              # mostly the first allocation, sometimes a later one


def test_generated_partners_change_the_domain_of_an_invalidation_in_flight():
    """With a partner share, an op that invalidates a domain is followed by another CPU's op on that domain
    (attach, detach, pci_ats, map or unmap), which the race search can interleave with it; without, no
    program has such a pair from the generator's own ops. Same seed, same programs."""
    from smmufuzz.prog.generate import INVALIDATING, PARTNER_KINDS, generate
    from smmufuzz.prog.program import touched_domains

    def partnered(p) -> int:
        doms = touched_domains(p.ops)
        return sum(1 for i in range(len(p.ops) - 1)
                   if p.ops[i].kind in INVALIDATING and p.ops[i + 1].kind in PARTNER_KINDS
                   and p.ops[i + 1].ctx == 1 - (p.ops[i].ctx & 1) and doms[i] & doms[i + 1])

    with_, without = [], []
    for partner, out in ((1.0, with_), (0.0, without)):
        rng = random.Random(11)
        for _ in range(300):
            p = generate(rng, mutator.RACE_GEN_OPS, mutator.RACE_GEN_LIVE, partner)
            assert decode(encode(p)) == p and len(p.ops) <= mutator.RACE_GEN_OPS
            out.append(p)
    rng = random.Random(11)
    assert generate(rng, mutator.RACE_GEN_OPS, mutator.RACE_GEN_LIVE, 1.0) == with_[0]
    assert sum(map(partnered, with_)) >= 200, sum(map(partnered, with_))
    # the codec's own ops on another context are rare: blind bytes seldom pair one with an invalidation
    assert sum(map(partnered, without)) * 10 < sum(map(partnered, with_))


def test_partner_op_is_another_cpus_op_on_the_invalidated_domain():
    from smmufuzz.prog.generate import partner_op
    rng = random.Random(4)
    prog = PROG.with_ops(PROG.ops[:4] + (Op("unmap", (0, 0x200000, 0x1000)),))
    seen = set()
    for _ in range(200):
        op = partner_op(prog, 5, rng)
        assert op is not None and op.ctx == 1
        seen.add(op.kind)
        assert 0 in touched_domains(prog.ops + (op,))[-1] or op.kind in ("attach", "ats", "detach")
        if op.kind == "ats":
            assert mutator._attached(prog, 5).get(op.args[0]) == 0
    assert {"attach", "map", "unmap"} <= seen
    assert partner_op(prog, 2, rng) is None         # op 1, a map, invalidates nothing


def test_partners_follow_only_ops_that_send_invalidations():
    """An unmap of nothing returns before iotlb_sync, a sync of an empty gather and a flush of a domain no stream
    uses send no command: no invalidation is in flight for another CPU's op to race (generate.invalidates)."""
    from smmufuzz.prog.generate import invalidates, partner_op
    ops = PROG.ops[:4] + (Op("unmap", (0, 0x900000, 0x1000)), Op("unmap_fast", (0, 0x202000, 0x1000, 1)),
                          Op("sync", (0, 0)), Op("sync", (0, 1)), Op("flush_all", (1,)), Op("flush_all", (0,)))
    prog = PROG.with_ops(ops)
    assert [invalidates(prog, i) for i in range(len(ops))] == [False, False, False, True, False, True, False,
                                                                True, False, True]
    rng = random.Random(2)
    assert partner_op(prog, 5, rng) is None and partner_op(prog, 7, rng) is None
    assert partner_op(prog, 4, rng) is not None and partner_op(prog, 8, rng) is not None


def test_ats_capable_streams_from_the_start_when_the_smmu_has_ats():
    """With ATS in the config, an ats_setup share of the streams get pci_ats(on) right before their first attach
    (an ATS-capable endpoint, as probed), so that their domains' invalidations carry ATC invalidations; none
    without ATS in the config or with ats_setup 0 (beyond the few that random ops make). Same seed, same
    programs otherwise deterministic."""
    from smmufuzz.prog.generate import generate

    def setups(p) -> int:
        first = {}
        for i, op in enumerate(p.ops):
            if op.kind in ("attach", "ats"):
                first.setdefault(op.args[1] if op.kind == "attach" else op.args[0], i)
        return sum(1 for sid, i in first.items() if p.ops[i].kind == "ats" and p.ops[i].args[1]
                   and i + 1 < len(p.ops) and p.ops[i + 1].kind == "attach" and p.ops[i + 1].args[1] == sid)

    counts = {}
    for share in (1.0, 0.0):
        rng = random.Random(5)
        progs = [generate(rng, ats_setup=share) for _ in range(200)]
        assert all(decode(encode(p)) == p for p in progs)
        counts[share] = (sum(setups(p) for p in progs if p.config.ats),
                         sum(setups(p) for p in progs if not p.config.ats))
    with_ats, without_ats = counts[1.0]
    # without ATS in the config the generator adds none; blind codec bytes or live ops may put one there by chance
    assert with_ats >= 100 and without_ats * 20 < with_ats, counts
    assert counts[0.0][0] * 5 < with_ats, counts       # blind bytes seldom put pci_ats(on) right before an attach


def test_generated_calls_get_fault_injection_and_none_with_faults_off():
    """generate() puts a fail_nth right before a share of the calls that allocate (syzkaller's fault
    injection into generated calls), for a kind that call allocates; with faults=0 none come from it
    (the codec's own fail_nth ops, rare and anywhere, remain)."""
    from smmufuzz.prog.generate import GEN_FAULT, generate

    def injected(p) -> list:
        return [(p.ops[i].args, p.ops[i + 1].kind) for i in range(len(p.ops) - 1)
                if p.ops[i].kind == "fail_alloc" and p.ops[i + 1].kind in mutator.FAULT_SITES
                and p.ops[i].args[0] in mutator.FAULT_SITES[p.ops[i + 1].kind]]

    rng = random.Random(5)
    progs = [generate(rng) for _ in range(300)]
    sites = sum(1 for p in progs for op in p.ops if op.kind in mutator.FAULT_SITES)
    got = [x for p in progs for x in injected(p)]
    assert GEN_FAULT / 2 * sites < len(got) < GEN_FAULT * 2 * sites, (len(got), sites)
    assert {n for (_kind, n), _call in got} >= set(mutator.FAULT_NTH)
    assert {call for _args, call in got} >= {"map", "dma_map", "attach"}
    rng = random.Random(5)
    quiet = [generate(rng, faults=0.0) for _ in range(300)]
    assert len([x for p in quiet for x in injected(p)]) * 5 < len(got)


def test_dma_api_live_ops_use_live_handles_and_attached_domains():
    """In a program that uses the DMA API, live ops include its calls: a dma_unmap names a handle whose
    dma_map came before and was not unmapped since; a dma_map or iommu_dma_init_fq a domain with a stream."""
    prog = PROG.with_ops(PROG.ops + (Op("dma_map", (0, 0x80000000, 0x1000, 3)), Op("dma_map", (0, 0x80001000, 0x1000, 3)),
                                     Op("dma_unmap", (0,))))
    assert mutator._live_handles(prog, len(prog.ops)) == [1]
    rng = random.Random(2)
    kinds = set()
    for _ in range(400):
        op = live_op(prog, len(prog.ops), rng)
        if op is None:
            continue
        kinds.add(op.kind)
        if op.kind == "dma_unmap":
            assert op.args == (1,)
        elif op.kind in ("dma_map", "dma_enable_fq"):
            assert op.args[0] == 0                     # d0 has sid 0; d1 has no stream
    assert {"dma_map", "dma_unmap", "dma_enable_fq"} <= kinds
    for _ in range(200):                               # a program without the DMA API gets none of them
        op = live_op(PROG, len(PROG.ops), rng)
        assert op is None or op.kind not in ("dma_map", "dma_unmap", "dma_enable_fq")


def test_race_targets_generate_a_share_of_long_programs():
    """On targets that search schedules, RACE_GEN_LONG of the generated programs are long (generate()'s own
    settings), the rest at most RACE_GEN_OPS ops."""
    from smmufuzz.fuzz.fuzz_target import hybrid_mutator
    m = hybrid_mutator(["invs:v9", "invs:merged"])
    assert m.gen_long == mutator.RACE_GEN_LONG > 0
    lens = [len(decode(hybrid(b"", 4096, seed, fallback=lambda d, n: d[:n], gen=1.0, gen_ops=m.gen_ops, gen_live=m.gen_live,
                              gen_partner=m.gen_partner, gen_long=m.gen_long)).ops) for seed in range(300)]
    long_ = sum(n > mutator.RACE_GEN_OPS for n in lens)
    assert 0.03 * 300 < long_ < 0.2 * 300, long_
    assert hybrid_mutator(["smmuv3"]).gen_long == 0.0


def test_generated_programs_encode_and_a_mutator_failure_does_not_kill_the_worker(monkeypatch, capsys):
    """Generated programs hold only values the byte format can (an SVA page range ending past 2^64 - 1 once
    gave an mm op at 2^64: the fuzzer's mutator raised and libFuzzer's worker died, found by `bench` seed 3);
    and should the mutator raise anyway, HybridMutator says so once (with the seed) and falls back to
    libFuzzer's own mutation instead of raising."""
    import atheris
    from smmufuzz.prog import generate as gen_mod
    for seed in (1285534663, 1330918204):            # those that gave an address of 2^64 and more
        rng = random.Random(seed)
        rng.random()
        assert decode(encode(gen_mod.generate(rng))).ops
    huge = PROG.with_ops(PROG.ops + (Op("mm_unmap", (0, 1 << 64, 0x1000)),))
    monkeypatch.setattr(gen_mod, "generate", lambda *a, **k: huge)
    monkeypatch.setattr(atheris, "Mutate", lambda d, n: d[:n])
    m = HybridMutator()                                # generates only, at first
    data = encode(PROG)
    assert [m(data, 400, seed) for seed in (5, 6)] == [data, data] and m.failed == 2
    err = capsys.readouterr().err
    assert err.count("hybrid mutator failed") == 1 and "seed 5" in err and "OverflowError" in err
