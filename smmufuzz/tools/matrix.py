"""`smmufuzz matrix`: rule x driver outcome table of the seed-000 family, computed by replaying the
committed corpus (seeds and the gather/smmuv3/pte-sync regressions; driver bugs that every rule shares,
like corpus/regressions/virtio/, are left out) on every pair; never typed by hand."""

import glob
import os

from ..variants import gather_rules
from ..variants.registry import GATHER_BUGGY, GATHER_DRIVERS, GATHER_FOUND
from ..prog.load import load_program
from ..exec.runner import run_program


def corpus_programs(root: str) -> list[tuple[str, object]]:
    files = sorted(glob.glob(os.path.join(root, "seeds", "**", "*.txt"), recursive=True)
                   + glob.glob(os.path.join(root, "regressions", "gather", "*.txt"))
                   + glob.glob(os.path.join(root, "regressions", "smmuv3", "*.txt"))
                   + glob.glob(os.path.join(root, "regressions", "pte-sync", "*.txt")))
    return [(os.path.relpath(f, root), load_program(f)[0]) for f in files]


def gather_matrix(root: str) -> dict:
    progs = corpus_programs(root)
    cells = {}
    for rule in gather_rules.RULES:
        for drv in GATHER_DRIVERS:
            name = f"gather:{rule}:{drv}"
            kinds: dict[str, list[str]] = {}
            inv_pages = cmds = full = 0
            for path, prog in progs:
                run = run_program(prog, [name], figures=True).runs[0]
                if run.finding:
                    kinds.setdefault(run.finding.kind, []).append(path)
                for k in ("unmap", "unmap_fast", "sync"):
                    f = run.stats["per_op"].get(k)
                    if f:
                        inv_pages += f["inv_pages"]
                        cmds += f["cmds"]
                        full += f["full_flushes"]
            cells[(rule, drv)] = {"kinds": kinds, "inv_pages": inv_pages, "cmds": cmds, "full": full,
                                  "expected_buggy": (rule, drv) in GATHER_BUGGY,
                                  "found_here": (rule, drv) in GATHER_FOUND}
    return {"programs": [p for p, _ in progs], "cells": cells}


def format_markdown(m: dict) -> str:
    drivers = list(GATHER_DRIVERS)
    out = ["| rule \\ driver | " + " | ".join(drivers) + " |", "|---|" + "---|" * len(drivers)]
    for rule in gather_rules.RULES:
        row = [rule]
        for drv in drivers:
            c = m["cells"][(rule, drv)]
            got = ", ".join(f"{k} ({len(v)})" for k, v in sorted(c["kinds"].items())) or "clean"
            if bool(c["kinds"]) == c["expected_buggy"]:
                mark = ""
            elif c["found_here"] and c["kinds"]:
                mark = " (not in the thread)"
            else:
                mark = " **(unexpected)**"
            row.append(f"{got}{mark} · {c['cmds']} inv, {c['inv_pages']} pages, {c['full']} full")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(f"Cells: finding kinds with the number of corpus programs that show them, then the invalidations "
               f"(commands or register writes), pages covered by by-address ones (4K units) and full "
               f"(context/ASID) flushes that unmap/unmap_fast/iotlb_sync issued over all "
               f"{len(m['programs'])} programs of corpus/seeds and corpus/regressions. "
               f"**(unexpected)** marks a cell that disagrees with the seed-000 thread's verdict; "
               f"\"not in the thread\" marks a defect smmufuzz found that the thread did not discuss.")
    return "\n".join(out)
