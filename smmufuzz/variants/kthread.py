"""Kernel execution primitives for cooperative tasks: preemption points, mutexes, qrwlocks, irqsave.

Code that can run concurrently is written as generators that `yield` one of these requests at every
point where another CPU (or an interrupt on the same CPU) may interleave: a shared-memory load or
store, a lock acquire or release, a command publication. Whoever drives the generator decides what
runs next; `drain()` runs one to completion alone (the sequential semantics).
"""

from typing import NamedTuple


class Point(NamedTuple):
    """A preemption point after (or before) a shared-memory access, named for the trace; `reads` and
    `writes` name the shared objects the step accessed (hashable keys, e.g. ("invs", id(domain))), as
    KCSAN would see them: the scheduler records them so that a race search can aim at the window
    between two accesses of one object."""
    label: str
    reads: tuple = ()
    writes: tuple = ()


class Lock:
    """A mutex (mutex_lock) or an rwlock (rwlock_t: queued, kernel/locking/qrwlock.c)."""

    def __init__(self, name: str, rw: bool = False, fair: bool = False):
        self.name = name
        self.rw = rw
        self.fair = fair              # PREEMPT_RT-like: readers in interrupt context queue behind writers too
        self.writer = None            # holder (task) of the exclusive side
        self.readers: list = []       # holders of the shared side
        self.waiting_writers: list = []

    def __repr__(self) -> str:
        return f"Lock({self.name})"


class Acquire(NamedTuple):
    """mutex_lock / write_lock[_irqsave] (shared=False) or read_lock[_irqsave] (shared=True)."""
    lock: Lock
    shared: bool = False
    irqsave: bool = False


class Release(NamedTuple):
    """mutex_unlock / write_unlock[_irqrestore] / read_unlock[_irqrestore]."""
    lock: Lock
    shared: bool = False
    irqsave: bool = False


class Deadlock(Exception):
    """A task waits for a lock no task can release (`holders`: the tasks holding it or queued first)."""

    def __init__(self, message: str, holders: tuple = ()):
        super().__init__(message)
        self.holders = holders


class Livelock(Exception):
    """A task kept running without finishing its operation (a loop that never advances)."""


DRAIN_STEP_LIMIT = 20000


def drain(gen):
    """Run a task body alone to completion and return its result (no other task can hold a lock)."""
    me = "drain"
    steps = 0
    try:
        req = next(gen)
        while True:
            steps += 1
            if steps > DRAIN_STEP_LIMIT:
                raise Livelock(f"no progress after {DRAIN_STEP_LIMIT} steps (last: {req})")
            if isinstance(req, Acquire):
                grant(req, me, in_irq=False)
            elif isinstance(req, Release):
                release(req, me)
            req = gen.send(None)
    except StopIteration as e:
        return e.value


def can_acquire(req: Acquire, task, in_irq: bool) -> bool:
    """May `task` take the lock now? qrwlock: a reader in interrupt context passes a waiting writer."""
    lk = req.lock
    if not req.shared:
        return lk.writer is None and not lk.readers
    if lk.writer is not None:
        return False
    if lk.waiting_writers and not (in_irq and not lk.fair):
        return False
    return True


def grant(req: Acquire, task, in_irq: bool) -> None:
    lk = req.lock
    if not can_acquire(req, task, in_irq):
        raise Deadlock(f"{task} waits for {lk.name}, held by {lk.writer or lk.readers or lk.waiting_writers}",
                       tuple([lk.writer] if lk.writer else lk.readers) + tuple(lk.waiting_writers))
    if req.shared:
        lk.readers.append(task)
    else:
        lk.writer = task
    if task in lk.waiting_writers:
        lk.waiting_writers.remove(task)


def release(req: Release, task) -> None:
    lk = req.lock
    if req.shared:
        lk.readers.remove(task)
    elif lk.writer == task:
        lk.writer = None
