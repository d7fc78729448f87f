"""Seed 000: replaying the corpus on every (core rule, driver) pair gives the thread's verdict (B1 for
skip-empty on every driver that leaves its gather empty, B2 for jason-v1 on mtk, clean elsewhere),
plus the NULL-gather crash smmufuzz found in Jason v2's v7s hunk."""

import os

from smmufuzz.tools.matrix import gather_matrix
from smmufuzz.variants.registry import GATHER_BUGGY

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus")


def test_matrix_matches_the_thread():
    m = gather_matrix(ROOT)
    wrong = []
    for (rule, drv), c in m["cells"].items():
        found = set(c["kinds"])
        if (rule, drv) in GATHER_BUGGY:
            ok = found == {"MISSED_INVALIDATION"}
        elif c["found_here"]:
            ok = found == {"CRASH"}
        else:
            ok = not found
        if not ok:
            wrong.append(f"{rule} x {drv}: {sorted(found) or 'clean'}")
    assert not wrong, wrong


def test_jason_v1_over_invalidates_disjoint_unmap_fast_on_smmuv3():
    """B3: add_range before add_page defeats is_disjoint: one leaf TLBI range spans [A, B + 4K)."""
    from smmufuzz.prog.load import load_program
    from smmufuzz.exec.runner import run_program
    prog, _ = load_program(os.path.join(ROOT, "seeds", "gather_b3_disjoint_unmap_fast.txt"))
    pages = {}
    for rule in ("jason-v1", "robin-v2"):
        run = run_program(prog, [f"gather:{rule}:arm-smmu-v3"], figures=True).runs[0]
        assert run.finding is None
        pages[rule] = sum(run.stats["per_op"][k]["inv_pages"] for k in ("unmap_fast", "sync"))
    assert pages["robin-v2"] == 2                              # one 4K TLBI per disjoint page
    assert pages["jason-v1"] == (0x40001000 - 0x10000) // 0x1000   # every page from A to B + 4K
