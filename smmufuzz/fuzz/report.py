"""A campaign's self-contained HTML report, rewritten while the campaign runs (fuzz/campaign.py: every minute
and at any stop) and at its end: plots as inline SVG (no scripts), which target each worker ran when, coverage
per target over time, findings by verdict class, and links to `smmufuzz cov --html` reports.

The page is well-formed XML as well as HTML (void elements closed, only XML's own entities), so a test, or any
XML tool, can parse it whole.
"""

import glob
import html
import json
import os

from .coverage_report import COV_JSON
from .findings_store import atomic_write
from ..exec.verdict import EXPECTED, KNOWN_DESIGN, LABEL, ORDER, UNEXPECTED, counts_text

PLOTS = (("exec_per_sec", "exec/s (all workers)"), ("corpus", "corpus size (inputs, all targets)"),
         ("cov", "libFuzzer cov: summed over the targets"))
CLASS_COLOR = {UNEXPECTED: "#c62828", KNOWN_DESIGN: "#ef8f00", EXPECTED: "#2e7d32"}
CLASS_BG = {UNEXPECTED: "#fdd", KNOWN_DESIGN: "#ffecc7", EXPECTED: "#e3f2e1"}
e = html.escape


def _ticks(hi: float, n: int = 4, lo: float = 0.0) -> list[float]:
    """Round tick values from lo (rounded down to the step) to at least hi."""
    span = hi - lo
    if span <= 0:
        return [lo]
    step = span / n
    mag = 10 ** (len(str(int(step))) - 1) if step >= 1 else 1
    step = next(k * mag for k in (1, 2, 2.5, 3, 5, 10) if k * mag >= step)     # 1, 2, 2.5, 3 or 5 x 10^k
    step = int(step) if step == int(step) else step
    v = (lo // step) * step
    out = []
    while v <= hi * 1.0001 + 1e-9 or len(out) < 2:
        out.append(v)
        v += step
    return out


def target_color(i: int) -> str:
    """A colour per target index: hues a golden angle apart, so neighbours in the list differ most."""
    return f"hsl({(i * 137.508) % 360:.0f},62%,{48 if i % 2 else 40}%)"


def _axes(parts, left, top, pw, ph, xt, yt, px, py, xlabel, height, small=False):
    fs = 9 if small else 10
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>'
                 f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>')
    for v in yt:
        parts.append(f'<line x1="{left - 4}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(v) + 3.5:.1f}" text-anchor="end" font-size="{fs}">{v:g}</text>')
    for v in xt:
        parts.append(f'<line x1="{px(v):.1f}" y1="{top + ph}" x2="{px(v):.1f}" y2="{top + ph + 4}" stroke="#333"/>'
                     f'<text x="{px(v):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="{fs}">{v:g}</text>')
    if xlabel:
        parts.append(f'<text x="{left + pw / 2}" y="{height - 5}" text-anchor="middle" font-size="11">'
                     f'{e(xlabel)}</text>')


def svg_lines(xs: list[float], lines: list[tuple[str, list[float], str]], title: str, xlabel: str = "seconds",
              width: int = 460, height: int = 220, xmax: float | None = None, step: bool = False) -> str:
    """A line plot as an inline <svg>: axes, ticks, one polyline per (label, ys, colour), a legend if more
    than one. `step`: values hold until the next point (counts that change at events)."""
    left, right, top, bottom = 58, 12, 26, 38
    legend = len(lines) > 1
    if legend:
        bottom += 16
    pw, ph = width - left - right, height - top - bottom
    ally = [y for _l, ys, _c in lines for y in ys]
    xmax = max([xmax or 0.0] + list(xs)) or 1.0
    ymax = max(ally) if ally and max(ally) > 0 else 1.0
    yt, xt = _ticks(ymax), _ticks(xmax)
    ymax, xmax = max(ymax, yt[-1]), max(xmax, xt[-1])

    def px(x):
        return left + pw * x / xmax

    def py(y):
        return top + ph - ph * y / ymax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{e(title)}</text>']
    _axes(parts, left, top, pw, ph, xt, yt, px, py, xlabel, height - (16 if legend else 0))
    for k, (label, ys, color) in reversed(list(enumerate(lines))):     # the first drawn last, on top
        if xs:
            pts = []
            for i, (x, y) in enumerate(zip(xs, ys)):
                if step and i:
                    pts.append(f"{px(x):.1f},{py(ys[i - 1]):.1f}")
                pts.append(f"{px(x):.1f},{py(y):.1f}")
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(pts)}">'
                         f'<title>{e(label)}: {ys[-1]:g} at {xs[-1]:g} s</title></polyline>')
        if legend:
            lx = left + k * (pw / len(lines))
            parts.append(f'<rect x="{lx:.1f}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
                         f'<text x="{lx + 14:.1f}" y="{height - 5}" font-size="10">{e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_plot(xs: list[float], ys: list[float], title: str, xlabel: str = "seconds", width: int = 460,
             height: int = 220) -> str:
    """A line plot of one series (see svg_lines)."""
    return svg_lines(xs, [(title, ys, "#1f5fa8")], title, xlabel, width, height)


