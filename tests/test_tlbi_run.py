"""Smmu.tlbi_run() leaves exactly the state of the register writes it stands for, one tlbi() per address."""

import copy
import random

import pytest

from smmufuzz.tools.fidelity import random_programs
from smmufuzz.exec.runner import run_variant
from smmufuzz.reference import cmdq as C


def _pending(queue: list) -> list:
    """A queue with tlbi_run's one entry for a run of back-to-back writes, (pub, first command, (stride,
    count)), as the writes it stands for, one entry each."""
    out = []
    for pub, cmd, end in queue:
        if isinstance(end, tuple):
            stride, count = end
            out += [(pub + k, cmd._replace(addr=cmd.addr + k * stride), None) for k in range(count)]
        else:
            out.append((pub, cmd, end))
    return out


def _state(smmu) -> tuple:
    return (list(smmu.tlb.items()), list(smmu.wc.items()), smmu.eseq, smmu.seq, smmu.cache_ver, smmu.steps,
            smmu.commands, smmu.cmd_log, {k: _pending(v) for k, v in smmu.pending.items()}, dict(smmu.stats.by_op))


def _machines(n: int, seed: int, variant: str):
    """The SMMU after each op of n random programs (whatever tables, STEs and caches they left)."""
    out = []

    def probe(ex, i, op, ret):
        if i % 3 == 0:
            out.append(copy.deepcopy(ex.smmu))
    for prog in random_programs(n, seed):
        run_variant(prog, variant, probe=probe)
    return out


@pytest.mark.parametrize("variant", ["gather:legacy:arm-smmu", "gather:legacy:mtk", "smmuv3"])
def test_tlbi_run_is_the_loop_of_writes(variant):
    rng = random.Random(7)
    machines = _machines(15, 3, variant)
    assert len(machines) > 12
    compared = 0
    for smmu in machines:
        tags = [ste.tag for ste in smmu.strtab.values() if ste.translates] or [(0, 0, 0)]
        leaves = sorted({(k[1], k[2]) for k in smmu.tlb}) or [(0, 0x1000)]
        for _ in range(3):
            va, span = rng.choice(leaves)
            stride = rng.choice([0x1000, 0x2000, 0x10000, 0x200000])
            start = max(0, (va - rng.choice([0, stride, 4 * stride])) & ~0xFFF)
            count = rng.choice([2, 3, 17, max(2, (span + 8 * stride) // stride)])
            op = rng.choice([C.CMD_TLBI_NH_VA, C.CMD_TLBI_S2_IPA])
            asid = tags[0][2] if tags[0][2] >= 0 else 0
            leaf = rng.random() < 0.5
            a, b = copy.deepcopy(smmu), copy.deepcopy(smmu)
            for k in range(count):
                a.tlbi(op, asid=asid, addr=start + k * stride, leaf=leaf)
            b.tlbi_run(op, start, stride, count, asid=asid, leaf=leaf)
            assert _state(a) == _state(b), (variant, hex(start), hex(stride), count)
            a.tlb_sync()
            b.tlb_sync()
            assert _state(a) == _state(b)
            compared += 1
    assert compared == 3 * len(machines)


def _completed(smmu) -> tuple:
    """_state and what completions recorded: each by-address run's record (covered_since reads them), the
    context-wide flushes, the errors and every statistic."""
    return (_state(smmu), [(p, lo, hi, s) for p, _m, lo, hi, s in smmu.range_flushes],
            [p for p, _m in smmu.ctx_flushes], list(smmu.errors), vars(smmu.stats))


@pytest.mark.parametrize("seed", [5, 6])
def test_queued_run_is_the_commands_one_by_one(seed, monkeypatch):
    """cmdq_publish() of per-granule loops' commands (runs pending as one entry each, _publish_run) leaves the
    state that publishing them one by one leaves, before and after their CMD_SYNC: with other commands, stride
    changes, runs at another stride back to back, TTL bits (RES0 with TG=0) on some commands, the commands
    split over up to three publications, and with the SMMU disabled (no fill between publications, so runs
    of two publications meet)."""
    from smmufuzz.reference import smmu as smmu_mod
    from smmufuzz.variants.arm_smmu_v3 import CMDQ_OP_TLBI_NH_ASID, CmdqEnt, build_cmd
    rng = random.Random(seed)
    variant = "smmuv3"
    machines = _machines(15, seed, variant)
    assert len(machines) > 12
    one_by_one = lambda entries, i: (1, 0)
    runs, splits, tags_seen = 0, 0, set()
    for smmu in machines:
        tags = [ste.tag for ste in smmu.strtab.values() if ste.translates] or [("nh", 0, 0)]
        leaves = sorted({(k[1], k[2]) for k in smmu.tlb}) or [(0, 0x1000)]
        for _ in range(3):
            tag = rng.choice(tags)
            op = {"nh": 0x12, "el2": 0x22, "s2": 0x2A}[tag[0]]
            ent = CmdqEnt(op, asid=max(tag[2], 0), vmid=max(tag[1], 0), leaf=rng.random() < 0.5)
            va, span = rng.choice(leaves)
            addr = max(0, (va - rng.choice([0, 0x1000, 0x8000])) & ~0xFFF)
            entries = []
            for _loop in range(rng.choice([1, 2, 3])):      # loops back to back, each at its own stride
                stride = rng.choice([0x1000, 0x2000, 0x200000])
                for k in range(rng.choice([1, 2, 3, 17, 70, max(2, span // stride + 4)])):
                    ent.addr, ent.ttl = addr, rng.choice([1, 2, 3]) if rng.random() < 0.05 else 0
                    entries.append(build_cmd(ent))
                    addr += stride + (stride if rng.random() < 0.03 else 0)
                    if rng.random() < 0.02:
                        entries.append(build_cmd(CmdqEnt(CMDQ_OP_TLBI_NH_ASID, asid=ent.asid, vmid=ent.vmid)))
            cuts = sorted(rng.sample(range(1, len(entries)), min(len(entries) - 1, rng.choice([0, 1, 2]))))
            parts = [entries[i:j] for i, j in zip([0] + cuts, cuts + [len(entries)])]
            a, b = copy.deepcopy(smmu), copy.deepcopy(smmu)
            if rng.random() < 0.5:
                a.set_enabled(False)
                b.set_enabled(False)
            with monkeypatch.context() as m:
                m.setattr(smmu_mod, "_queue_run", one_by_one)
                for part in parts:
                    a.cmdq_publish(list(part))
            for part in parts:
                b.cmdq_publish(list(part))
            runs += sum(isinstance(e, tuple) for q in b.pending.values() for _p, _c, e in q)
            tags_seen.add(tag[0])
            assert _completed(a) == _completed(b), (variant, [len(p) for p in parts])
            a.tlb_sync()
            b.tlb_sync()
            assert _completed(a) == _completed(b)
            splits += len(a.range_flushes)
    assert runs > len(machines) and len(tags_seen) > 1 and splits, (runs, tags_seen)
