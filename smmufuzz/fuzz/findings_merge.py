"""Findings stores from several machines or CI jobs merged into one corpus's `findings/` (and `regressions/`)."""

import copy
import json
import os
import socket
from dataclasses import dataclass, field

from .corpus_lock import CorpusLock
from .findings_store import (FindingsStore, StoreError, atomic_write, check_record, load_records, read_reproducer,
                             record_file)
from .fuzz import target_dirname


@dataclass
class MergeReport:
    new: list[str] = field(default_factory=list)        # signature keys the destination did not have
    updated: list[str] = field(default_factory=list)    # keys it had, now with the sources' hits
    sources: int = 0


def source_id(src_root: str) -> str:
    """A source store's name in a merged record's `merged_from`: merging the same store again replaces its
    contribution (its hits are not counted twice) instead of adding it."""
    return f"{socket.gethostname()}:{os.path.realpath(src_root)}"


def _seen_key(seen) -> tuple:
    """(UTC wall time, seconds into the campaign) of a first_seen/last_seen entry, for ordering."""
    seen = seen if isinstance(seen, dict) else {}
    seconds = seen.get("seconds", 0)
    return (str(seen.get("wall", "")), seconds if isinstance(seconds, (int, float)) else 0)


def _regression(src_root: str, rec: dict) -> tuple[str, str] | None:
    """The source's regressions/<target>/<kind>-<key>.txt for the record and its text, if it has one."""
    path = os.path.join(src_root, "regressions", target_dirname(rec["target"]),
                        f"{rec['kind'].lower()}-{rec['key']}.txt")
    return (path, read_reproducer(path)) if os.path.isfile(path) else None


def _contribute(rec: dict, sid: str, src: dict) -> None:
    """Set source `sid`'s hits in `rec` (replacing what an earlier merge of it counted)."""
    merged = rec.setdefault("merged_from", {})
    for name in ("hits", "tolerated_hits"):
        before = sum(c.get(name, 0) for c in merged.values())
        own = rec.get(name, 0) - before            # counted by campaigns on the destination itself
        merged.setdefault(sid, {})[name] = src.get(name, 0)
        rec[name] = own + sum(c.get(name, 0) for c in merged.values())


def _combine(rec: dict, src: dict) -> None:
    """Fold a source record of the same signature into `rec`: earliest first-seen, latest last-seen (and the
    verdict of that latest triage), targets, coarse signatures and artifacts united."""
    if _seen_key(src["first_seen"]) < _seen_key(rec["first_seen"]):
        rec["first_seen"] = src["first_seen"]
    if _seen_key(src.get("last_seen")) > _seen_key(rec.get("last_seen")):
        rec["last_seen"] = src["last_seen"]
        for name in ("verdict", "verdict_why"):
            if name in src:
                rec[name] = src[name]
    for t in src.get("targets", [src["target"]]):
        if t not in rec.setdefault("targets", [rec["target"]]):
            rec["targets"].append(t)
    rec["coarse"] = sorted({tuple(c) for c in rec.get("coarse", []) + src.get("coarse", [])})
    rec["coarse"] = [list(c) for c in rec["coarse"]]
    for a in src.get("artifacts", []):
        if a not in rec.setdefault("artifacts", []) and len(rec["artifacts"]) < 5:
            rec["artifacts"].append(a)


def merge(sources: list[str], into: str) -> MergeReport:
    """Merge the findings stores of corpus roots `sources` into corpus root `into` (created if need be), under
    its corpus lock. Every source is read and checked first: if any record or reproducer is bad, nothing is
    written (StoreError). Same signature key: one record, hits added up (per source, see source_id), the
    earliest first-seen kept; a reproducer the destination lacks is copied, with its regressions/ file."""
    into_real = os.path.realpath(into)
    read = []                   # (source, record, reproducer text, (regression path, text) or None)
    for src in sources:
        if os.path.realpath(src) == into_real:
            raise StoreError(f"{src}: is the destination (--into) itself")
        for rec in load_records(src):
            read.append((src, rec, read_reproducer(record_file(rec, src, ".txt")), _regression(src, rec)))
    os.makedirs(into, exist_ok=True)
    report = MergeReport(sources=len(sources))
    with CorpusLock(into):
        dest = FindingsStore(os.path.join(into, "findings"))
        if dest.unreadable:
            path, why = dest.unreadable[0]
            raise StoreError(f"{path}: unreadable finding record ({why})")
        for rec in dest.records.values():
            check_record(rec, into)
        touched: set[str] = set()
        for src, srec, text, regression in read:
            key = srec["key"]
            rec = dest.records.get(key)
            if rec is None:
                rec = copy.deepcopy(srec)
                rec.pop("merged_from", None)
                rec["hits"] = rec["tolerated_hits"] = 0
                dest.records[key] = rec
                report.new.append(key)
                _place_reproducer(dest, into, rec, text, regression)
            elif key not in report.new and key not in report.updated:
                report.updated.append(key)
            _contribute(rec, source_id(src), srec)
            _combine(rec, srec)
            touched.add(key)
        for key in sorted(touched):
            atomic_write(dest.path_of(key), json.dumps(dest.records[key], indent=1) + "\n")
    return report


def _place_reproducer(dest: FindingsStore, into: str, rec: dict, text: str, regression: tuple | None) -> None:
    """The new record's reproducer in the destination store; its `reproducer` and `replay` then name the
    destination's copy (its regressions/ file when the source had one, else the store's own)."""
    atomic_write(dest.path_of(rec["key"], ".txt"), text)
    path = dest.path_of(rec["key"], ".txt")
    if regression is not None:
        path = os.path.join(into, "regressions", target_dirname(rec["target"]), os.path.basename(regression[0]))
        if not os.path.exists(path):
            atomic_write(path, regression[1])
    rec["reproducer"] = path
    rec["replay"] = f"smmufuzz replay {path} --target {rec['target']}"