def svg_timeline(timeline: list[dict], targets: list[str], workers: int, t_end: float, running: bool,
                 width: int = 960) -> str:
    """Which target each worker ran when: a row per worker, a bar per launch in its target's colour (its name
    on it where it fits; every detail in the bar's tooltip; a running one's slice still to come paler), a red tick where libFuzzer stopped at a crash
    input (the worker restarts on the same target), a grey one where it died."""
    left, right, top, row_h, gap = 70, 12, 8, 26, 6
    pw = width - left - right
    height = top + workers * (row_h + gap) + 34
    t_max = max([t_end] + [s.get("until", 0.0) for s in timeline])
    xt = _ticks(max(t_max, 1.0))
    xmax = max(t_max, xt[-1], 1.0)
    index = {t: i for i, t in enumerate(targets)}

    def px(x):
        return left + pw * max(0.0, x) / xmax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="which target ran when">']
    for w in range(workers):
        y = top + w * (row_h + gap)
        parts.append(f'<rect x="{left}" y="{y}" width="{pw}" height="{row_h}" fill="#f4f4f4"/>'
                     f'<text x="{left - 8}" y="{y + row_h / 2 + 4}" text-anchor="end" font-size="11">worker {w}</text>')
    ticks = []
    for s in timeline:
        w = s["worker"]
        if not 0 <= w < workers:
            continue
        y = top + w * (row_h + gap)
        x0, x1 = px(s["start"]), px(s["end"])
        color = target_color(index.get(s["target"], len(targets)))
        tip = (f"worker {w}, launch {s['launch']}: {s['target']} from {s['start']:g} s to {s['end']:g} s "
               f"({s['end'] - s['start']:.0f} s), {s['exit']}; {s['execs']} execs, cov {s['cov']}")
        parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(1.0, x1 - x0 - 1):.1f}" height="{row_h}" '
                     f'fill="{color}"><title>{e(tip)}</title></rect>')
        if s.get("until", 0.0) > s["end"]:       # a running launch: the rest of its slice, planned
            rest = f"{s['target']}: its slice runs until {s['until']:g} s"
            parts.append(f'<rect x="{x1:.1f}" y="{y + 3}" width="{px(s["until"]) - x1:.1f}" height="{row_h - 6}" '
                         f'fill="{color}" fill-opacity="0.25"><title>{e(rest)}</title></rect>')
        if x1 - x0 > 7 * len(s["target"]) + 6:
            parts.append(f'<text x="{x0 + 4:.1f}" y="{y + row_h / 2 + 4}" font-size="11" fill="#fff">'
                         f'{e(s["target"])}</text>')
        if s["exit"] == "crash input":
            ticks.append(f'<line x1="{x1:.1f}" y1="{y - 2}" x2="{x1:.1f}" y2="{y + row_h + 2}" stroke="#c62828" '
                         f'stroke-width="2"><title>{e(tip)}</title></line>')
        elif s["exit"] not in ("time slice done", "running", "stopped by the campaign"):
            ticks.append(f'<line x1="{x1:.1f}" y1="{y - 2}" x2="{x1:.1f}" y2="{y + row_h + 2}" stroke="#555" '
                         f'stroke-width="2" stroke-dasharray="3,2"><title>{e(tip)}</title></line>')
    parts += ticks
    ax = top + workers * (row_h + gap)
    parts.append(f'<line x1="{left}" y1="{ax}" x2="{left + pw}" y2="{ax}" stroke="#333"/>')
    for v in xt:
        parts.append(f'<line x1="{px(v):.1f}" y1="{ax}" x2="{px(v):.1f}" y2="{ax + 4}" stroke="#333"/>'
                     f'<text x="{px(v):.1f}" y="{ax + 15}" text-anchor="middle" font-size="10">{v:g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 3}" text-anchor="middle" font-size="11">seconds into '
                 f'the campaign</text>')
    if running:
        parts.append(f'<line x1="{px(t_end):.1f}" y1="{top - 6}" x2="{px(t_end):.1f}" y2="{ax}" stroke="#000" '
                     f'stroke-dasharray="4,3"><title>this report: {t_end:g} s</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def target_cov_series(name: str, series: list[dict], timeline: list[dict], final: int | None,
                      t_end: float) -> list[tuple[float, int]]:
    """A target's libFuzzer cov over the campaign as (seconds, cov) points, never going down: the time series'
    per-target figures (written when they change), each launch's figure at its end, and the final one."""
    pts = [(p["t"], p["tcov"][name]) for p in series if name in p.get("tcov", {})]
    pts += [(s["end"], s["cov"]) for s in timeline if s["target"] == name and s["cov"]]
    if final:
        pts.append((t_end, final))
    pts.sort()
    out, best = [], 0
    for t, c in pts:
        best = max(best, c)
        out.append((t, best))
    return out


