"""The command line: show/replay of crash artifacts and text, and one-line errors (exit 2) on bad input."""

import os
import subprocess
import sys

import pytest

from smmufuzz.prog.codec import encode
from smmufuzz.prog.load import load_program

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)


def smmufuzz(*args, cwd=ROOT):
    p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def crash_artifact(tmp_path):
    """A raw fuzzer input (bytes), as libFuzzer writes it, for the missed-invalidation program."""
    prog, _ = load_program(os.path.join(HERE, "programs", "missed_invalidation.txt"))
    path = tmp_path / "crash-0123"
    path.write_bytes(encode(prog))
    return path, prog


def test_show_prints_a_crash_artifact_as_the_program(crash_artifact):
    path, prog = crash_artifact
    rc, out, err = smmufuzz("show", str(path))
    assert rc == 0, err
    assert out == prog.text()


def test_replay_reproduces_the_artifact_and_the_shown_text(crash_artifact, tmp_path):
    path, _prog = crash_artifact
    args = ["--load", "tests.broken_variants", "--variant", "test-no-iotlb-sync"]
    rc, out, _ = smmufuzz("replay", str(path), *args)
    assert rc == 1 and "MISSED_INVALIDATION" in out and "at op 4" in out
    rc, shown, _ = smmufuzz("show", str(path))
    text = tmp_path / "repro.txt"
    text.write_text(shown)
    rc2, out2, _ = smmufuzz("replay", str(text), *args)
    assert rc2 == 1 and "MISSED_INVALIDATION" in out2 and "at op 4" in out2
    rc3, out3, _ = smmufuzz("replay", str(text))       # default target: mainline, clean
    assert rc3 == 0 and "0 finding(s)" in out3


def test_list_names_targets_and_buggy_flags():
    rc, out, _ = smmufuzz("list")
    assert rc == 0 and "smmuv3" in out and "correct" in out


@pytest.mark.parametrize("args, needle", [
    (["replay", "corpus/seeds", "--target", "no-such-target"], "unknown target 'no-such-target'"),
    (["replay", "corpus/seeds", "--variant", "no-such-variant"], "unknown variant 'no-such-variant'"),
    (["replay", "/nonexistent/dir"], "no such file or directory"),
    (["fuzz", "no-such-target", "--time", "1"], "unknown target"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    rc, out, err = smmufuzz(*args)
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_syntax_error_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("config(granule=4K)\niommu_attach_device(d0, sid=0)\niommu_map(d0, iova=0x1000, paddr=zz, "
                   "size=0x1000, prot=RW)\n")
    rc, out, err = smmufuzz("replay", str(bad))
    assert rc == 2 and "line 3, column 34" in err and out == ""


SKIP_EMPTY = """# target: gather:skip-empty:virtio
config(granule=4K, ias=32, stage=1, coherent=1, range_inv=0, ats=0, e2h=0)
iommu_attach_device(d0, sid=0)
iommu_map(d0, iova=0x200000, paddr=0x80000000, size=0x1000, prot=RW)
dev_dma(sid=0, iova=0x200000, write=0)
iommu_unmap(d0, iova=0x200000, size=0x1000)
"""


def test_bad_files_in_a_directory_are_one_line_each_and_the_rest_replays(tmp_path):
    (tmp_path / "a.txt").write_text("config(granule=4K)\niommu_attach_device(d0, sid=0)\n")
    (tmp_path / "b.txt").write_text("iommu_unmap(d0, iova=0x1000)\n")
    (tmp_path / "c.txt").write_text("# target: test-only-target\nconfig(granule=4K)\n")
    (tmp_path / "d.txt").write_text(SKIP_EMPTY)
    rc, out, err = smmufuzz("replay", str(tmp_path))
    assert rc == 1, err                                   # d.txt's finding
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "b.txt" in lines[0] and "missing size" in lines[0]
    assert "c.txt" in lines[1] and "unknown target 'test-only-target'" in lines[1] and "known:" not in lines[1]
    assert "a.txt: clean" in out and "d.txt: 1 finding(s)" in out
    assert "2 program(s), 1 finding(s): 0 unexpected, 1 expected, 0 known design; 2 file(s) skipped" in out
    assert (tmp_path / "b.txt").exists()
    (tmp_path / "d.txt").unlink()
    rc, out, err = smmufuzz("replay", str(tmp_path))     # bad files alone do not make a finding
    assert rc == 0 and "1 program(s), 0 finding(s):" in out
    (tmp_path / "a.txt").unlink()
    rc, out, err = smmufuzz("replay", str(tmp_path))     # nothing could be replayed
    assert rc == 2 and "none of its 2 file(s) could be replayed" in err


def test_replay_of_the_shipped_corpus_replays_everything_and_exits_1():
    rc, out, err = smmufuzz("replay", "corpus/")
    assert rc == 1 and err == ""
    n = sum(len(fs) for _d, _s, fs in os.walk(os.path.join(ROOT, "corpus")))
    assert f"{n} program(s)" in out and "file(s) skipped" not in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any directory")
def test_unreadable_directory(tmp_path):
    d = tmp_path / "locked"
    d.mkdir()
    (d / "x.txt").write_text("config(granule=4K)\n")
    d.chmod(0)
    try:
        rc, _out, err = smmufuzz("replay", str(d))
        assert rc == 2 and "cannot read" in err
    finally:
        d.chmod(0o755)
