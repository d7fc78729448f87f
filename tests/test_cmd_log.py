"""The command log holds a run of commands as one record: every way a reader reads it gives the list of
(seq, command) the commands one by one would have made (reference/cmd_log.py)."""

import copy
import random

import pytest

from smmufuzz.reference import cmdq as C
from smmufuzz.reference.cmd_log import CmdLog

ADDR_AT = C.Command._fields.index("addr")


def _filled(rng: random.Random) -> tuple[CmdLog, list]:
    """A log and the plain list of the same commands, after random appends, extends and runs."""
    log, plain, seq = CmdLog(), [], 0
    for _ in range(rng.randrange(0, 12)):
        what = rng.randrange(3)
        cmd = C.Command(rng.choice((C.CMD_TLBI_NH_VA, C.CMD_TLBI_S2_IPA, C.CMD_SYNC)),
                        asid=rng.randrange(4), vmid=rng.randrange(4), leaf=rng.randrange(2),
                        addr=rng.randrange(1 << 20) << 12)
        if what == 0:
            seq += 1
            log.append((seq, cmd))
            plain.append((seq, cmd))
        elif what == 1:
            items = [(seq + 1 + k, cmd._replace(addr=cmd.addr + k)) for k in range(rng.randrange(0, 4))]
            seq += len(items)
            log.extend(items)
            plain.extend(items)
        else:
            step, stride, count = rng.choice((1, 2)), rng.choice((0x1000, 0x2000, 0x200000)), rng.randrange(1, 40)
            log.add_run(seq + 1, step, cmd, ADDR_AT, stride, count)
            plain += [(seq + 1 + k * step, cmd._replace(addr=cmd.addr + k * stride)) for k in range(count)]
            seq += count * step
    return log, plain


def test_every_read_is_the_commands_one_by_one():
    rng = random.Random(1)
    for _ in range(400):
        log, plain = _filled(rng)
        assert len(log) == len(plain)
        assert list(log) == plain
        assert log == plain and log == CmdLog(plain)
        for start in range(len(plain) + 2):
            assert log[start:] == plain[start:]
            stop = rng.randrange(0, len(plain) + 2)
            assert log[start:stop] == plain[start:stop]
        assert log[-3:] == plain[-3:]
        dup = copy.deepcopy(log)
        assert dup == plain and len(dup) == len(plain)
        seq = plain[-1][0] if plain else 0
        dup.append((seq + 1, C.Command(C.CMD_SYNC)))
        assert log == plain and len(dup) == len(plain) + 1         # the copy is its own
        log.clear()
        assert len(log) == 0 and list(log) == [] and log[0:] == []


def test_only_plain_slices():
    log, _ = _filled(random.Random(2))
    with pytest.raises(TypeError):
        log[0]
    with pytest.raises(TypeError):
        log[::2]
