"""The op table (prog/ops.py) is the one description of ops: every kind has a model, and text, parsing, the
byte codec and minimisation all work from it for every kind and every field type."""

from smmufuzz.exec import op_models
from smmufuzz.prog.codec import FORMAT_MAGIC, FORMAT_VERSION, KIND_TABLE, KIND_TABLE_V1, decode, encode
from smmufuzz.fuzz.minimize import _simpler_ops
from smmufuzz.prog.ops import KINDS, OP_KINDS, OS_KINDS, SLEEPING_KINDS
from smmufuzz.prog.program import Config, Op, Program, parse


def _with(kind: str) -> Program:
    ops = [Op("attach", (0, 0)), Op("dma_map", (0, 0x80000000, 0x1000, 3)), Op(kind, KINDS[kind].example())]
    return Program(Config(), tuple(ops))


def test_every_kind_has_a_model_and_a_codec_slot():
    assert set(op_models.MODELS) == set(KINDS)
    assert set(KIND_TABLE) == set(KINDS) and len(KIND_TABLE) == sum(k.weight for k in OP_KINDS)
    assert SLEEPING_KINDS <= OS_KINDS <= set(KINDS)
    # format 1's table is frozen: the 18 kinds it had, 40 opcodes, in the order they were
    assert len(KIND_TABLE_V1) == 40 and KIND_TABLE[:40] == KIND_TABLE_V1


def test_every_kind_prints_parses_and_encodes_back():
    for kind in KINDS:
        prog = _with(kind)
        assert parse(prog.text()) == prog, prog.text()
        data = encode(prog)
        assert data[:2] == bytes([FORMAT_MAGIC, FORMAT_VERSION])
        assert decode(data) == prog, (kind, prog.text(), decode(data).text())


def test_minimisation_candidates_stay_valid_programs():
    for kind in KINDS:
        op = Op(kind, tuple(_big(t, v) for (_f, t), v in zip(KINDS[kind].fields, KINDS[kind].example())))
        cands = list(_simpler_ops(op))
        for c in cands:
            assert c.kind == kind and len(c.args) == len(op.args)
            prog = Program(Config(), (Op("attach", (0, 0)), Op("dma_map", (0, 0x80000000, 0x1000, 3)), c))
            assert parse(prog.text()) == prog
        if any(t.tag in ("addr", "size", "dom", "sid", "gather") for _f, t in KINDS[kind].fields):
            assert cands, kind


def _big(t, v):
    """A value with something to simplify (minimisation has nothing to do on the examples' round values)."""
    if t.tag in ("addr", "size"):
        return 0x40123000
    if t.tag in ("dom", "gather"):
        return 1
    if t.tag == "sid":
        return 3
    return v
