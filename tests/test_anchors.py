"""Schedules named by preemption point (program.Anchor, exec/anchors.py): `preempt(at="label", n=k, to=ctx)`
parses and prints back, fires at that point, converts to and from step counts on a variant, means the same
kernel point on variants whose step counts differ, and reproducers are written with it."""

import os

import pytest

from smmufuzz.exec.anchors import anchor_schedule, named, resolve_anchors
from smmufuzz.prog.codec import encode
from smmufuzz.fuzz.fuzz import seed_inputs
from smmufuzz.prog.load import load_program
from smmufuzz.fuzz.minimize import reproducer_text
from smmufuzz.prog.program import Anchor, ProgramSyntaxError, parse
from smmufuzz.exec.runner import run_program

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEW_AFTER_STE = os.path.join(ROOT, "corpus", "regressions", "invs", "fuzz_new_after_ste.txt")
HEAD = "config(granule=4K, ias=48, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)\n"


def test_anchored_preempt_lines_parse_and_print_back():
    text = (HEAD + "iommu_attach_device(d0, sid=0)\n"
            'preempt(at="smp_mb(); rcu_dereference(domain->invs)", n=2, to=cpu1)\n'
            "preempt(after=3, to=cpu1)\n"
            "cpu1: iommu_attach_device(d0, sid=1)\n")
    p = parse(text)
    assert p.schedule == ((0, 3, 1), (0, Anchor("smp_mb(); rcu_dereference(domain->invs)", 2), 1))
    assert parse(p.text()) == p
    assert 'preempt(at="smp_mb(); rcu_dereference(domain->invs)", n=2, to=cpu1)' in p.text()
    one = parse(HEAD + 'iommu_attach_device(d0, sid=0)\npreempt(at="STE[0] written", to=cpu1)\n'
                "cpu1: iommu_attach_device(d0, sid=1)\n")
    assert one.schedule == ((0, Anchor("STE[0] written", 1), 1),) and "n=" not in one.text()
    for bad in ('preempt(at="x", n=0, to=cpu1)', 'preempt(at="x", to=cpu7)', 'preempt(at=x, to=cpu1)'):
        with pytest.raises(ProgramSyntaxError, match="preempt|n must"):
            parse(HEAD + "iommu_attach_device(d0, sid=0)\n" + bad + "\n")


def test_a_named_switch_fires_at_its_point_and_converts_to_and_from_steps():
    """The regression's step-counted switches, named on its variant: the named program gives the same finding
    there, and resolving the names on that variant gives back the same step counts."""
    prog, header = load_program(NEW_AFTER_STE)
    variant = header["variant"]
    want = run_program(prog, [variant]).findings[0].signature()
    anchored = anchor_schedule(prog, variant)
    assert anchored is not None and all(isinstance(a, Anchor) for _i, a, _c in anchored.schedule)
    assert (3, Anchor("STE[0] written", 1), 1) in anchored.schedule
    assert parse(anchored.text()) == anchored
    assert run_program(anchored, [variant]).findings[0].signature() == want
    assert resolve_anchors(anchored, variant) == prog
    assert named(prog, run_program(prog, [variant]).findings[0]) == anchored
    # a switch at a step the op never reaches has no name: the program keeps its step counts
    far = prog.__class__(prog.config, prog.ops, ((3, 60, 1),))
    assert anchor_schedule(far, variant) is None


def test_a_named_point_is_the_same_kernel_point_where_step_counts_differ():
    """`STE[0] written` is step 4 of the attach on invs:new-after-ste (which installs the new array after
    the STE) and step 5 on the correct variants: `after=4` would preempt the control one point early, the
    name preempts both right after the STE write, where only the planted bug misses an invalidation."""
    prog, header = load_program(NEW_AFTER_STE)
    anchored = anchor_schedule(prog, header["variant"])
    steps = {v: dict(((i, c), a) for i, a, c in resolve_anchors(anchored, v).schedule)[(3, 1)]
             for v in ("invs:new-after-ste", "invs:merged", "invs:v9")}
    assert steps["invs:new-after-ste"] != steps["invs:merged"] == steps["invs:v9"], steps
    for v in ("invs:merged", "invs:v9"):
        run = run_program(anchored, [v], keep_log=True).runs[0]
        assert run.trace.anchors[(3, steps[v])] == ("STE[0] written", 1)
        assert not run.finding
    assert run_program(anchored, ["invs:new-after-ste"]).findings


def test_reproducers_name_their_switches_and_seeds_resolve_them(tmp_path):
    """reproducer_text writes preempt(at=...) lines; the byte format has no names (a clear error), so a text
    seed's names are counted on its '# variant:' line's variant, and a seed without one is reported and
    skipped."""
    prog, header = load_program(NEW_AFTER_STE)
    finding = run_program(prog, [header["variant"]]).findings[0]
    text = reproducer_text(prog, finding, header["target"], "test")
    assert 'preempt(at="STE[0] written", to=cpu1)' in text and "preempt(after=" not in text
    with pytest.raises(ValueError, match="no byte form"):
        encode(parse(text))
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "named.txt").write_text(text)
    (tmp_path / "seeds" / "nameless.txt").write_text("\n".join(ln for ln in text.splitlines()
                                                              if not ln.startswith("# variant")) + "\n")
    problems: list = []
    assert seed_inputs([str(tmp_path / "seeds")], str(tmp_path / "out"), problems=problems) == 1
    assert len(problems) == 1 and "nameless.txt" in problems[0] and "# variant:" in problems[0]
    (out,) = os.listdir(tmp_path / "out")
    assert load_program(str(tmp_path / "out" / out))[0] == prog
