"""`smmufuzz corpus merge`: the libFuzzer corpora (`fuzz/<target>/`) of several corpus roots (other machines, CI
jobs) into one, by libFuzzer's own `-merge=1` run through the target's fuzz wrapper (fuzz.py), so that coverage
is judged as while fuzzing (the campaign workers' wrapper and coverage options, `-use_counters=0` on seed-002
targets included): the destination keeps all its inputs, and a source input is added only
if it reaches an edge or feature that the destination's inputs and those added before it do not.

As in a campaign's workers, an input whose findings are all known (stored in the destination's or a source's
findings store, none UNEXPECTED: tolerated.py) runs like any other and is judged by its coverage: campaigns on
targets with buggy variants keep many such inputs. An input with any other finding is not added: libFuzzer writes
it to INTO/crashes/<target>/ and goes on without it, and the next campaign on INTO triages it (`smmufuzz
findings merge` carries the sources' findings themselves).
"""

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .corpus_lock import CorpusLock
from .findings_store import FindingsStore
from .fuzz import MAX_LEN, write_wrapper
from .fuzz_target import explores
from .lifeline import campaign_env, die_with_parent
from ..prog.load import LoadError
from .tolerated import HITS_ENV, KNOWN_ENV, write_known

_NEW = re.compile(r"MERGE-OUTER: (\d+) new files with (\d+) new features added(?:; (\d+) new coverage edges)?")


@dataclass
class TargetMerge:
    target: str
    sources: list[str]          # the sources' fuzz/<target> directories merged
    offered: int                # inputs in them
    before: int                 # inputs in the destination's fuzz/<target> before
    after: int
    new_features: int
    new_edges: int
    findings: int               # source inputs that gave a finding: left out, saved under crashes/<target>/
    log: str


def _inputs(d: str) -> list[str]:
    """The corpus files of a libFuzzer corpus directory (dot-files are not inputs)."""
    try:
        return [n for n in os.listdir(d) if not n.startswith(".") and os.path.isfile(os.path.join(d, n))]
    except OSError:
        return []


def check_sources(sources: list[str], into: str) -> None:
    """Every source a corpus root (with a fuzz/ directory) other than the destination: else a one-line error."""
    for src in sources:
        if not os.path.isdir(src):
            raise LoadError(f"{src}: no such directory")
        if not os.path.isdir(os.path.join(src, "fuzz")):
            raise LoadError(f"{src}: not a corpus root (no fuzz/ directory; a campaign's --corpus holds "
                            f"fuzz/<target>/)")
        if os.path.realpath(src) == os.path.realpath(into):
            raise LoadError(f"{src}: is the destination (--into) itself")


def source_targets(sources: list[str]) -> list[str]:
    """Target names with a corpus directory in any source, in order of first appearance."""
    out: list[str] = []
    for src in sources:
        for name in sorted(os.listdir(os.path.join(src, "fuzz"))):
            if not name.startswith(".") and os.path.isdir(os.path.join(src, "fuzz", name)) and name not in out:
                out.append(name)
    return out


def merge_args(wrapper: str, dest: str, srcs: list[str], variants: list[str], artifacts: str,
               control_file: str) -> list[str]:
    """libFuzzer's merge command line, with the coverage options a campaign's workers fuzz with (fuzz.py)."""
    counters = ["-use_counters=0"] if explores(variants) else []
    return [wrapper, "-merge=1", f"-merge_control_file={control_file}", f"-artifact_prefix={artifacts}/",
            f"-max_len={MAX_LEN}", "-timeout=120", "-rss_limit_mb=4096", *counters, dest, *srcs]


def known_findings(roots: list[str]) -> list[tuple]:
    """The coarse signatures of every finding stored under these corpus roots (those without findings/ have none;
    nothing is written to them)."""
    out: list[tuple] = []
    for root in roots:
        if os.path.isdir(os.path.join(root, "findings")):
            out += FindingsStore(os.path.join(root, "findings")).coarse_signatures()
    return out


def merge_target(into: str, target: str, variants: list[str], sources: list[str], policy: str = "max-cache",
                 plugins: tuple = (), known: list[tuple] = ()) -> TargetMerge:
    """Merge the sources' fuzz/<target>/ into INTO/fuzz/<target>/ (created if need be) with libFuzzer -merge=1.
    Inputs that give a finding not in `known` (coarse signatures) are left out; libFuzzer writes them to
    INTO/crashes/<target>/, for the next campaign on INTO to triage."""
    dest = os.path.join(into, "fuzz", target)
    os.makedirs(dest, exist_ok=True)
    srcs = [d for d in (os.path.join(s, "fuzz", target) for s in sources) if os.path.isdir(d)]
    offered = sum(len(_inputs(d)) for d in srcs)
    before = len(_inputs(dest))
    run_dir = os.path.join(into, ".run")
    wrapper = write_wrapper(run_dir, variants, policy, plugins)
    crashes = os.path.join(into, "crashes", target)
    os.makedirs(crashes, exist_ok=True)
    crashed = set(os.listdir(crashes))
    log_path = os.path.join(run_dir, "merge-" + target.replace(":", "_").replace(",", "+") + ".log")
    with tempfile.TemporaryDirectory(prefix="smmufuzz-merge-") as tmp:
        args = merge_args(wrapper, dest, srcs, variants, crashes, os.path.join(tmp, "control"))
        env = dict(os.environ, **campaign_env())       # the merge's processes die with this one (lifeline.py)
        if known:                   # inputs giving only known findings are kept by coverage, as while fuzzing
            write_known(os.path.join(tmp, "known.json"), known)
            env.update({KNOWN_ENV: os.path.join(tmp, "known.json"), HITS_ENV: os.path.join(tmp, "tally.json")})
        with open(log_path, "w") as log:
            log.write("$ " + " ".join(args) + "\n")
            log.flush()
            rc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=die_with_parent()).returncode
    with open(log_path, errors="replace") as f:
        text = f.read()
    m = _NEW.findall(text)
    if rc != 0 or not m:
        tail = " | ".join(ln for ln in text.strip().splitlines()[-3:])
        raise LoadError(f"{target}: libFuzzer's merge failed (exit {rc}; log {log_path}): {tail[-300:]}")
    _files, feats, edges = m[-1]
    found = len(set(os.listdir(crashes)) - crashed)
    return TargetMerge(target, srcs, offered, before, len(_inputs(dest)), int(feats), int(edges or 0), found,
                       log_path)


def merge(sources: list[str], into: str, targets: list[tuple[str, list[str]]], policy: str = "max-cache",
          plugins: tuple = (), progress=None) -> list[TargetMerge]:
    """Each target's corpora from the sources into INTO, under INTO's corpus lock (no campaign runs on it
    meanwhile)."""
    check_sources(sources, into)
    os.makedirs(into, exist_ok=True)
    out = []
    with CorpusLock(into):
        known = known_findings([into, *sources])
        for name, variants in targets:
            r = merge_target(into, name, variants, sources, policy, plugins, known)
            out.append(r)
            if progress:
                progress(r)
    return out


def print_merge(r: TargetMerge, out=None) -> None:
    out = out or sys.stdout
    print(f"{r.target}: {r.before} + {r.after - r.before} of {r.offered} input(s) from {len(r.sources)} source(s) "
          f"= {r.after} ({r.new_features} new features, {r.new_edges} new edges; log {r.log})"
          + (f"; {r.findings} gave a finding not yet stored: left out, kept in crashes/{r.target}/ for the next "
             f"campaign to triage"
             if r.findings else ""), file=out, flush=True)
