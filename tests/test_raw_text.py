"""Raw fuzzer inputs and text programs are told apart by the file name (`*.txt` is text), never by contents
(issue 15 item 3; the property over random bytes is in test_properties.py)."""

import hashlib
import os
import subprocess
import sys

import pytest

from smmufuzz.prog.codec import decode
from smmufuzz.prog.load import LoadError, load_program
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from tests.test_properties import RAW_TARGET, fuzz_target_verdict

ROOT = os.path.dirname(os.path.dirname(__file__))
LOST = b"#z 2`\tF#"          # valid UTF-8 starting with '#': it was read as an empty text program


def cli(*args):
    p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_the_lost_finding_is_kept(tmp_path):
    """MISSED_INVALIDATION in the fuzz target, and on replay of the crash file as libFuzzer names it (a campaign
    triages it through the same load_program)."""
    assert "MISSED_INVALIDATION" in fuzz_target_verdict(LOST)
    path = tmp_path / ("crash-" + hashlib.sha1(LOST).hexdigest())
    path.write_bytes(LOST)
    prog, _ = load_program(str(path))
    assert prog == decode(LOST) and len(prog.ops) == 3
    assert [f.kind for f in run_program(prog, RAW_TARGET).findings] == ["MISSED_INVALIDATION"]
    rc, out, _err = cli("replay", str(path), "--target", RAW_TARGET[0])
    assert rc == 1 and "MISSED_INVALIDATION" in out


def test_text_programs_are_read_from_txt_files_only(tmp_path):
    text = "config(granule=4K)\niommu_attach_device(d0, sid=0)\n"
    (tmp_path / "p.txt").write_text(text)
    (tmp_path / "p").write_text(text)
    assert load_program(str(tmp_path / "p.txt"))[0] == parse(text)
    assert load_program(str(tmp_path / "p"))[0] == decode(text.encode())


def test_a_txt_file_that_is_not_text_is_a_one_line_error(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(LoadError, match="not UTF-8"):
        load_program(str(tmp_path / "bin.txt"))
    rc, out, err = cli("show", str(tmp_path / "bin.txt"))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "not UTF-8" in err


def test_show_notes_a_text_like_file_read_as_raw(tmp_path):
    (tmp_path / "prog").write_text("config(granule=4K)\niommu_attach_device(d0, sid=0)\n")
    rc, out, err = cli("show", str(tmp_path / "prog"))
    assert rc == 0 and "read as raw fuzzer bytes" in err and "ending in .txt" in err
    assert out == decode((tmp_path / "prog").read_bytes()).text()


def test_minimize_writes_only_txt_reproducers(tmp_path):
    src = os.path.join(ROOT, "corpus", "regressions", "gather", "b1_skip_empty_arm-smmu.txt")
    rc, out, err = cli("minimize", src, "--out", str(tmp_path / "repro"))
    assert rc == 2 and out == "" and "must end in .txt" in err and not (tmp_path / "repro").exists()


def test_shipped_programs_are_txt_files():
    """Seeds, regressions and the test programs are text: every file under them is named *.txt."""
    for d in (os.path.join(ROOT, "corpus", "seeds"), os.path.join(ROOT, "corpus", "regressions"),
              os.path.join(ROOT, "tests", "programs")):
        for root, _dirs, files in os.walk(d):
            for f in files:
                assert f.endswith(".txt"), os.path.join(root, f)
