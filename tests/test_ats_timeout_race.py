"""ATS disabled under an outstanding ATC invalidation (issue 18 item 6): only a reader that skips
invs->rwlock lets the detach's pci_disable_ats() land in its CMD_SYNC poll, and only the emulator's
CERROR_ATC_INV_SYNC timeout makes that visible."""

import os
from dataclasses import replace

from smmufuzz.harness.exhaustive import explore
from smmufuzz.harness.load import load_program
from smmufuzz.harness.runner import run_program
from smmufuzz.reference import smmu

REPRO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "corpus", "regressions", "invs",
                     "race_no_ats_rwlock.txt")


def test_the_race_times_out_a_sync_only_with_the_timeout_modelled(monkeypatch):
    prog, header = load_program(REPRO)
    assert [f.kind for f in run_program(prog, [header["target"]]).findings] == [header["expect"]]
    monkeypatch.setattr(smmu, "outstanding_atc_inv", lambda pending, sid: set())
    assert not run_program(prog, [header["target"]]).findings


def test_every_schedule_up_to_three_preemptions_is_clean_with_the_rwlock():
    prog, header = load_program(REPRO)
    bare = replace(prog, schedule=())
    assert header["expect"] in explore(bare, header["target"], bound=3).kinds()
    ex = explore(bare, "invs:merged", bound=3)
    assert ex.complete and ex.schedules > 100 and not ex.findings, ex.findings
