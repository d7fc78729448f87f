"""`smmufuzz cov`: branch coverage of reference/ and variants/ over a corpus, replayed with one
coverage context per input; a per-module summary, an HTML report, and what a corpus newly covers
compared with saved coverage data.

The replay runs in a child interpreter that starts coverage before it imports the measured packages, so
their import-time lines (definitions, tables) count; those carry the context "(import)".
"""

import json
import os
import subprocess
import sys
import tempfile

from ..prog.load import LoadError

IMPORT_CONTEXT = "(import)"
COV_JSON = "smmufuzz-cov.json"     # beside the HTML report: what a campaign's report.html shows of it


def source_dirs() -> list[str]:
    """The measured packages: the hardware/oracle and the Linux models (never the harness)."""
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [os.path.join(pkg, "reference"), os.path.join(pkg, "variants")]


def module_key(path: str) -> str:
    """A file's name from the package root on (smmufuzz/reference/smmu.py), so data saved in another
    checkout compares."""
    p = path.replace(os.sep, "/")
    i = p.rfind("/smmufuzz/")
    return p[i + 1:] if i >= 0 else p


def _coverage(data_file: str):
    import coverage
    return coverage.Coverage(data_file=data_file, branch=True, source=source_dirs(), config_file=False)


def measure(files: list[str], data_file: str, target: str | None = None, variant: str | None = None,
            policy: str = "max-cache", plugins: tuple = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """Replay every input in a child interpreter under coverage.py (branch coverage, dynamic context =
    the input's path) and save the data to `data_file`. Each input runs on `variant` (comma-separated)
    if given, else on `target`, else on its reproducer header's target, else the first default target.
    Returns (inputs measured, [(input, why) skipped]): an input that cannot be loaded is skipped."""
    root = os.path.dirname(os.path.dirname(source_dirs()[0]))
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, "spec.json")
        with open(spec, "w") as f:
            json.dump({"files": files, "data_file": os.path.abspath(data_file), "target": target,
                       "variant": variant, "policy": policy, "plugins": list(plugins), "cwd": os.getcwd()}, f)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        p = subprocess.run([sys.executable, "-m", "smmufuzz.fuzz.coverage_report", spec], env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"coverage replay failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
        with open(spec + ".out") as f:
            out = json.load(f)
    return out["done"], [tuple(b) for b in out["bad"]]


def _child(spec_path: str) -> None:
    """The replay itself: coverage first, then the packages it measures."""
    with open(spec_path) as f:
        spec = json.load(f)
    cov = _coverage(spec["data_file"])
    cov.start()
    try:
        cov.switch_context(IMPORT_CONTEXT)
        import importlib
        sys.path.insert(0, spec["cwd"])
        for m in spec["plugins"]:
            importlib.import_module(m)
        from ..variants.registry import DEFAULT_TARGETS, target as resolve_target, variant as lookup
        from ..prog.load import load_program
        from ..exec.runner import run_program
        done, bad = [], []
        for path in spec["files"]:
            cov.switch_context(os.path.relpath(path, spec["cwd"]))
            try:
                prog, header = load_program(path)
                if spec["variant"]:
                    variants = [v for v in spec["variant"].split(",") if v]
                    for v in variants:
                        lookup(v)
                else:
                    variants = resolve_target(spec["target"] or header.get("target") or DEFAULT_TARGETS[0])
            except (LoadError, KeyError, ValueError) as e:
                bad.append((path, e.args[0] if e.args else str(e)))
                continue
            run_program(prog, variants, spec["policy"])
            done.append(path)
    finally:
        cov.stop()
    cov.save()
    with open(spec_path + ".out", "w") as f:
        json.dump({"done": done, "bad": bad}, f)


def load(data_file: str):
    """A Coverage object over saved data (for the reports)."""
    cov = _coverage(data_file)
    cov.load()
    return cov


def file_summaries(cov) -> dict[str, dict]:
    """module key -> coverage.py's JSON view of it (summary, executed lines and branches)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cov.json")
        cov.json_report(outfile=out)
        with open(out) as f:
            files = json.load(f)["files"]
    return {module_key(path): v for path, v in files.items()}


def newly_covered(cov, old_data_file: str) -> dict[str, tuple[list[int], list[tuple[int, int]]]]:
    """module key -> (lines, branch arcs) covered now and not in the saved data (both as coverage.py
    reports them, so multi-line statements compare by their first line)."""
    import coverage
    if not os.path.isfile(old_data_file):
        raise LoadError(f"{old_data_file}: no such coverage data file (save one with --save)")
    old_cov = coverage.Coverage(data_file=old_data_file, branch=True, config_file=False)
    try:
        old_cov.load()
        old = file_summaries(old_cov)
    except Exception as e:
        raise LoadError(f"{old_data_file}: not usable coverage data: {e}") from None
    out = {}
    for k, v in file_summaries(cov).items():
        was = old.get(k, {})
        lines = sorted(set(v["executed_lines"]) - set(was.get("executed_lines", ())))
        arcs = sorted({tuple(a) for a in v.get("executed_branches", ())}
                      - {tuple(a) for a in was.get("executed_branches", ())})
        if lines or arcs:
            out[k] = (lines, arcs)
    return out


def _fmt_arcs(arcs: list[tuple[int, int]], limit: int = 12) -> str:
    s = ", ".join(f"{a}->{b if b > 0 else 'exit'}" for a, b in arcs[:limit])
    return s + (f", ... (+{len(arcs) - limit})" if len(arcs) > limit else "")


def _percent(summaries) -> float:
    """coverage.py's cover % over several modules: (statements run + branches taken) / (statements + branches)."""
    n = miss = nb = cb = 0
    for s in summaries:
        n, miss = n + s["num_statements"], miss + s["missing_lines"]
        nb, cb = nb + s["num_branches"], cb + s["covered_branches"]
    return 100.0 * (n - miss + cb) / (n + nb) if n + nb else 100.0


def reached_modules(cov) -> set[str]:
    """Module keys of which the inputs ran at least one line (import time does not count): the modules a
    target reaches, of all those in reference/ and variants/."""
    import re
    data = cov.get_data()
    data.set_query_contexts(["^(?!" + re.escape(IMPORT_CONTEXT) + "$)"])
    try:
        return {module_key(f) for f in data.measured_files() if data.lines(f)}
    finally:
        data.set_query_contexts(None)


def cov_summary(cov, inputs: list[str], meta: dict | None = None) -> dict:
    """What a campaign report shows of a coverage run (written beside its HTML report as smmufuzz-cov.json):
    cover % over all measured modules and over the modules the inputs reached, per module too."""
    import time
    files = file_summaries(cov)
    reached = reached_modules(cov) & set(files)
    return {**(meta or {}), "inputs": len(inputs), "made": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "modules": len(files), "percent": round(_percent(f["summary"] for f in files.values()), 1),
            "reached_modules": len(reached),
            "reached_percent": round(_percent(files[k]["summary"] for k in reached), 1),
            "per_module": {k: {"percent": round(v["summary"]["percent_covered"], 1), "reached": k in reached}
                           for k, v in sorted(files.items())}}


def report(cov, inputs: list[str], since: str | None = None, html: str | None = None,
           meta: dict | None = None) -> str:
    """Per-module statements, branches and cover %, a total line, what is new since `since`, and
    where the HTML report went (with smmufuzz-cov.json beside it: `meta` (target, variant, corpus) and
    the cover percentages a campaign report shows)."""
    files = file_summaries(cov)
    rows = [("module", "stmts", "miss", "branches", "br hit", "cover")]
    tot = [0, 0, 0, 0]
    for k in sorted(files):
        s = files[k]["summary"]
        n, miss, nb, cb = s["num_statements"], s["missing_lines"], s["num_branches"], s["covered_branches"]
        tot = [tot[0] + n, tot[1] + miss, tot[2] + nb, tot[3] + cb]
        rows.append((k, str(n), str(miss), str(nb), str(cb), f"{s['percent_covered']:.1f}%"))
    pct = 100.0 * (tot[0] - tot[1] + tot[3]) / (tot[0] + tot[2]) if tot[0] + tot[2] else 100.0
    rows.append(("TOTAL", *map(str, tot), f"{pct:.1f}%"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    contexts = [c for c in cov.get_data().measured_contexts() if c and c != IMPORT_CONTEXT]
    lines.append(f"{len(inputs)} input(s) replayed, {len(contexts)} coverage context(s) (one per input; "
                 f"import-time lines under {IMPORT_CONTEXT!r})")
    if since:
        new = newly_covered(cov, since)
        lines.append(f"newly covered since {since}: " + (f"{sum(len(a) for _l, a in new.values())} branch arc(s), "
                                                         f"{sum(len(ln) for ln, _a in new.values())} line(s)"
                                                         if new else "nothing"))
        for k in sorted(new):
            ln, arcs = new[k]
            lines.append(f"  {k}: +{len(arcs)} arc(s), +{len(ln)} line(s)")
            if arcs:
                lines.append(f"    arcs: {_fmt_arcs(arcs)}")
    if html:
        cov.html_report(directory=html, show_contexts=True, title="smmufuzz corpus coverage")
        summary = cov_summary(cov, inputs, meta)
        with open(os.path.join(html, COV_JSON), "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
        lines.append(f"reached by the inputs: {summary['reached_modules']} of {summary['modules']} modules, "
                     f"{summary['reached_percent']:.1f}% covered (import-time lines aside, a module no input ran "
                     f"is not reached)")
        lines.append(f"HTML report: {os.path.join(html, 'index.html')} (a campaign's report.html links it from "
                     f"the campaign directory, or from the corpus root's cov/)")
    return "\n".join(lines)


if __name__ == "__main__":
    _child(sys.argv[1])
