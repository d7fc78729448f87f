#!/usr/bin/env python3
"""Mutation testing of the reference SMMU (smmufuzz/reference/) with mutmut, outside the repository.

Copies the working tree (tracked and untracked, not ignored files) to a scratch directory, configures
mutmut there to mutate the chosen reference modules and to run the chosen tests (default: the
emulator's own command tests, `-m emulator`), runs it, and prints per module the mutants killed,
survived, not run by any selected test ("no tests") and timed out, then every survivor with its
location and change. mutmut's `mutants/` and caches stay in the scratch directory.

    pip install mutmut          # or: pip install --target DIR mutmut, then --mutmut-path DIR
    python scripts/mutate_reference.py                      # smmu.py, cmdq.py, ste.py, lpae.py, memory.py
    python scripts/mutate_reference.py --tests tests/test_kernel_math.py --select ""
"""

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = "smmufuzz/reference"
DEFAULT_MODULES = ["smmu.py", "cmdq.py", "ste.py", "lpae.py", "memory.py"]


def copy_tree(dst: str) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in files:
        if not f or not os.path.isfile(os.path.join(ROOT, f)):
            continue
        os.makedirs(os.path.join(dst, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dst, f))


def configure(dst: str, modules: list[str], tests: list[str], select: list[str]) -> None:
    others = sorted(f for f in os.listdir(os.path.join(ROOT, REF)) if f.endswith(".py") and f not in modules)
    q = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"
    with open(os.path.join(dst, "pyproject.toml"), "a") as f:
        f.write("\n[tool.mutmut]\n"
                f"source_paths = [\"{REF}/\"]\n"
                f"do_not_mutate = {q(f'{REF}/{m}' for m in others)}\n"
                f"pytest_add_cli_args = {q(['-p', 'no:cacheprovider', '-x', '-q'] + select)}\n"
                f"pytest_add_cli_args_test_selection = {q(tests)}\n")


def mutmut(dst: str, env: dict, *args: str, capture: bool = True) -> str:
    r = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=dst, env=env, text=True,
                       capture_output=capture)
    return r.stdout if capture else ""


class Locator:
    """Where a mutant is: mutmut keeps each mutant as a function next to the original in mutants/; the
    first line where their bodies differ, found in the original module, gives file:line and the change."""

    def __init__(self, dst: str):
        self.dst = dst
        self.mods: dict[str, tuple[dict, list[str]]] = {}

    def _module(self, mod: str):
        if mod not in self.mods:
            rel = os.path.join(*mod.split(".")) + ".py"
            src = open(os.path.join(self.dst, "mutants", rel)).read().splitlines()
            bodies = {}
            for n in ast.walk(ast.parse("\n".join(src))):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    head = src[n.lineno - 1].replace(n.name, n.name.rsplit("__mutmut_", 1)[0].split("ǁ")[-1], 1)
                    bodies[n.name] = [head] + src[n.lineno:n.end_lineno]
            orig = open(os.path.join(self.dst, rel)).read()
            spans = {}                                   # (class or "", function) -> (first, last) line
            tree = ast.parse(orig)
            for n in tree.body:
                for m in ([n] if isinstance(n, ast.FunctionDef) else n.body if isinstance(n, ast.ClassDef) else []):
                    if isinstance(m, ast.FunctionDef):
                        spans[(n.name if isinstance(n, ast.ClassDef) else "", m.name)] = (m.lineno, m.end_lineno)
            self.mods[mod] = (bodies, orig.splitlines(), spans)
        return self.mods[mod]

    def __call__(self, name: str) -> str:
        mod, fn = name.split(".x", 1)
        fn = "x" + fn
        bodies, orig, spans = self._module(mod)
        base = fn.rsplit("__mutmut_", 1)[0]
        parts = base.split("ǁ")                          # xǁClassǁmethod or x_function
        first, last = spans.get((parts[1], parts[2]) if len(parts) == 3 else ("", base[2:]), (1, len(orig)))
        old = new = ""
        for ln in difflib.unified_diff(bodies.get(base + "__mutmut_orig", []), bodies.get(fn, []), lineterm="", n=0):
            if ln.startswith("-") and not ln.startswith("---") and not old:
                old = ln[1:].strip()
            elif ln.startswith("+") and not ln.startswith("+++") and not new:
                new = ln[1:].strip()
        line = next((i + 1 for i in range(first - 1, last) if old and orig[i].strip() == old), first)
        return f"{mod.replace('.', '/')}.py:{line}: {base.split('ǁ')[-1].removeprefix('x_')}: -{old} / +{new}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", default=",".join(DEFAULT_MODULES), help="reference modules to mutate")
    ap.add_argument("--tests", default="tests/test_emulator_commands.py", help="test files (comma-separated)")
    ap.add_argument("--select", default="-m emulator", help="extra pytest selection arguments")
    ap.add_argument("--mutmut-path", default="", help="a directory holding mutmut (pip install --target)")
    ap.add_argument("--workdir", default="", help="scratch directory (default: a new temporary one, kept)")
    ap.add_argument("--children", default="1", help="mutmut --max-children (2 cores are shared: 1)")
    ap.add_argument("--json", default="", help="write the per-mutant results here")
    ap.add_argument("--report-only", action="store_true", help="only report on an earlier run in --workdir")
    a = ap.parse_args()
    modules = [m for m in a.modules.split(",") if m]
    dst = a.workdir or tempfile.mkdtemp(prefix="smmufuzz-mutants-")
    env = dict(os.environ)
    env["PYTHONPATH"] = a.mutmut_path          # the copy is imported from its mutants/ dir, not the install
    if not a.report_only:
        copy_tree(dst)
        configure(dst, modules, [t for t in a.tests.split(",") if t], a.select.split())
        print(f"mutating {', '.join(modules)} in {dst}; tests: {a.tests} {a.select}", file=sys.stderr)
        mutmut(dst, env, "run", "--max-children", a.children, capture=False)
    status = {}
    for ln in mutmut(dst, env, "results", "--all", "true").splitlines():
        if ": " in ln:
            name, st = ln.strip().rsplit(": ", 1)
            status[name] = st
    per = defaultdict(Counter)
    for name, st in status.items():
        mod = name.split(".xǁ")[0].split(".x_")[0].rsplit(".", 1)[-1] if ".x" in name else name
        per[mod][st] += 1
    total = Counter()
    print(f"{'module':<10} {'killed':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} {'score':>7}")
    for mod in sorted(per):
        c = per[mod]
        total.update(c)
        k = c["killed"] + c["timeout"]
        n = sum(c.values())
        print(f"{mod:<10} {c['killed']:>7} {c['survived']:>9} {c['no tests']:>9} {c['timeout']:>8} "
              f"{100 * k / max(n, 1):6.1f}%")
    k = total["killed"] + total["timeout"]
    n = sum(total.values())
    run = n - total["no tests"]
    print(f"{'all':<10} {total['killed']:>7} {total['survived']:>9} {total['no tests']:>9} {total['timeout']:>8} "
          f"{100 * k / max(n, 1):6.1f}%   (of mutants the tests run: {100 * k / max(run, 1):.1f}%)")
    survivors = sorted(n for n, st in status.items() if st in ("survived", "no tests"))
    out = {}
    where = Locator(dst)
    print("\nsurvivors (file:line: function: change) [status]:")
    for name in survivors:
        loc = where(name)
        out[name] = {"status": status[name], "where": loc}
        print(f"  {loc}  [{status[name]}]  {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"status": status, "survivors": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
