"""The findings store: one JSON record (plus its minimised reproducer) per finding signature, written atomically."""

import errno
import hashlib
import json
import os
import re
import time


class DiskFull(Exception):
    """No space left while writing campaign state (one-line message)."""


def atomic_write(path: str, data: str) -> None:
    """Write through a temp file in the same directory and os.replace it: readers see old or new, never half."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"disk full writing {path}: {e.strerror}") from None
        raise


def signature_key(signature: dict) -> str:
    """A short stable name for (kind, variants affected, op shape)."""
    blob = json.dumps([signature["kind"], signature["variants"], signature["shape"]], separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


class FindingsStore:
    """`DIR/<kind>-<key>.json` + `.txt` per signature; `DIR/processed.json` names the crash artifacts already counted."""

    def __init__(self, root: str):
        self.root = root
        self.problems: list[str] = []        # records that could not be read (reported, kept on disk)
        self.unreadable: list[tuple[str, str]] = []     # (path, why) of each record among them
        self.records: dict[str, dict] = {}
        os.makedirs(root, exist_ok=True)
        for name in sorted(os.listdir(root)):
            if not name.endswith(".json") or name == "processed.json":
                continue
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    rec = json.load(f)
                self.records[rec["key"]] = rec
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.unreadable.append((path, f"{type(e).__name__}: {e}"))
                self.problems.append(f"{path}: unreadable finding record, skipped ({type(e).__name__}: {e})")
        self.processed: set[str] = set()
        ppath = os.path.join(root, "processed.json")
        if os.path.exists(ppath):
            try:
                with open(ppath) as f:
                    self.processed = set(json.load(f))
            except (OSError, ValueError, TypeError) as e:
                self.problems.append(f"{ppath}: unreadable, artifacts may be counted again ({e})")

    def path_of(self, key: str, ext: str = ".json") -> str:
        rec = self.records[key]
        return os.path.join(self.root, f"{rec['kind'].lower()}-{key}{ext}")

    def record(self, signature: dict, *, target: str, finding_text: str, reproducer: str, reproducer_path: str,
               replay: str, artifact: str, campaign: str, seconds: float, coarse=(),
               verdict: dict | None = None, execs: int | None = None) -> tuple[dict, bool]:
        """Count one hit of `signature`; returns (record, is_new). First-seen is kept (the campaign's seconds
        and, if known, the target's executions by then); hits add up across runs; `verdict` ({"verdict",
        "verdict_why"}, verdict.py) is the latest triage's."""
        key = signature_key(signature)
        now = {"campaign": campaign, "seconds": round(seconds, 1), **({"execs": execs} if execs is not None else {}),
               "wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        rec = self.records.get(key)
        new = rec is None
        if new:
            rec = {"key": key, **signature, "target": target, "targets": [target], "first_seen": now, "hits": 0,
                   "tolerated_hits": 0, "coarse": sorted(list(c) for c in coarse), "finding": finding_text,
                   "reproducer": reproducer_path, "replay": replay, "artifacts": []}
            self.records[key] = rec
            atomic_write(self.path_of(key, ".txt"), reproducer)
        rec["hits"] += 1
        rec["last_seen"] = now
        if verdict:
            rec.update(verdict)
        if target not in rec["targets"]:
            rec["targets"].append(target)
        if len(rec["artifacts"]) < 5:
            rec["artifacts"].append(artifact)
        atomic_write(self.path_of(key), json.dumps(rec, indent=1) + "\n")
        return rec, new

    def coarse_signatures(self) -> list[tuple]:
        """(kind, variant, kernel call) of every finding of every stored reproducer: what workers may tolerate."""
        return [tuple(c) for rec in self.records.values() for c in rec.get("coarse", [])]

    def add_tolerated(self, coarse: tuple, n: int) -> str | None:
        """Count `n` inputs a worker tolerated as known for the earliest record with that coarse signature."""
        recs = [r for r in self.records.values() if list(coarse) in r.get("coarse", [])]
        if not recs:
            return None
        rec = min(recs, key=lambda r: (r["first_seen"]["wall"], r["first_seen"]["seconds"], r["key"]))
        rec["tolerated_hits"] = rec.get("tolerated_hits", 0) + n
        atomic_write(self.path_of(rec["key"]), json.dumps(rec, indent=1) + "\n")
        return rec["key"]

    def mark_processed(self, artifact_ids) -> None:
        self.processed.update(artifact_ids)
        atomic_write(os.path.join(self.root, "processed.json"), json.dumps(sorted(self.processed)) + "\n")


class StoreError(Exception):
    """A findings store that cannot be read whole (one-line message): export and merge write nothing then."""


FINDING_HEAD = re.compile(r"^(\w+) in variant (\S+) at op (-?\d+): (.*)$")     # runner.Finding.text()'s first line
_FIELDS = {"key": str, "kind": str, "variants": list, "target": str, "finding": str, "hits": int,
           "first_seen": dict}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
               dict: "an object", type(None): "null"}


def load_records(corpus_root: str) -> list[dict]:
    """Every record of `corpus_root`/findings, each checked (check_record); any unreadable one is a StoreError."""
    root = os.path.join(corpus_root, "findings")
    if not os.path.isdir(root):
        raise StoreError(f"{corpus_root}: no findings/ directory (not a corpus root, or nothing found yet)")
    store = FindingsStore(root)
    if store.unreadable:
        path, why = store.unreadable[0]
        more = f" (and {len(store.unreadable) - 1} more)" if len(store.unreadable) > 1 else ""
        raise StoreError(f"{path}: unreadable finding record ({why}){more}")
    for rec in store.records.values():
        check_record(rec, corpus_root)
    return list(store.records.values())


def check_record(rec: dict, corpus_root: str) -> None:
    """A StoreError naming the record's file if a field export or merge relies on is missing or mistyped."""
    for name, typ in _FIELDS.items():
        if not isinstance(rec.get(name), typ) or isinstance(rec.get(name), bool):
            got = "missing" if name not in rec else _TYPE_NAMES.get(type(rec[name]), type(rec[name]).__name__)
            raise StoreError(f"{record_file(rec, corpus_root)}: finding record field {name!r} should be "
                             f"{_TYPE_NAMES[typ]}, is {got}")
    if not FINDING_HEAD.match(rec["finding"].split("\n", 1)[0]):
        raise StoreError(f"{record_file(rec, corpus_root)}: finding record field 'finding' does not start "
                         "with 'KIND in variant V at op N: CALL'")


def record_file(rec: dict, corpus_root: str, ext: str = ".json") -> str:
    """Where the store under `corpus_root` keeps a record (as path_of) or, with ext .txt, its reproducer."""
    root = os.path.join(corpus_root, "findings")
    if isinstance(rec.get("kind"), str):
        return os.path.join(root, f"{rec['kind'].lower()}-{rec['key']}{ext}")
    named = [n for n in sorted(os.listdir(root)) if n.endswith(f"-{rec.get('key')}{ext}")] \
        if os.path.isdir(root) else []
    return os.path.join(root, named[0]) if named else root


def read_reproducer(path: str) -> str:
    """A finding's reproducer text; a StoreError naming the file if it cannot be read or is not text."""
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise StoreError(f"{path}: the finding's reproducer cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise StoreError(f"{path}: the finding's reproducer is not text") from None
