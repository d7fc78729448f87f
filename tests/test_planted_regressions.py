"""The fuzzer-found reproducers of issue 18's planted variants show only the planted bug: the correct variants of
the target are clean on them (tests/test_corpus_replay.py checks that the planted one still gives its finding)."""

import os

import pytest

from smmufuzz.prog.load import load_program
from smmufuzz.exec.runner import run_program

DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "smmuv3")
FILES = ["fuzz_reset_no_cfgi.txt", "fuzz_reset_no_el2.txt", "fuzz_map_no_unwind.txt", "fuzz_sva_notifier_short.txt",
         "fuzz_sva_notifier_short_hang.txt", "fuzz_iova_reclaim_unflushed.txt"]


@pytest.mark.parametrize("name", FILES)
def test_correct_variants_are_clean_on_it(name):
    prog, header = load_program(os.path.join(DIR, name))
    assert header["target"].startswith("smmuv3:")
    assert run_program(prog, [header["target"]]).findings
    assert not run_program(prog, ["smmuv3", "invs:merged", "pte-sync:eager"]).findings


def test_correct_invs_variants_are_clean_on_the_merge_failure():
    prog, header = load_program(os.path.join(os.path.dirname(DIR), "invs", "fuzz_merge_fail_unref.txt"))
    assert run_program(prog, [header["target"]]).findings
    assert not run_program(prog, ["smmuv3", "invs:v9", "invs:merged", "invs:merged-refcount"]).findings
