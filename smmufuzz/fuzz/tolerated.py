"""Known findings a campaign worker counts instead of stopping on: the campaign's list, and the worker's tally.

A finding is known by its coarse signature (kind, variant, kernel call it happened at), the part of the
dedup signature that op-level minimisation keeps. The campaign writes every stored finding's coarse
signatures to a JSON file named by $SMMUFUZZ_KNOWN; a worker whose input gives only known findings does
not raise (libFuzzer keeps going) and tallies it into $SMMUFUZZ_HITS, rewritten every 2 s.
"""

import json
import os
import time

KNOWN_ENV, HITS_ENV = "SMMUFUZZ_KNOWN", "SMMUFUZZ_HITS"
KEEP_GOING_ENV = "SMMUFUZZ_KEEP_GOING"   # "1": save a new finding that is not UNEXPECTED and carry on (Tally.learn)
FLUSH_EVERY = 2.0


def write_known(path: str, signatures) -> None:
    from .findings_store import atomic_write
    atomic_write(path, json.dumps(sorted(list(s) for s in set(map(tuple, signatures)))) + "\n")


def read_known(path: str | None) -> frozenset:
    if not path:
        return frozenset()
    try:
        with open(path) as f:
            return frozenset(tuple(s) for s in json.load(f))
    except (OSError, ValueError, TypeError):
        return frozenset()


def read_tally(path: str) -> dict[tuple, int]:
    try:
        with open(path) as f:
            return {tuple(row[:3]): int(row[3]) for row in json.load(f)}
    except (OSError, ValueError, TypeError, IndexError):
        return {}


class Tally:
    """The worker side: `known(findings)` says whether to carry on; counts are flushed every 2 s (what a
    launch tallies in its last 2 s is lost: libFuzzer ends the process without Python's exit handlers)."""

    def __init__(self, known: frozenset, path: str | None):
        self.known, self.path = known, path
        self.counts: dict[tuple, int] = {}
        self.dirty = False
        self.last = time.monotonic()

    def tolerate(self, findings, prog=None) -> bool:
        """Whether every finding is known; with `prog`, an UNEXPECTED one (on a variant marked correct, and
        not a known design finding) never is: each stops the worker and is triaged on its own, so that it
        is not counted under a stored finding that only shares its kind, variant and kernel call."""
        if not self.known:
            return False
        sigs = [f.signature() for f in findings]
        if not all(s in self.known for s in sigs):
            return False
        if prog is not None and _unexpected(findings, prog):
            return False
        self.counts[sigs[0]] = self.counts.get(sigs[0], 0) + 1
        self.dirty = True
        return True

    def learn(self, findings, prog) -> bool:
        """A new finding a worker saves and carries on from: unless one of them is UNEXPECTED (those stop the
        worker), their signatures are known from now on (later hits are tallied; this one the campaign counts
        when it triages the saved input). Returns whether the worker carries on."""
        if _unexpected(findings, prog):
            return False
        self.known = self.known | {f.signature() for f in findings}
        return True

    def maybe_flush(self) -> None:
        if self.dirty and self.path and time.monotonic() - self.last >= FLUSH_EVERY:
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                json.dump([[*k, n] for k, n in self.counts.items()], f)
            os.replace(tmp, self.path)
            self.dirty = False
            self.last = time.monotonic()


def _unexpected(findings, prog) -> bool:
    """Is one of prog's findings UNEXPECTED (on a variant marked correct, and not a known design finding)?"""
    from ..exec.verdict import UNEXPECTED, classify
    return any(classify(f, prog).cls == UNEXPECTED for f in findings)


def from_environment() -> Tally:
    return Tally(read_known(os.environ.get(KNOWN_ENV)), os.environ.get(HITS_ENV))
