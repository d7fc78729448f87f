"""Hypothesis properties of the harness: raw inputs replay to the fuzz target's verdict, correct variants are clean
on random sequential programs, decode is total, the text and byte forms round-trip, and the minimiser keeps a
finding's signature.

Derandomised by default (the suite stays deterministic); SMMUFUZZ_PROPERTY_EXAMPLES=N runs N examples per property
from a random seed instead, to search further.
"""

import hashlib
import os
from dataclasses import replace

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from smmufuzz.prog.codec import decode, encode  # noqa: E402
from smmufuzz.fuzz.fuzz_target import FindingError, one_input  # noqa: E402
from smmufuzz.prog.load import load_program  # noqa: E402
from smmufuzz.fuzz.minimize import minimize  # noqa: E402
from smmufuzz.prog.program import MAX_OPS, Op, Program, parse  # noqa: E402
from smmufuzz.exec.runner import run_program  # noqa: E402
from smmufuzz.variants.registry import TARGETS, VARIANTS, kernel_builds  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(__file__))
_N = os.environ.get("SMMUFUZZ_PROPERTY_EXAMPLES")


def props(examples: int):
    """Settings of one property: `examples` derandomised examples, or SMMUFUZZ_PROPERTY_EXAMPLES random ones."""
    return settings(max_examples=int(_N) if _N else examples, derandomize=not _N, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# raw bytes, and byte strings that read like text (valid UTF-8, a comment or a call first): the ambiguous ones
RAW = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(lambda s: ("#" + s).encode()),
    st.sampled_from(["config(granule=4K)\n", "iommu_map(d0, ", "# target: smmuv3\n"]).flatmap(
        lambda head: st.binary(max_size=80).map(lambda tail: head.encode() + tail)),
)


def sequential(prog: Program) -> Program:
    """prog with every op on cpu0 and no schedule: a sequential program."""
    return Program(prog.config, tuple(Op(o.kind, o.args) for o in prog.ops), ())


# ---- raw vs text (issue 15 item 3) ----------------------------------------------------------------------
RAW_TARGET = ["gather:skip-empty:arm-smmu"]        # no schedule search: the fuzz target runs the input alone
_ONE_INPUT = one_input(RAW_TARGET, "max-cache")


def fuzz_target_verdict(data: bytes) -> str:
    """What the fuzz target's own function of one input raises on data: the findings' text, or '' if none."""
    try:
        _ONE_INPUT(data)
    except FindingError as e:
        return str(e).split("\n--- program ---\n")[0]
    return ""


@props(200)
@given(data=RAW)
@example(data=b"#z 2`\tF#")       # valid UTF-8 starting with '#': read as an empty text program before the fix
def test_raw_input_replays_to_the_fuzz_target_verdict(tmp_path, data):
    path = tmp_path / ("crash-" + hashlib.sha1(data).hexdigest())      # as libFuzzer names it
    path.write_bytes(data)
    prog, header = load_program(str(path))
    assert header == {} and prog == decode(data)
    replayed = "\n".join(f.text() for f in run_program(prog, RAW_TARGET).findings)
    assert replayed == fuzz_target_verdict(data)


# ---- correct variants are clean on random sequential programs -------------------------------------------
def _python(v: str) -> bool:
    """A variant of ours, not a test-only one nor one that needs a kernel tree (test_kernel_c.py covers those)."""
    return not v.startswith("test-") and not kernel_builds([v])


_ALL_CORRECT = [t for t, vs in TARGETS.items() if all(not VARIANTS[v].buggy and _python(v) for v in vs)]
_COVERED = {v for t in _ALL_CORRECT for v in TARGETS[t]}
UNITS = [TARGETS[t] for t in _ALL_CORRECT] + [[v] for v, info in VARIANTS.items()
                                              if not info.buggy and v not in _COVERED and _python(v)]


@props(1000)
@given(data=st.binary(min_size=16, max_size=300), unit=st.sampled_from(UNITS))
@example(data=b"\x00" * 8 + b"\xc7\x01p\x01\x00\x00\x00s\x00\xde",       # a queued virtio UNMAP, TLB evicted
         unit=["gather:legacy:virtio", "gather:robin-draft:virtio", "gather:robin-v2:virtio"])
@example(data=b"\x00" * 26 + b"\x10\x01\x00\x01\x00\x03",   # DART's own table: judged with stores in order
         unit=["gather:legacy:dart", "gather:robin-draft:dart", "gather:robin-v2:dart"])
def test_correct_variants_are_clean_on_random_sequential_programs(data, unit):
    """Mainline and every variant the registry marks correct, alone or side by side in a target made only of correct
    variants (no DIVERGENCE either)."""
    prog = sequential(decode(data))
    res = run_program(prog, unit)
    assert not res.findings, "\n".join(f.text() for f in res.findings) + "\n" + prog.text()


# ---- codec and text --------------------------------------------------------------------------------------
@props(500)
@given(data=st.binary(max_size=600))
def test_decode_is_total(data):
    prog = decode(data)
    assert isinstance(prog, Program) and len(prog.ops) <= MAX_OPS
    assert parse(prog.text()) == prog


@props(500)
@given(data=st.binary(max_size=600))
def test_text_and_bytes_round_trip(data):
    prog = decode(data)
    text = prog.text()
    assert parse(text) == prog and parse(text).text() == text
    assert decode(encode(prog)) == prog
    assert decode(encode(parse(text))) == prog


# ---- the minimiser ------------------------------------------------------------------------------------------
def _regression(name):
    return load_program(os.path.join(ROOT, "corpus", "regressions", *name.split("/")))


FOUND = [_regression(n) for n in ("gather/b1_skip_empty_arm-smmu.txt", "gather/b2_jason_v1_mtk.txt",
                                  "pte-sync/b14_a.txt")]


@props(40)
@given(base=st.sampled_from(FOUND), noise=st.binary(max_size=120), where=st.integers(0, 10))
def test_the_minimiser_keeps_the_signature(base, noise, where):
    """A known finding's program with random ops spliced in: the minimised program gives the same first-finding
    signature (kind, variant, op kind) and is no longer."""
    prog, header = base
    variants = [header["variant"]] if "variant" in header else [header["target"]]
    extra = sequential(decode(b"\x00\x04" + noise)).ops
    k = min(where, len(prog.ops))
    noisy = replace(prog, ops=prog.ops[:k] + extra + prog.ops[k:])
    res = run_program(noisy, variants)
    hypothesis.assume(res.findings)
    small, finding = minimize(noisy, variants, budget=150)
    assert finding.signature() == res.findings[0].signature()
    assert run_program(small, variants).findings[0].signature() == finding.signature()
    assert len(small.ops) <= len(noisy.ops)
