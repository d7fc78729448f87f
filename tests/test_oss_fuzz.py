"""ClusterFuzzLite / OSS-Fuzz: `smmufuzz oss-fuzz export` writes a standalone fuzzer, seed corpus, dictionary and
options per target; .clusterfuzzlite/build.sh, run as the builder image runs it (its variables set, a PyInstaller
stand-in for compile_python_fuzzer), packages fuzzers that run outside Python's reach of this checkout, and
the planted-bug one crashes with a reproducer `smmufuzz replay` reads."""

import glob
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile

import pytest

from smmufuzz.cli import main
from smmufuzz.prog.codec import FORMAT_MAGIC, FORMAT_VERSION, decode
from smmufuzz.fuzz.fuzz import SHIPPED_CORPUS, seed_files
from smmufuzz.prog.load import header_fields, load_program
from smmufuzz.fuzz.oss_fuzz import export, fuzzer_name, packaged_targets, target_of
from smmufuzz.fuzz.packaged import REPRODUCER_MARK
from smmufuzz.prog.program import parse
from smmufuzz.exec.runner import run_program
from smmufuzz.variants.registry import KERNEL_TARGETS, TARGETS, VARIANTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANTED = "gather:virtio"            # holds gather:skip-empty:virtio, which libFuzzer finds in a few thousand runs
CORRECT = "gather-correct:virtio"


def test_every_target_but_the_kernel_c_ones_has_a_reversible_file_safe_fuzzer_name():
    names = [fuzzer_name(t) for t in packaged_targets()]
    assert set(packaged_targets()) == set(TARGETS) and not set(KERNEL_TARGETS) & set(packaged_targets())
    assert len(set(names)) == len(names)
    for t, n in zip(packaged_targets(), names):
        assert re.fullmatch(r"[a-z0-9_]+_fuzzer", n, re.I) and target_of(n) == t
    assert fuzzer_name("gather:arm-smmu-v3") == "gather__arm_smmu_v3_fuzzer"


def _dict_tokens(path) -> dict[str, bytes]:
    """A libFuzzer dictionary's tokens, unescaped as libFuzzer reads them (\\xNN, \\\\, \\")."""
    out = {}
    for ln in open(path).read().splitlines():
        m = re.fullmatch(r'(\w+)="((?:[^"\\]|\\x[0-9a-f]{2}|\\\\|\\")*)"', ln)
        assert m, ln
        out[m.group(1)] = re.sub(rb"\\x([0-9a-f]{2})|\\(.)", lambda b: bytes([int(b.group(1), 16)]) if b.group(1)
                                 else b.group(2), m.group(2).encode())
    return out


def test_export_writes_a_standalone_fuzzer_its_seed_corpus_dictionary_and_options(tmp_path, capsys):
    out = tmp_path / "fuzzers"
    assert main(["oss-fuzz", "export", "--out", str(out), "--target", PLANTED, "--target", "invs"]) == 0
    printed = capsys.readouterr().out
    for target in (PLANTED, "invs"):
        name = fuzzer_name(target)
        assert re.search(rf"^{name}\s+{re.escape(target)}\s+\d+ seed input", printed, re.M)
        src = out / f"{name}.py"
        # importable on its own (nothing runs at import), and what OSS-Fuzz looks for in a Python fuzzer
        spec = importlib.util.spec_from_file_location(name, src)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.TARGET == target and callable(mod.main)
        text = src.read_text()
        assert "atheris.Setup(sys.argv," in text and "atheris.Fuzz()" in text and "import_instrumented()" in text
        assert os.stat(src).st_mode & stat.S_IXUSR

        # the seed corpus: the campaign's text seeds for the target, as fuzzer bytes, but for those that
        # already give a finding on it
        variants = TARGETS[target]
        with zipfile.ZipFile(out / f"{name}_seed_corpus.zip") as z:
            zipped = [decode(z.read(m)) for m in z.namelist()]
        corpus = [load_program(p)[0] for p in seed_files(SHIPPED_CORPUS, target, variants)]
        clean = [p for p in corpus if not run_program(p, variants).findings]
        assert zipped and sorted(map(str, zipped)) == sorted(map(str, clean))
        if target == PLANTED:
            assert len(clean) < len(corpus)     # the regressions of the planted bug are left out

        tokens = _dict_tokens(out / f"{name}.dict")
        assert tokens["header_4K_s1_coherent"][:2] == bytes([FORMAT_MAGIC, FORMAT_VERSION])
        assert decode(tokens["header_64K_s2_noncoherent"]).config.pg_shift == 16
        assert int.from_bytes(tokens["raw_4K_l2_block"][1:], "little") == 2 << 20
        assert int.from_bytes(tokens["raw_4K_l1_block"][1:], "little") == 1 << 30
        assert any(k.startswith("op_map") for k in tokens) and any(k.startswith("race1_") for k in tokens)
        opts = (out / f"{name}.options").read_text().splitlines()
        assert opts[0] == "[libfuzzer]" and "max_len = 600" in opts
        assert ("use_counters = 0" in opts) == (target == "invs")      # as a campaign runs seed-002 targets


