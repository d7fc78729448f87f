#!/usr/bin/env python3
"""Do this checkout and another commit give the same verdicts? (issue 16: a faster core must not change one.)

    python scripts/same_verdicts.py --baseline REF [--random N] [--seed S]

Programs: every text program under corpus/ and tests/programs/ (on the target its `# target:` header names,
else on the default targets), the speed workloads (scripts/speed_workloads/, on their targets), and N random
programs from the seeded decoder on each default target and on invs. Each checkout runs them all in a child
process (its own parser, runner and variants) and prints, per program and target, every finding's text and
every variant's API return values; the parent compares the two outputs line by line and prints the programs
whose verdicts differ. Also: --codec N random byte strings decoded by both checkouts, which must give the same
programs (the meaning of saved raw corpora), each re-encoding decoding back to its program. Exit 1 on any difference.
"""

import argparse
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from _layout import layout  # noqa: E402  (scripts/: either package layout)
from speed import SEP, checkout, workload_path  # noqa: E402

DEFAULT = ("smmuv3", "pte-sync", "gather:arm-smmu", "gather:virtio", "pt-fq", "invs")


def jobs(n_random: int, seed: int) -> list[tuple[str, str, str]]:
    """(name, program text, target) for every program to compare; built in the parent with this checkout."""
    sys.path.insert(0, ROOT)
    decode = layout("prog.codec").decode
    header_fields = layout("prog.load").header_fields
    out = []
    for top in ("corpus", os.path.join("tests", "programs")):
        for d, _sub, files in sorted(os.walk(os.path.join(ROOT, top))):
            for f in sorted(files):
                if not f.endswith(".txt"):
                    continue
                path = os.path.join(d, f)
                text = open(path).read()
                t = header_fields(text).get("target")
                for target in ([t] if t else DEFAULT[:4]):
                    out.append((os.path.relpath(path, ROOT), text, target))
    for target in ("smmuv3", "pte-sync", "gather:arm-smmu", "pt-fq", "invs"):
        with gzip.open(workload_path(target), "rt") as fh:
            for k, text in enumerate(fh.read().split(SEP)):
                out.append((f"speed:{target}#{k}", text, target))
    for target in DEFAULT:
        rng = random.Random(f"{seed}:{target}")
        for k in range(n_random):
            data = rng.randbytes(rng.randrange(2, 600))
            p = decode(b"\0" + data[1:] if data[0] == 0xA9 else data)    # format 1: both checkouts read it
            out.append((f"random:{target}#{k}", p.text(), target))
    return out


def child(job_file: str) -> None:
    parse = layout("prog.program").parse
    run_program = layout("exec.runner").run_program
    from smmufuzz.variants.registry import target as target_variants
    import tests.broken_variants  # noqa: F401  (test-only variants some corpus files name)
    for line in open(job_file):
        name, text, target = json.loads(line)
        try:
            variants = target_variants(target)
        except Exception as e:                 # a target this checkout does not have
            print(json.dumps([name, target, f"no target: {e}"]))
            continue
        res = run_program(parse(text), variants, "max-cache")
        texts = [_neutral(f.text() if f.kind not in ("HANG", "CRASH") else f.text().split("\n  witness:")[0])
                 for f in res.findings]     # a HANG's or CRASH's witness is a Python traceback of this checkout
        verdict = texts + [f"{r.name}: {r.returns!r}" for r in res.runs]
        print(json.dumps([name, target, hashlib.sha1("\n".join(verdict).encode()).hexdigest(), texts]), flush=True)


def _neutral(text: str) -> str:
    """A finding's text without what differs between two checkouts of the same verdict: the checkout's path
    and line numbers in a traceback, and object ids (a lock's address in a livelock message)."""
    import re
    root = os.environ["PYTHONPATH"].split(os.pathsep)[0]
    text = re.sub(r"\b\d{12,}\b", "<id>", text.replace(root, "<checkout>"))
    return re.sub(r"(<checkout>\S*\", line )\d+", r"\1N", text)


def codec_child(n: int, seed: int) -> None:
    """Per random byte string: the program it decodes to (text), and whether its re-encoding decodes back
    to it (the bytes themselves differ from format 2 on: encode() writes the version byte)."""
    decode = layout("prog.codec").decode
    encode = layout("prog.codec").encode
    rng = random.Random(seed)
    for _ in range(n):
        data = rng.randbytes(rng.randrange(2, 700))
        if data[0] == 0xA9:               # format 2's magic byte: such an input changed meaning on purpose
            data = b"\0" + data[1:]
        p = decode(data)
        print(hashlib.sha1((p.text() + str(decode(encode(p)) == p)).encode()).hexdigest())


def codec_same(code: str, n: int, seed: int) -> int:
    """How many of n random byte strings decode (and re-encode) differently here and in `code`."""
    outs = []
    for c in (code, ROOT):
        env = dict(os.environ, PYTHONPATH=c + os.pathsep + ROOT, PYTHONHASHSEED="0")
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--codec-child", str(n), str(seed)],
                           env=env, capture_output=True, text=True, cwd=c)
        if p.returncode:
            sys.exit(f"same_verdicts.py: the codec run in {c} failed:\n{p.stderr[-3000:]}")
        outs.append(p.stdout.split())
    return sum(1 for a, b in zip(*outs) if a != b) + abs(len(outs[0]) - len(outs[1]))


def run(code: str, job_file: str) -> dict:
    env = dict(os.environ, PYTHONPATH=code + os.pathsep + ROOT, PYTHONHASHSEED="0")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", job_file], env=env,
                       capture_output=True, text=True, cwd=code)
    if p.returncode:
        sys.exit(f"same_verdicts.py: the run in {code} failed:\n{p.stderr[-3000:]}")
    out = {}
    for line in p.stdout.splitlines():
        rec = json.loads(line)
        out[(rec[0], rec[1])] = rec[2:]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline")
    ap.add_argument("--random", type=int, default=300, help="random programs per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--codec", type=int, default=20000, help="random byte strings whose decoding is compared")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--codec-child", nargs=2, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.codec_child:
        sys.path.insert(0, os.environ["PYTHONPATH"].split(os.pathsep)[0])
        codec_child(*a.codec_child)
        return 0
    if a.child:
        sys.path.insert(0, os.environ["PYTHONPATH"].split(os.pathsep)[0])
        child(a.child)
        return 0
    if not a.baseline:
        ap.error("--baseline REF is required")
    bad = codec_same(checkout(a.baseline), a.codec, a.seed)
    print(f"{a.codec} random byte strings: {bad} decode to a different program or re-encode differently")
    js = jobs(a.random, a.seed)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for j in js:
            f.write(json.dumps(j) + "\n")
    base = run(checkout(a.baseline), f.name)
    new = run(ROOT, f.name)
    os.unlink(f.name)
    diff = [k for k in base if base[k][0] != new.get(k, [None])[0]]
    found = sum(1 for v in new.values() if len(v) > 1 and v[1])
    print(f"{len(js)} program runs ({found} with findings): {len(diff)} with a different verdict or return value")
    for k in diff[:20]:
        print(f"  {k[0]} on {k[1]}:\n    base: {base[k][1:]}\n    new:  {new.get(k, ['-'])[1:]}")
    return 1 if diff or bad else 0


if __name__ == "__main__":
    sys.exit(main())