def svg_target_cov(name: str, color: str, pts: list[tuple[float, int]], slices: list[tuple[float, float]],
                   t_end: float, cov_pct: str = "", width: int = 310, height: int = 130) -> str:
    """One small multiple: the target's cov (step line, its own y scale from its first figure) over the whole
    campaign, the time it was being fuzzed shaded."""
    left, right, top, bottom = 44, 8, 20, 22
    pw, ph = width - left - right, height - top - bottom
    xt = _ticks(max(t_end, 1.0), 3)
    xmax = max(t_end, xt[-1], 1.0)
    last = pts[-1][1] if pts else 0
    title = f"{name}: cov {last}" + (f", {cov_pct}" if cov_pct else "")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
             f'<text x="{left}" y="13" font-size="11" font-weight="bold">{e(title)}</text>']
    if not pts:
        parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#f4f4f4"/>'
                     f'<text x="{left + pw / 2}" y="{top + ph / 2 + 4}" text-anchor="middle" font-size="11" '
                     f'fill="#777">not run yet</text></svg>')
        return "".join(parts)
    lo, hi = pts[0][1], max(c for _t, c in pts)
    yt = _ticks(hi, 3, lo) if hi > lo else [lo, lo + 1]
    ylo, yhi = yt[0], max(hi, yt[-1])

    def px(x):
        return left + pw * x / xmax

    def py(y):
        return top + ph - ph * (y - ylo) / (yhi - ylo)
    for a, b in slices:
        parts.append(f'<rect x="{px(a):.1f}" y="{top}" width="{max(1.0, px(b) - px(a)):.1f}" height="{ph}" '
                     f'fill="{color}" fill-opacity="0.15"/>')
    _axes(parts, left, top, pw, ph, xt, yt, px, py, "", height, small=True)
    seq = []
    for i, (t, c) in enumerate(pts):
        if i:
            seq.append(f"{px(t):.1f},{py(pts[i - 1][1]):.1f}")
        seq.append(f"{px(t):.1f},{py(c):.1f}")
    seq.append(f"{px(t_end):.1f},{py(pts[-1][1]):.1f}")
    parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(seq)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def find_cov_reports(campaign_dir: str, corpus_root: str) -> list[dict]:
    """`smmufuzz cov --html` reports in the campaign directory or under the corpus root (`cov/...`, or a
    directory of its own there): each report's index.html, and what its smmufuzz-cov.json says (target, cover
    %, over all modules and over the modules its inputs reached), if it has one."""
    found, seen = [], set()
    pats = [os.path.join(campaign_dir, "**", "index.html"), os.path.join(corpus_root, "*", "index.html"),
            os.path.join(corpus_root, "cov", "**", "index.html")]
    for pat in pats:
        for index in sorted(glob.glob(pat, recursive=True)):
            real = os.path.realpath(index)
            if real in seen:
                continue
            seen.add(real)
            d = os.path.dirname(index)
            meta = None
            try:
                with open(os.path.join(d, COV_JSON)) as f:
                    meta = json.load(f)
                if not isinstance(meta, dict):
                    meta = None
            except (OSError, ValueError):
                pass
            if meta is None:        # coverage.py's own page without our note (an older `smmufuzz cov --html`)
                try:
                    with open(index, errors="replace") as f:
                        if "coverage.py" not in f.read(20000):
                            continue
                except OSError:
                    continue
            found.append({"index": index, "meta": meta or {}})
    return found


