"""Campaign workers die with their campaign, whatever kills it (kill -9 included).

A worker runs in a session of its own (a terminal's Ctrl-C reaches only the campaign), so nothing ties it to
the campaign by default. Two ties: the kernel's PR_SET_PDEATHSIG (SIGKILL to the worker when the campaign
dies), set between fork and exec; and, for what the worker starts itself (libFuzzer's -fork=N jobs run
through sh, where the death signal does not reach), a watchdog thread in every fuzz-target process that
polls the campaign's pid and start time and kills the worker's process group once it is gone. Workers also
inherit the corpus lock's file (corpus_lock.py), so the lock stays held until the last of them has exited.
"""

import ctypes
import os
import signal
import threading
import time

PARENT_ENV = "SMMUFUZZ_CAMPAIGN"      # "pid:start time:process group" of the campaign process
PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields and fields[0] == b"Z":           # a zombie: dead, not yet reaped
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def campaign_env() -> dict[str, str]:
    """The environment entry naming this process as the campaign its workers live for."""
    pid = os.getpid()
    return {PARENT_ENV: f"{pid}:{start_time(pid)}:{os.getpgrp()}"}


def die_with_parent():
    """A Popen preexec_fn: SIGKILL this child when the process that starts it dies (and exit at once if it
    already has). The kernel ties the signal to the starting *thread*: start workers from a thread that
    lives as long as they should (campaigns and `bench` start them from the main thread)."""
    parent = os.getpid()

    def preexec() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass                              # not Linux: the watchdog still ties the worker to the campaign
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def watch_campaign(poll: float = POLL_SECONDS) -> bool:
    """In a fuzz-target process started by a campaign: a daemon thread that kills this process's group (the
    worker and whatever it started) once the campaign process is gone. False when not started by one."""
    spec = os.environ.get(PARENT_ENV, "")
    try:
        pid, start, pgid = (int(x) for x in spec.split(":"))
    except ValueError:
        return False

    def gone() -> bool:
        return start_time(pid) != start

    def watch() -> None:
        while not gone():
            time.sleep(poll)
        mine = os.getpgrp()
        if mine != pgid:
            os.killpg(mine, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    if gone():
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="smmufuzz-lifeline", daemon=True).start()
    return True
