"""The fuzz target's schedule searches spread over executions within a share of the program runs.

A search (fuzz_target.race_steps: one more switch, collisions, completions) is a generator that yields
after every program run. Inputs whose own run reached an interleaving or cache shape this process had not
seen, or that put side by side two op kinds few earlier searched inputs did (fuzz_target.race_pairs), go
first; the others are searched only when nothing better waits. After each input, searches advance one run
at a time while the runs they took stay within SHARE of all runs (the input's own runs count too), so a
search of 40 schedules costs a bit of many executions instead of all of one. Counted in program runs, not
seconds, so the same inputs in the same order search the same schedules.
"""

from collections import deque

SHARE = 1 / 3          # at most this share of all program runs go to schedule searches
PENDING = 64           # fresh searches waiting at most


class RaceQueue:
    """Pending schedule searches, advanced within SHARE of the runs."""

    def __init__(self, share: float | None = None, pending: int = PENDING):
        self.share, self.pending = SHARE if share is None else share, pending
        self.own = 0            # runs of inputs as libFuzzer gave them
        self.searched = 0       # runs of searched schedules
        self.fresh: deque = deque()
        self.other: deque = deque()

    def __len__(self) -> int:
        return len(self.fresh) + len(self.other)

    def ran(self, runs: int) -> None:
        """An input's own runs (one per variant)."""
        self.own += runs

    def offer(self, steps, fresh: bool) -> bool:
        """Queue a search (whether it was): a fresh one unless PENDING fresh ones wait (a search under way
        is not dropped), an unfresh one only when nothing waits (it would never be reached otherwise)."""
        if fresh and len(self.fresh) < self.pending:
            self.fresh.append(steps)
            self.other.clear()
            return True
        if not fresh and not len(self):
            self.other.append(steps)
            return True
        return False

    def allowance(self) -> bool:
        return self.searched < self.share / (1 - self.share) * self.own

    def advance(self):
        """Advance the searches while the share allows; what the first search to end with a result
        returned (None when none did)."""
        while len(self) and self.allowance():
            q = self.fresh if self.fresh else self.other
            try:
                next(q[0])
                self.searched += 1
            except StopIteration as stop:
                q.popleft()
                if stop.value is not None:
                    return stop.value
        return None