def _pct(meta: dict, key: str) -> str:
    v = meta.get(key)
    return f"{v:.1f}%" if isinstance(v, (int, float)) else "?"


def _findings_section(s: dict) -> str:
    by = {c: [] for c in ORDER}
    for r in s["findings"]:
        by[r.get("verdict") if r.get("verdict") in ORDER else UNEXPECTED].append(r)
    cells = "".join(f'<td style="background:{CLASS_BG[c]}"><b style="color:{CLASS_COLOR[c]};font-size:20px">'
                    f'{len(by[c])}</b><br/>{e(LABEL[c])}</td>' for c in ORDER)
    out = [f'<table class="classes"><tr>{cells}</tr></table>',
           "<p>UNEXPECTED: on a variant the registry marks correct; known design finding: listed with its "
           "explanation in <code>smmufuzz/known_findings.py</code>; expected: on a variant marked buggy (its "
           "known bug). Hits and first-seen times are for this campaign / all campaigns on this corpus.</p>"]
    for c in ORDER:
        rows = by[c]
        if not rows:
            continue
        out.append(f'<h3 style="color:{CLASS_COLOR[c]}">{e(LABEL[c])} ({len(rows)})</h3>')
        out.append("<table><tr><th>verdict</th><th></th><th>kind</th><th>variants</th><th>op shape</th>"
                   "<th>target</th><th>first seen</th><th>hits (campaign / all)</th>"
                   "<th>tolerated as known (campaign / all)</th><th>replay</th></tr>")
        for r in rows:
            fs = r["first_seen"]
            out.append(
                f"<tr><td class=\"{e(r.get('verdict', ''))}\"><b>{e(LABEL.get(r.get('verdict'), '?'))}</b><br/>"
                f"<small>{e(r.get('verdict_why', ''))}</small></td>"
                f"<td>{'new' if r['new'] else 'known'}</td><td>{e(r['kind'])}</td><td>{e(', '.join(r['variants']))}"
                f"</td><td>{e(' '.join(r['shape']))}</td><td>{e(r['target'])}</td><td>{fs['seconds']} s"
                f"{(', %s execs' % format(fs['execs'], ',')) if 'execs' in fs else ''} "
                f"({e(fs['campaign'])}, {e(fs['wall'])})</td><td>{r['hits_this_campaign']} / {r['hits']}</td>"
                f"<td>{r.get('tolerated_this_campaign', 0)} / {r.get('tolerated_hits', 0)}</td>"
                f"<td><code>{e(r['replay'])}</code><details><summary>finding</summary><pre>{e(r['finding'])}"
                f"</pre></details></td></tr>")
        out.append("</table>")
    return "\n".join(out)


def _state(s: dict) -> tuple[str, str]:
    """(css class, sentence) saying whether this is a live report, a finished or a stopped campaign's."""
    state, updated = s.get("state", "finished"), s.get("updated", "")
    if state == "running":
        every = s.get("report_every", 60)
        return "live", (f"Live report, written {updated}, {s['elapsed']:.0f} s into the campaign; rewritten every "
                        f"{every:g} s while the campaign runs (this page reloads itself). A report whose time is "
                        f"long past belongs to a campaign that was killed outright (kill -9, a crash, power): "
                        f"it shows the campaign up to then.")
    if state == "interrupted":
        return "stopped", (f"Interrupted ({', '.join(s.get('signals', [])) or 'signal'}); final report, "
                           f"written {updated}.")
    if state.startswith("stopped"):
        return "error", f"The campaign {state}; its last report, written {updated}."
    return "done", f"Finished; final report, written {updated}." if updated else "Finished."


