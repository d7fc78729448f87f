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
