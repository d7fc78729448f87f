"""Benchmark results as a table (text, Markdown), JSON, and an SVG dot plot of time to exposure."""

import html
import json
import math
import os
import statistics

from .bench import Exposure

_COLOURS = {"default": "#1f77b4", "hybrid": "#d62728", "random": "#7f7f7f", "hypothesis": "#2ca02c"}


def summarize(results: list[Exposure]) -> list[dict]:
    """One row per (mode, variant): found k/K, median and range of seconds and execs over the found runs,
    median exec/s over all runs."""
    rows: dict[tuple, list[Exposure]] = {}
    for e in results:
        rows.setdefault((e.mode, e.variant), []).append(e)
    out = []
    for (mode, variant), runs in rows.items():
        hit = [e for e in runs if e.found]
        secs = [e.seconds for e in hit]
        out.append({
            "mode": mode, "variant": variant, "found": len(hit), "runs": len(runs),
            "median_s": round(statistics.median(secs), 2) if secs else None,
            "range_s": [round(min(secs), 2), round(max(secs), 2)] if secs else None,
            "median_execs": int(statistics.median([e.execs for e in hit])) if hit else None,
            "exec_per_sec": round(statistics.median([e.exec_per_sec for e in runs]), 1),
            "startup_s": round(statistics.median([e.startup for e in runs]), 1),
            "kinds": sorted({e.kind for e in hit if e.kind}),
        })
    return out


_HEAD = ("mode", "variant", "found", "median s", "range s", "median execs", "exec/s", "finding kinds")


def _cells(r: dict) -> tuple:
    rng = f"{r['range_s'][0]}-{r['range_s'][1]}" if r["range_s"] else "-"
    return (r["mode"], r["variant"], f"{r['found']}/{r['runs']}", "-" if r["median_s"] is None else str(r["median_s"]),
            rng, "-" if r["median_execs"] is None else str(r["median_execs"]), str(r["exec_per_sec"]),
            ", ".join(r["kinds"]) or "-")


def format_text(rows: list[dict]) -> str:
    cells = [_HEAD] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    last = len(_HEAD) - 1
    return "\n".join("  ".join(c.ljust(w) if i < 2 or i == last else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in cells)


def format_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * 2 + "---:|" * (len(_HEAD) - 3) + "---|"]
    lines += ["| " + " | ".join(f"`{c}`" if i == 1 else c for i, c in enumerate(_cells(r))) + " |" for r in rows]
    return "\n".join(lines)


def svg_plot(results: list[Exposure], cap: float) -> str:
    """Seconds to exposure per run on a log axis, one row per variant, one colour per mode; a run that
    found nothing is a hollow marker at the cap."""
    variants = list(dict.fromkeys(e.variant for e in results))
    modes = list(dict.fromkeys(e.mode for e in results))
    lo, hi = 0.001, max(cap, 1.0)
    left, width, row_h, top = 230, 560, 22 * max(1, len(modes)), 30
    height = top + row_h * len(variants) + 50

    def x(s: float) -> float:
        s = min(max(s, lo), hi)
        return left + width * (math.log10(s) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 130}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="16">seconds to first exposure (log scale; hollow = not found within '
             f'{cap:g} s)</text>']
    dec = 10 ** math.floor(math.log10(lo))
    while dec <= hi * 1.0001:
        parts.append(f'<line x1="{x(dec):.1f}" y1="{top}" x2="{x(dec):.1f}" y2="{height - 40}" stroke="#ddd"/>'
                     f'<text x="{x(dec):.1f}" y="{height - 26}" text-anchor="middle">{dec:g}</text>')
        dec *= 10
    parts.append(f'<line x1="{x(cap):.1f}" y1="{top}" x2="{x(cap):.1f}" y2="{height - 40}" stroke="#999" '
                 'stroke-dasharray="4 3"/>')
    for vi, v in enumerate(variants):
        y0 = top + vi * row_h
        parts.append(f'<text x="{left - 8}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end">{html.escape(v)}</text>'
                     f'<line x1="{left}" y1="{y0 + row_h}" x2="{left + width}" y2="{y0 + row_h}" stroke="#eee"/>')
        for mi, m in enumerate(modes):
            y = y0 + 11 + 22 * mi          # one 22-pixel lane per mode
            c = _COLOURS.get(m, "#000")
            for e in results:
                if e.variant == v and e.mode == m:
                    fill = c if e.found else "none"
                    sx = e.seconds if e.found else cap
                    parts.append(f'<circle cx="{x(sx):.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="{c}">'
                                 f'<title>{html.escape(m)} seed {e.seed}: '
                                 f'{"%.3f s, %d execs" % (e.seconds, e.execs) if e.found else "not found"}'
                                 '</title></circle>')
    for mi, m in enumerate(modes):
        ly = top + 12 + mi * 16
        parts.append(f'<circle cx="{left + width + 20}" cy="{ly}" r="4" fill="{_COLOURS.get(m, "#000")}"/>'
                     f'<text x="{left + width + 30}" y="{ly + 4}">{html.escape(m)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _programs(results: list[Exposure]) -> str:
    """Each exposure's minimised program (the first seed's per mode and variant), as replayable text."""
    out, seen = [], set()
    for e in results:
        if e.program and (e.mode, e.variant) not in seen:
            seen.add((e.mode, e.variant))
            out.append(f"\n## {e.variant} ({e.mode}, seed {e.seed}, {e.seconds:.1f} s): {e.kind}\n\n"
                       f"```\n# target: {e.variant}\n# expect: {e.kind}\n{e.program}```\n")
    return ("\n# Minimised programs (replay: save one to a file, `smmufuzz replay FILE`)\n" + "".join(out)) if out else ""


def write_results(out_dir: str, results: list[Exposure], meta: dict) -> list[str]:
    """results.json, results.md, plot.svg and index.html (the plot inline, then the table)."""
    os.makedirs(out_dir, exist_ok=True)
    rows = summarize(results)
    paths = {k: os.path.join(out_dir, k) for k in ("results.json", "results.md", "plot.svg", "index.html")}
    with open(paths["results.json"], "w") as f:
        json.dump({"meta": meta, "summary": rows, "runs": [e.as_dict() for e in results]}, f, indent=1)
    md = (f"# smmufuzz bench\n\n`{meta.get('command', '')}`\n\ncap {meta.get('cap')} s per run, seeds "
          f"{meta.get('seeds')}; seconds and execs are medians over the runs that found the bug; exec/s is the "
          "median over all runs. A finding that the variant's correct control also gives does not count: "
          + (", ".join(f"`{v}` vs `{'`, `'.join(c)}`" for v, c in meta.get("controls", {}).items()) or "no controls")
          + ".\n\n" + format_markdown(rows) + "\n" + _programs(results))
    with open(paths["results.md"], "w") as f:
        f.write(md)
    svg = svg_plot(results, meta.get("cap", 1))
    with open(paths["plot.svg"], "w") as f:
        f.write(svg + "\n")
    with open(paths["index.html"], "w") as f:
        f.write("<!doctype html><meta charset='utf-8'><title>smmufuzz bench</title>\n<h1>smmufuzz bench</h1>\n"
                f"<p><code>{html.escape(meta.get('command', ''))}</code></p>\n{svg}\n<pre>{html.escape(format_text(rows))}"
                "</pre>\n")
    return list(paths.values())