def render(campaign_dir: str, s: dict | None = None, series: list[dict] | None = None) -> str:
    """(Re)write CAMPAIGN_DIR/report.html from the summary and time series given, else from summary.json and
    timeseries.json; returns its path."""
    if s is None:
        with open(os.path.join(campaign_dir, "summary.json")) as f:
            s = json.load(f)
    if series is None:
        try:
            with open(os.path.join(campaign_dir, "timeseries.json")) as f:
                series = json.load(f)
        except (OSError, ValueError):
            series = []
    running = s.get("state") == "running"
    t_end = max([s["elapsed"]] + [p["t"] for p in series])
    xs = [p["t"] for p in series]
    plots = "".join(svg_plot(xs, [p.get(k, 0) for p in series], label) for k, label in PLOTS)
    plots += svg_lines(xs, [(LABEL[c], [p.get(c, 0) for p in series], CLASS_COLOR[c]) for c in ORDER],
                       "distinct findings, by verdict", step=True)
    timeline = s.get("timeline", [])
    targets = s["targets"]
    per = {t["target"]: t for t in s["per_target"]}
    cov_reports = find_cov_reports(campaign_dir, s["corpus_root"])
    by_target = {}
    for r in cov_reports:
        if r["meta"].get("target") and not r["meta"].get("variant"):
            by_target[r["meta"]["target"]] = r        # (the last one found: the campaign's own over the corpus's)

    def rel(path):
        return e(os.path.relpath(path, campaign_dir))
    multiples = []
    for i, name in enumerate(targets):
        slices = [(x["start"], x["end"]) for x in timeline if x["target"] == name]
        pts = target_cov_series(name, series, timeline, per.get(name, {}).get("cov"), t_end)
        cr = by_target.get(name)
        multiples.append(svg_target_cov(name, target_color(i), pts, slices, t_end,
                                        f"{_pct(cr['meta'], 'reached_percent')} of reached code" if cr else ""))
    head = (f"{s['elapsed']:.0f} s of {s['time_budget']} s, {s['workers']} worker(s), seed {s['seed']}: "
            f"{s['execs']} execs, {s['exec_per_sec']:.0f} exec/s, "
            f"corpus {s['corpus']} + {s.get('seed_inputs', 0)} seed inputs, cov {s['cov']}, ft {s['ft']}, "
            f"{s['launches']} launches, restarts {s['restarts_after_finding']} after a finding and "
            f"{s['restarts_after_death']} after a worker died; {s['distinct_findings']} distinct finding(s) "
            f"({counts_text(s.get('verdicts', {}))}), {s['new_findings']} new, {s['hits']} hits triaged, "
            f"{s.get('tolerated_hits', 0)} inputs tolerated as known by the workers.")
    rows = []
    for i, t in enumerate(s["per_target"]):
        cr = by_target.get(t["target"])
        cov_cell = (f'<a href="{rel(cr["index"])}">{_pct(cr["meta"], "reached_percent")}</a> '
                    f'<small>({_pct(cr["meta"], "percent")} of all; {cr["meta"].get("inputs", "?")} inputs)</small>'
                    if cr else "-")
        rows.append(f'<tr><td><span class="sw" style="background:{target_color(i)}"></span> {e(t["target"])}</td>'
                    f'<td>{t["seconds"]:.0f}</td><td>{t.get("slices", "")}</td><td>{t["launches"]}</td>'
                    f'<td>{t["execs"]}</td><td>{t["exec_per_sec"]:.0f}</td><td>{t["cov"]}</td><td>{t["ft"]}</td>'
                    f'<td>{cov_cell}</td><td>{t["findings"]}</td><td>{e(t["blocked"])}</td></tr>')
    if cov_reports:
        items = "".join(
            f'<li><a href="{rel(r["index"])}">{e(os.path.relpath(r["index"], campaign_dir))}</a>'
            + (f': {e(r["meta"].get("target") or r["meta"].get("variant") or "each input on its own target")}, '
               f'{_pct(r["meta"], "reached_percent")} of the {r["meta"].get("reached_modules", "?")} modules its '
               f'inputs reached, {_pct(r["meta"], "percent")} of all {r["meta"].get("modules", "?")}; '
               f'{r["meta"].get("inputs", "?")} inputs, made {e(str(r["meta"].get("made", "?")))}'
               if r["meta"] else " (coverage.py report)") + "</li>" for r in cov_reports)
        covsec = f"<ul>{items}</ul>"
    else:
        covsec = "<p>None in the campaign directory or under the corpus root's <code>cov/</code>.</p>"
    root = s["corpus_root"]
    cmds = "\n".join(f"smmufuzz cov --target {t} --corpus {os.path.join(root, 'fuzz', t)} "
                     f"--html {os.path.join(root, 'cov', t.replace(':', '_').replace(',', '+'))}" for t in targets)
    deaths = "".join(f"<li>{e(d['target'])}, launch {d['launch']}: {e(d['exit'])} after {d['seconds']} s "
                     f"(<code>{e(d['log'])}</code>)</li>" for d in s["worker_deaths"])
    problems = "".join(f"<li>{e(p)}</li>" for p in s["problems"])
    css, state_text = _state(s)
    refresh = (f'<meta http-equiv="refresh" content="{max(5, int(s.get("report_every", 60)))}"/>'
               if running else "")
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>{refresh}<title>smmufuzz campaign {e(s['campaign'])}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1000px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}} svg{{margin:4px}}
pre{{font-size:11px;white-space:pre-wrap}} td.unexpected{{background:#fdd}} td.known_design{{background:#ffecc7}}
td.expected{{background:#e3f2e1}} .state{{padding:6px 10px;border-radius:4px}} .live{{background:#fff5c2}}
.stopped{{background:#eee}} .error{{background:#fdd}} .done{{background:#e3f2e1}}
table.classes td{{text-align:center;min-width:110px;padding:6px}}
.sw{{display:inline-block;width:10px;height:10px;vertical-align:middle}} .multiples{{display:flex;flex-wrap:wrap}}</style>
</head><body>
<h1>smmufuzz campaign {e(s['campaign'])}</h1>
<p class="state {css}"><b>{e(state_text)}</b></p>
<p>{e(head)}</p>
<p>Targets: {e(', '.join(targets))}. Slices of {s['slice_seconds']} s. Corpus <code>{e(root)}</code>.</p>
<h2>Findings by verdict</h2>
{_findings_section(s)}
<h2>Which target ran when</h2>
<p>A row per worker, a bar per libFuzzer launch in its target's colour (hover for its figures; paler: the rest of
a running launch's slice); a red tick where it stopped at a crash input and restarted, a dashed grey one where the worker died; the gaps are start-up and
triage between launches.</p>
{svg_timeline(timeline, targets, s['workers'], t_end, running)}
<h2>Coverage per target</h2>
<p>libFuzzer's <code>cov:</code> (edges of the instrumented Python, and of a kernel tree's C on <code>kc</code>
targets) per target, each on its own scale from its first figure; shaded while the target was being fuzzed.</p>
<div class="multiples">{''.join(multiples)}</div>
<h2>Over time</h2>
<div>{plots}</div>
<h2>Targets</h2>
<table><tr><th>target</th><th>seconds</th><th>slices</th><th>launches</th><th>execs</th><th>exec/s</th><th>cov</th>
<th>ft</th><th>cover % (smmufuzz cov)</th><th>findings</th><th>dropped</th></tr>{''.join(rows)}</table>
<h2>Line and branch coverage (<code>smmufuzz cov --html</code>)</h2>
{covsec}
<p>Cover percentages need a replay of the corpus under coverage.py: libFuzzer's <code>cov:</code> counts the edges
reached, with nothing to divide it by (atheris does not report how many it instrumented, and every worker imports
every variant, not only its target's). A report per target, which this page links to once it exists:</p>
<pre>{e(cmds)}</pre>
<h2>Worker deaths</h2><ul>{deaths or '<li>none</li>'}</ul>
<h2>Problems</h2><ul>{problems or '<li>none</li>'}</ul>
</body></html>
"""
    path = os.path.join(campaign_dir, "report.html")
    atomic_write(path, doc)
    return path
