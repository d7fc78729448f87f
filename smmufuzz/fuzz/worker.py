"""One campaign worker launch: a libFuzzer (atheris) process on one target for one time slice, and its log."""

import os
import re
import signal
import subprocess
import time

from .lifeline import die_with_parent

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/\S+(?: .*?exec/s: (\d+))?", re.M)
# -fork=N mode: the parent's own line (its cov figures are not comparable with single-process ones)
_FORK_STATUS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s (\d+)", re.M)
_FINAL = re.compile(r"stat::(\w+):\s*(\d+)")
_DONE = re.compile(r"^Done \d+ runs in (\d+) second", re.M)
MUTATE_DEPTH = 5            # libFuzzer runs up to this many mutants of an input between two looks at the clock

EXIT_OK, EXIT_TIMEOUT, EXIT_OOM, EXIT_INTERRUPTED, EXIT_CRASH = 0, 70, 71, 72, 77


class Launch:
    """A running libFuzzer process; `poll()` reads its log incrementally for exec count, cov, ft and corpus."""

    def __init__(self, slot: int, number: int, target: str, seed: int, args: list[str], log_path: str,
                 seconds: int, env: dict | None = None, keep_fds: tuple = ()):
        self.slot, self.number, self.target, self.seed = slot, number, target, seed
        self.seconds = seconds
        self.log_path = log_path
        self.execs = self.cov = self.ft = self.corp = self.rate = 0
        self.final = False
        self.stopped = False                  # stopped by the campaign (deadline or Ctrl-C), not a death
        self.inited_at: float | None = None    # when libFuzzer had run the whole corpus (INITED)
        self.output_at: float | None = None    # when libFuzzer's "INFO: Seed:" line reached the log (its clock runs)
        self.line_at: float | None = None      # when its last status line reached the log
        self.fork = False                      # -fork=N: the parent's status lines
        self.fuzzer_seconds: int | None = None  # the time libFuzzer itself counted ("Done N runs in S second(s)")
        self.returncode: int | None = None
        self.started = time.time()
        self.ended: float | None = None
        with open(log_path, "a") as log:
            log.write(f"=== launch {number} target {target} seed {seed} time {seconds}s ===\n")
            self._offset = log.tell()
            # a session of its own: a terminal's Ctrl-C reaches the campaign, which stops workers in order;
            # killed when the campaign dies (lifeline.py); `keep_fds` (the corpus lock) stay open in it
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env, preexec_fn=die_with_parent(),
                                         pass_fds=keep_fds)

    def _read_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return ""
        cut = chunk.rfind(b"\n") + 1           # whole lines only
        self._offset += cut
        return chunk[:cut].decode(errors="replace")

    def poll(self) -> int | None:
        """Update figures from the log; the exit code once the process has ended."""
        rc = self.proc.poll()
        text = self._read_log()
        if self.output_at is None and ("INFO: Seed:" in text or "INITED" in text):
            self.output_at = time.time()
        done = _DONE.search(text)
        if done:
            self.fuzzer_seconds = int(done.group(1))
        if self.inited_at is None and ("INITED" in text or "INFO: A corpus is not provided" in text):
            self.inited_at = time.time()
        fork = list(_FORK_STATUS.finditer(text))
        if fork and self.inited_at is None:
            self.inited_at = time.time()
        if fork:
            self.fork = True
        for m in list(_STATUS.finditer(text)) + fork:
            self.line_at = time.time()
            n, cov, ft, corp = map(int, m.groups()[:4])
            self.execs = max(self.execs, n)
            self.cov, self.ft, self.corp = max(self.cov, cov), max(self.ft, ft), corp
            self.rate = int(m.group(5) or self.rate)
        final = dict((k, int(v)) for k, v in _FINAL.findall(text))
        if "number_of_executed_units" in final:
            self.execs = final["number_of_executed_units"]
            self.final = True
        if rc is not None and self.returncode is None:
            self.returncode = rc
            self.ended = time.time()
        return self.returncode

    def budget_end(self) -> float | None:
        """When libFuzzer stops by -max_total_time at the latest, or None while it cannot tell (no output yet,
        or the corpus still being replayed: libFuzzer looks at its clock only between fuzzing rounds). Its clock
        starts inside the process, after the interpreter has started (and atheris has instrumented the
        modules) and before libFuzzer's "INFO: Seed:" line (start-up before it is not in -max_total_time); it stops once more than the whole seconds have passed, after
        the round under way (MUTATE_DEPTH inputs at its last exec/s)."""
        if self.output_at is None or self.inited_at is None:
            return None
        rnd = min(30.0, MUTATE_DEPTH / self.rate) if self.rate else 0.0
        return max(self.output_at + self.seconds + 1, self.inited_at) + rnd

    def overdue(self, now: float, grace: float) -> bool:
        """Still running `grace` seconds past budget_end(): a real overrun (a slow input)."""
        end = self.budget_end()
        return self.returncode is None and end is not None and now > end + grace

    def execs_now(self) -> int:
        """libFuzzer logs a status line only on new coverage and at powers of two: between them, the count
        is estimated from its last exec/s figure since that line, and stays below the next power of two (a
        count that reached it would have logged a line); the final stats replace the estimate."""
        if self.final or self.returncode is not None or not self.line_at:
            return self.execs
        guess = self.execs + int(self.rate * (time.time() - self.line_at))
        if not self.fork:
            guess = min(guess, (1 << self.execs.bit_length()) - 1)
        return max(self.execs, guess)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (libFuzzer exits 72 with its final stats), then SIGKILL after `grace` seconds."""
        if self.proc.poll() is None:
            self.stopped = True
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except ProcessLookupError:
                pass
        try:                # what the worker started itself (libFuzzer -fork jobs) goes with it
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.poll()

    def tail(self, n: int = 8) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        return "\n".join(ln for ln in lines[-n:])

    def describe_exit(self) -> str:
        rc = self.returncode
        if rc is None:
            return "running"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return {EXIT_OK: "time slice done", EXIT_CRASH: "crash input", EXIT_TIMEOUT: "timeout input",
                EXIT_OOM: "out of memory", EXIT_INTERRUPTED: "interrupted"}.get(rc, f"exit code {rc}")


def fresh_artifacts(crash_dir: str, known: set[str]) -> list[str]:
    """Crash/timeout/oom inputs libFuzzer wrote that are not yet in `known` (names), oldest first."""
    try:
        names = [n for n in os.listdir(crash_dir)
                 if n.split("-", 1)[0] in ("crash", "timeout", "oom", "leak") and not n.endswith(".txt")]
    except OSError:
        return []
    paths = [os.path.join(crash_dir, n) for n in names if n not in known]

    def mtime(p):
        try:
            return os.stat(p).st_mtime
        except OSError:
            return 0.0
    return sorted(paths, key=mtime)
