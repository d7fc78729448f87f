"""A campaign's self-contained HTML report: time series as inline SVG line plots, per-target table, findings table."""

import html
import json
import os

from .findings_store import atomic_write
from .verdict import LABEL, counts_text

PLOTS = (("exec_per_sec", "exec/s (all workers)"), ("corpus", "corpus size (inputs)"),
         ("cov", "coverage (libFuzzer cov:, summed over targets)"), ("findings", "distinct findings"))


def _ticks(hi: float, n: int = 4) -> list[float]:
    if hi <= 0:
        return [0.0]
    step = hi / n
    mag = 10 ** (len(str(int(step))) - 1) if step >= 1 else 1
    step = max(1, round(step / mag)) * mag
    out, v = [], 0.0
    while v <= hi * 1.0001:
        out.append(v)
        v += step
    return out


def svg_plot(xs: list[float], ys: list[float], title: str, xlabel: str = "seconds", width: int = 460,
             height: int = 220) -> str:
    """A line plot as an inline <svg>: axes, ticks, labels and one polyline."""
    left, right, top, bottom = 58, 12, 26, 38
    pw, ph = width - left - right, height - top - bottom
    xmax = max(xs) if xs and max(xs) > 0 else 1.0
    ymax = max(ys) if ys and max(ys) > 0 else 1.0
    yt, xt = _ticks(ymax), _ticks(xmax)
    ymax, xmax = max(ymax, yt[-1]), max(xmax, xt[-1])

    def px(x):
        return left + pw * x / xmax

    def py(y):
        return top + ph - ph * y / ymax
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#333"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#333"/>']
    for v in yt:
        parts.append(f'<line x1="{left - 4}" y1="{py(v):.1f}" x2="{left + pw}" y2="{py(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    for v in xt:
        parts.append(f'<line x1="{px(v):.1f}" y1="{top + ph}" x2="{px(v):.1f}" y2="{top + ph + 4}" stroke="#333"/>'
                     f'<text x="{px(v):.1f}" y="{top + ph + 15}" text-anchor="middle" font-size="10">{v:g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="11">'
                 f'{html.escape(xlabel)}</text>')
    if xs:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1.8" points="{pts}"/>')
    parts.append("</svg>")
    return "".join(parts)


def render(campaign_dir: str) -> str:
    """(Re)write CAMPAIGN_DIR/report.html from summary.json and timeseries.json; returns its path."""
    with open(os.path.join(campaign_dir, "summary.json")) as f:
        s = json.load(f)
    try:
        with open(os.path.join(campaign_dir, "timeseries.json")) as f:
            series = json.load(f)
    except (OSError, ValueError):
        series = []
    e = html.escape
    xs = [p["t"] for p in series]
    plots = "".join(svg_plot(xs, [p.get(k, 0) for p in series], label) for k, label in PLOTS)
    head = (f"{s['elapsed']:.0f} s of {s['time_budget']} s, {s['workers']} worker(s), seed {s['seed']}"
            f"{' (interrupted)' if s['interrupted'] else ''}: {s['execs']} execs, {s['exec_per_sec']:.0f} exec/s, "
            f"corpus {s['corpus']} + {s.get('seed_inputs', 0)} seed inputs, cov {s['cov']}, ft {s['ft']}, {s['launches']} launches, restarts "
            f"{s['restarts_after_finding']} after a finding and {s['restarts_after_death']} after a worker died; "
            f"{s['distinct_findings']} distinct finding(s) ({counts_text(s.get('verdicts', {}))}), "
            f"{s['new_findings']} new, {s['hits']} hits triaged, "
            f"{s.get('tolerated_hits', 0)} inputs tolerated as known by the workers.")
    rows = "".join(
        f"<tr><td>{e(t['target'])}</td><td>{t['seconds']:.0f}</td><td>{t['launches']}</td><td>{t['execs']}</td>"
        f"<td>{t['exec_per_sec']:.0f}</td><td>{t['cov']}</td><td>{t['findings']}</td>"
        f"<td>{e(t['blocked'])}</td></tr>" for t in s["per_target"])
    frows = "".join(
        f"<tr><td class=\"{e(r.get('verdict', ''))}\"><b>{e(LABEL.get(r.get('verdict'), '?'))}</b><br>"
        f"<small>{e(r.get('verdict_why', ''))}</small></td>"
        f"<td>{'new' if r['new'] else 'known'}</td><td>{e(r['kind'])}</td><td>{e(', '.join(r['variants']))}</td>"
        f"<td>{e(' '.join(r['shape']))}</td><td>{e(r['target'])}</td><td>{r['first_seen']['seconds']} s "
        f"({e(r['first_seen']['campaign'])}, {e(r['first_seen']['wall'])})</td><td>{r['hits_this_campaign']} / "
        f"{r['hits']}</td><td>{r.get('tolerated_this_campaign', 0)} / {r.get('tolerated_hits', 0)}</td><td><code>{e(r['replay'])}</code><details><summary>finding</summary><pre>"
        f"{e(r['finding'])}</pre></details></td></tr>" for r in s["findings"])
    deaths = "".join(f"<li>{e(d['target'])}, launch {d['launch']}: {e(d['exit'])} after {d['seconds']} s "
                     f"(<code>{e(d['log'])}</code>)</li>" for d in s["worker_deaths"])
    problems = "".join(f"<li>{e(p)}</li>" for p in s["problems"])
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>smmufuzz campaign {e(s['campaign'])}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1000px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}} svg{{margin:4px}}
pre{{font-size:11px;white-space:pre-wrap}} td.unexpected{{background:#fdd}}</style></head><body>
<h1>smmufuzz campaign {e(s['campaign'])}</h1>
<p>{e(head)}</p>
<p>Targets: {e(', '.join(s['targets']))}. Slices of {s['slice_seconds']} s. Corpus <code>{e(s['corpus_root'])}</code>.</p>
<h2>Over time</h2>
<div>{plots}</div>
<h2>Findings</h2>
<p>UNEXPECTED: on a variant the registry marks correct; expected: on a variant marked buggy (its known bug);
known design finding: listed with its explanation in <code>smmufuzz/known_findings.py</code>. Unexpected first.</p>
<table><tr><th>verdict</th><th></th><th>kind</th><th>variants</th><th>op shape</th><th>target</th><th>first seen</th>
<th>hits (campaign / all)</th><th>tolerated as known (campaign / all)</th><th>replay</th></tr>{frows}</table>
<h2>Targets</h2>
<table><tr><th>target</th><th>seconds</th><th>launches</th><th>execs</th><th>exec/s</th><th>cov</th><th>findings</th>
<th>dropped</th></tr>{rows}</table>
<h2>Worker deaths</h2><ul>{deaths or '<li>none</li>'}</ul>
<h2>Problems</h2><ul>{problems or '<li>none</li>'}</ul>
</body></html>
"""
    path = os.path.join(campaign_dir, "report.html")
    atomic_write(path, doc)
    return path
