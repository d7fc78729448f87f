"""One atheris/libFuzzer run on one target: the executable wrapper, the op dictionary, encoded seeds, the command
line, and `fuzz_target()` (a single run with its findings; campaigns in campaign.py build on the same parts)."""

import glob
import os
import re
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ..prog.codec import encode
from .lifeline import die_with_parent
from ..prog.load import LoadError, header_fields, load_program
from ..prog.program import OS_KINDS, Anchor, Config, Op, Program
from .minimize import minimize, reproducer_text
from .fuzz_target import explores
from ..exec.runner import Finding, run_program

MAX_LEN = 600
# this checkout's smmufuzz comes first in the wrapper's sys.path (not whatever an editable install points at);
# the cwd follows it, for --load plugin modules
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class FuzzResult:
    target: str
    seed: int
    seconds: float
    execs: int = 0
    exec_per_sec: float = 0.0
    corpus_size: int = 0
    findings: list[tuple[str, Finding, Program]] = field(default_factory=list)
    returncode: int = 0
    log_path: str = ""


def write_wrapper(run_dir: str, variants: list[str], policy: str, plugins: tuple = (),
                  mutator: str = "default") -> str:
    """An executable script libFuzzer can re-execute as argv[0] (its child modes go through sh)."""
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, "fuzz-" + "+".join(variants) + ("" if mutator == "default" else "-" + mutator))
    with open(path, "w") as f:
        f.write(f"#!{sys.executable}\n"
                "import sys\n"
                f"sys.path[:0] = [{PACKAGE_ROOT!r}, {os.getcwd()!r}]\n"
                "from smmufuzz.fuzz.fuzz_target import main\n"
                f"main({variants!r}, {policy!r}, sys.argv, {tuple(plugins)!r}, {mutator!r})\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def dict_lines() -> list[str]:
    """libFuzzer dictionary entries: one token per op record (opcode byte + typical field bytes), the same op
    issued from cpu1 and raced, opcode bytes alone, context and preemption records."""
    from ..prog.codec import HEADER_LEN, KIND_CODE
    from ..prog.ops import OP_KINDS
    lines = []
    cfg = Config()
    samples = {k.kind: k.example() for k in OP_KINDS}
    for kind, args in samples.items():
        b = encode(Program(cfg, (Op("attach", (1, 1)), Op(kind, args))))[HEADER_LEN + 3:]
        lines.append(f'op_{kind}="' + "".join(f"\\x{x:02x}" for x in b) + '"')
        if kind in OS_KINDS:    # the same op issued by cpu1 (then back to cpu0): one insertion makes a race
            args1 = (args[0], 1) if kind == "attach" else args
            b1 = encode(Program(cfg, (Op("attach", (1, 1)), Op(kind, args1, 1), Op("flush_all", (0,)))))[HEADER_LEN + 3:-2]
            lines.append(f'cpu1_{kind}="' + "".join(f"\\x{x:02x}" for x in b1) + '"')
            for n in (1, 2, 3, 5):   # ... and preempting the op before it after n steps: a race in one insertion
                lines.append(f'race{n}_{kind}="\\x{0xF5:02x}\\x{n:02x}' + "".join(f"\\x{x:02x}" for x in b1) + '"')
        lines.append(f'code_{kind}="\\x{KIND_CODE[kind]:02x}"')
    for c in range(4):          # issuing contexts and preemptions (codec: OP_CTX, OP_SWITCH)
        lines.append(f'ctx_{c}="\\x{0xF0 + c:02x}"')
        for n in (1, 2, 3, 5, 8):
            lines.append(f'preempt_{c}_{n}="\\x{0xF4 + c:02x}\\x{n:02x}"')
    return lines


def write_dict(run_dir: str) -> str:
    """The campaign's libFuzzer dictionary (dict_lines) as run_dir/ops.dict."""
    path = os.path.join(run_dir, "ops.dict")
    with open(path, "w") as f:
        f.write("\n".join(dict_lines()) + "\n")
    return path


SHIPPED_CORPUS = os.path.join(PACKAGE_ROOT, "corpus")   # the seeds and regressions that come with this checkout


def target_dirname(target: str) -> str:
    """Directory name under corpus/regressions/ (as `smmufuzz minimize` names it)."""
    return target.replace(":", "_").replace(",", "+")


def _families(target: str) -> set[str]:
    from ..variants.registry import UnknownName, target as resolve, variant
    try:
        return {variant(v).family for v in resolve(target)}
    except UnknownName:
        return set()


def seed_files(corpus_root: str, target: str, variants: list[str]) -> list[str]:
    """The text programs a campaign on `target` starts from, from the shipped corpus (this checkout's
    `corpus/`) and from the corpus root (without repeats): every hand-written seed (`seeds/`), every
    reproducer in the target's own `regressions/<target>/`, and every other reproducer under `regressions/`
    whose header's target shares a variant family with `variants`."""
    from ..variants.registry import variant
    families = {variant(v).family for v in variants}
    own = {target_dirname(target), target}
    out: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    for root in (SHIPPED_CORPUS, corpus_root):
        for p in sorted(glob.glob(os.path.join(root, "seeds", "**", "*.txt"), recursive=True)):
            add(p)
        regs = os.path.join(root, "regressions")
        for p in sorted(glob.glob(os.path.join(regs, "**", "*.txt"), recursive=True)):
            if os.path.relpath(p, regs).split(os.sep)[0] in own:
                add(p)
                continue
            try:
                with open(p, errors="replace") as f:
                    header = header_fields(f.read(4096))
            except OSError:
                continue
            if header.get("target") and _families(header["target"]) & families:
                add(p)
    return out


def _steps(prog: Program, header: dict) -> Program:
    """A text seed's switches as step counts: named points (preempt(at=...)) resolved on the variant of its
    `# variant:` line, where its finding was made."""
    from ..exec.anchors import resolve_anchors
    if not any(isinstance(a, Anchor) for _i, a, _c in prog.schedule):
        return prog
    variant = header.get("variant", "").split("+")[0]
    if not variant:
        raise ValueError("its preempt(at=...) lines name preemption points, and it has no '# variant:' line "
                         "to count their steps on")
    try:
        steps = resolve_anchors(prog, variant)
    except KeyError:
        raise ValueError(f"its '# variant: {variant}' names no known variant") from None
    if steps is None:
        raise ValueError(f"a preempt(at=...) point is not passed on {variant}")
    return steps


def seed_inputs(seeds: list[str], out_dir: str, keep=None, problems: list[str] | None = None) -> int:
    """Encode hand-written text seeds (files, or directories searched for *.txt) into fuzzer inputs. A seed
    that cannot be read or parsed is reported (printed, or appended to `problems`) and skipped, never
    deleted; `keep(prog, path)` can refuse a seed. Returns how many inputs were written."""
    os.makedirs(out_dir, exist_ok=True)
    n = 0
    for d in seeds:
        paths = sorted(glob.glob(os.path.join(d, "**", "*.txt"), recursive=True)) if os.path.isdir(d) else [d]
        for p in paths:
            try:
                prog, header = load_program(p)
                data = encode(_steps(prog, header))
            except (LoadError, ValueError) as e:
                msg = f"skipping seed {p}: {e}"
                if problems is None:
                    print(f"smmufuzz: {msg}", file=sys.stderr)
                else:
                    problems.append(msg)
                continue
            if keep is not None and not keep(prog, p):
                continue
            stem = os.path.join(out_dir, os.path.basename(p)[:-4])
            out, k = stem + ".bin", 1
            while os.path.exists(out):          # the same name in two directories
                k += 1
                out = f"{stem}~{k}.bin"
            with open(out, "wb") as f:
                f.write(data)
            n += 1
    return n


def libfuzzer_args(wrapper: str, dirs: list[str], seconds: int, seed: int, crash_dir: str, dict_path: str,
                   extra: list[str], variants: list[str] = ()) -> list[str]:
    """The command line of one libFuzzer run: the first dir is the corpus it writes to. For a target whose
    variants run step by step (seed 002), -use_counters=0: an edge counts once, not per hit-count bucket
    (loop trip counts over array entries and scheduler steps made one new input every ~12 runs, a corpus
    of 1,300 programs in 4 minutes, in which the few that reach a rare state were rarely mutated)."""
    counters = ["-use_counters=0"] if variants and explores(list(variants)) else []
    return [wrapper, *dirs, f"-max_total_time={seconds}", f"-seed={seed}", f"-artifact_prefix={crash_dir}/",
            f"-dict={dict_path}", f"-max_len={MAX_LEN}", "-print_final_stats=1", "-timeout=120",
            "-rss_limit_mb=4096", *counters, *extra]


_STAT = re.compile(r"stat::(\w+):\s*(\d+)")


def fuzz_target(target: str, variants: list[str], seconds: int, seed: int, corpus_root: str,
                use_seeds: bool, policy: str, extra: list[str], quiet: bool = False,
                plugins: tuple = (), mutator: str = "default") -> FuzzResult:
    run_dir = os.path.join(corpus_root, ".run")
    corpus = os.path.join(corpus_root, "fuzz", target)
    crashes = os.path.join(corpus_root, "crashes", target)
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    wrapper = write_wrapper(run_dir, variants, policy, plugins, mutator)
    dict_path = write_dict(run_dir)
    dirs = [corpus]
    if use_seeds:
        seed_dir = os.path.join(run_dir, "seeds-" + target_dirname(target))
        for old in os.listdir(seed_dir) if os.path.isdir(seed_dir) else ():
            os.unlink(os.path.join(seed_dir, old))
        if seed_inputs(seed_files(corpus_root, target, variants), seed_dir,
                       keep=lambda p, _path: not run_program(p, variants, policy).findings):
            dirs.append(seed_dir)
    before = set(os.listdir(crashes))
    args = libfuzzer_args(wrapper, dirs, seconds, seed, crashes, dict_path, extra, variants)
    log_path = os.path.join(run_dir, f"{target}.log")
    t0 = time.time()
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=die_with_parent())      # (dies with us: lifeline.py)
            rc = proc.returncode
        except KeyboardInterrupt:
            rc = 130
    res = FuzzResult(target, seed, time.time() - t0, returncode=rc, log_path=log_path)
    with open(log_path, errors="replace") as f:
        text = f.read()
    stats = dict((k, int(v)) for k, v in _STAT.findall(text))
    res.execs = stats.get("number_of_executed_units", 0)
    res.exec_per_sec = stats.get("average_exec_per_sec", 0)
    res.corpus_size = len(os.listdir(corpus))
    for name in sorted(set(os.listdir(crashes)) - before):
        path = os.path.join(crashes, name)
        if name.endswith(".txt"):
            continue
        prog, _ = load_program(path)
        rr = run_program(prog, variants, policy)
        if rr.findings:
            try:        # op-level minimisation keeping the signature; the raw input stays beside it
                small, fnd = minimize(prog, variants, policy, budget=400)
            except ValueError:
                small, fnd = prog, rr.findings[0]
            res.findings.append((path, fnd, small))
            with open(path + ".txt", "w") as f:
                f.write(reproducer_text(small, fnd, target, f"smmufuzz fuzz {target} --seed {seed} "
                                        f"(minimised from {len(prog.ops)} ops)", variants=variants, policy=policy))
    if rc not in (0, 1, 77, 130) and not res.findings and not quiet:
        tail = "\n".join(text.splitlines()[-15:])
        print(f"smmufuzz: libFuzzer exited with {rc}; last lines of {log_path}:\n{tail}", file=sys.stderr)
    return res