@pytest.mark.parametrize("target,why", [("no-such-target", "unknown target 'no-such-target'"),
                                        ("kc-diff", "kc-diff is a kernel-C target")])
def test_export_of_a_bad_target_is_a_one_line_error_and_writes_nothing(tmp_path, target, why):
    out = tmp_path / "fuzzers"
    p = subprocess.run([sys.executable, "-m", "smmufuzz.cli", "oss-fuzz", "export", "--out", str(out),
                        "--target", "smmuv3", "--target", target], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"smmufuzz: error: {why}")
    assert not out.exists()


def test_export_refuses_a_name_that_would_not_map_back():
    with pytest.raises(ValueError, match="no reversible fuzzer name"):
        export("/nonexistent", ["gather:arm_smmu"], SHIPPED_CORPUS)


# --- the ClusterFuzzLite build, outside Docker ---

def _pyinstaller() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "pyinstaller")
    return here if os.path.exists(here) else shutil.which("pyinstaller")


def _stats(log: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"stat::(\w+):\s*(\d+)", log)}


def _done_line(log: str) -> str:
    return re.search(r"^#\d+\s+DONE\s+(cov: .*?) exec/s", log, re.M).group(1)


@pytest.mark.slow
@pytest.mark.skipif(_pyinstaller() is None, reason="pyinstaller is not installed (pip install -e '.[test]')")
def test_build_sh_packages_fuzzers_that_run_and_one_finds_its_planted_bug(tmp_path):
    src, out, work, bin_dir = (tmp_path / d for d in ("src", "out", "work", "bin"))
    for d in (src, out, work, bin_dir):
        d.mkdir()
    # the image's tools: compile_python_fuzzer (the stand-in), and a pip3 that records instead of installing
    # (this interpreter already imports this checkout; installing would replace that in a shared environment)
    os.symlink(os.path.join(ROOT, "scripts", "compile_python_fuzzer"), bin_dir / "compile_python_fuzzer")
    (bin_dir / "pip3").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/pip3.log\n')
    os.chmod(bin_dir / "pip3", 0o755)
    env = dict(os.environ, SRC=str(src), OUT=str(out), WORK=str(work), SANITIZER="address",
               FUZZING_ENGINE="libfuzzer", FUZZING_LANGUAGE="python", ARCHITECTURE="x86_64",
               PATH=os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable), os.environ["PATH"]]),
               SMMUFUZZ_CFL_TARGETS=f"{CORRECT} {PLANTED}")
    t0 = time.time()
    p = subprocess.run(["bash", os.path.join(ROOT, ".clusterfuzzlite", "build.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    build_s = time.time() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (tmp_path / "pip3.log").read_text().split() == ["install", ROOT]

    names = [fuzzer_name(t) for t in (CORRECT, PLANTED)]
    for name in names:
        launcher, package = out / name, out / f"{name}.pkg"
        assert os.stat(launcher).st_mode & stat.S_IXUSR and not os.stat(package).st_mode & stat.S_IXUSR
        assert "LLVMFuzzerTestOneInput" in launcher.read_text()
        for extra in ("_seed_corpus.zip", ".dict", ".options"):
            assert (out / f"{name}{extra}").is_file()
    assert sorted(os.path.basename(f) for f in glob.glob(str(out / "*")) if os.access(f, os.X_OK)) == sorted(names)

    def run(name: str, *args: str, cwd=tmp_path) -> tuple[subprocess.CompletedProcess, float]:
        # the launcher runs as a fuzzing service runs it: this checkout out of reach (no PYTHONPATH, elsewhere)
        t = time.time()
        r = subprocess.run([str(out / name), f"-dict={out / name}.dict", "-max_len=600", "-print_final_stats=1",
                            *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        return r, time.time() - t

    # the correct target: its seed corpus, then 300 runs, exit 0; the same coverage as the script under Python
    correct = names[0]
    corpus = tmp_path / "corpus"
    with zipfile.ZipFile(out / f"{correct}_seed_corpus.zip") as z:
        z.extractall(corpus)
    seeds = len(os.listdir(corpus))
    r, secs = run(correct, str(corpus), "-runs=300", "-seed=1")
    assert r.returncode == 0 and "Done 300 runs" in r.stderr, r.stderr[-3000:]
    assert "Instrumenting smmufuzz.variants" in r.stderr
    fresh = tmp_path / "corpus2"
    with zipfile.ZipFile(out / f"{correct}_seed_corpus.zip") as z:
        z.extractall(fresh)
    script = subprocess.run([sys.executable, str(work / "smmufuzz-fuzzers" / f"{correct}.py"), str(fresh),
                             f"-dict={out / correct}.dict", "-max_len=600", "-runs=300", "-seed=1"],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert _done_line(r.stderr) == _done_line(script.stderr)
    # ClusterFuzzLite's prune mode: -merge=1 into an empty directory keeps inputs, adds none of its own
    pruned = tmp_path / "pruned"
    pruned.mkdir()
    m, _ = run(correct, "-merge=1", str(pruned), str(corpus))
    assert m.returncode == 0 and 0 < len(os.listdir(pruned)) <= len(os.listdir(corpus)), m.stderr[-2000:]

    # the planted bug, from an empty corpus: a crash, libFuzzer's crash input, and a reproducer that parses
    empty = tmp_path / "empty"
    empty.mkdir()
    c, crash_s = run(names[1], str(empty), "-runs=100000", "-seed=1", f"-artifact_prefix={tmp_path}/")
    crashes = glob.glob(str(tmp_path / "crash-*"))
    assert c.returncode == 77 and len(crashes) == 1, c.stderr[-3000:]     # libFuzzer's crash exit status
    # atheris prints the exception (the reproducer) on standard output, libFuzzer its report on standard error
    assert REPRODUCER_MARK in c.stdout, c.stdout[-3000:]
    block = c.stdout.split(REPRODUCER_MARK + "\n", 1)[1].split("\n\n", 1)[0]
    header, prog = header_fields(block), parse(block)
    assert header["target"] == PLANTED
    assert VARIANTS[header["variant"]].buggy and header["variant"] in TARGETS[PLANTED]
    found = run_program(prog, TARGETS[PLANTED]).findings
    assert set(header["expect"].split(",")) == {f.kind for f in found}
    crash_prog, _ = load_program(crashes[0])
    assert run_program(crash_prog, TARGETS[PLANTED]).findings        # the raw input replays on the target
    runs = _stats(c.stderr).get("number_of_executed_units")
    print(f"\nbuild.sh: {build_s:.0f} s for 2 fuzzers; {correct}.pkg {os.path.getsize(out / f'{correct}.pkg') >> 20} MiB; "
          f"300 runs over {seeds} seeds in {secs:.1f} s; planted bug after {runs} runs in {crash_s:.1f} s")
