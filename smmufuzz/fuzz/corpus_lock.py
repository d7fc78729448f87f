"""One campaign per corpus directory: an fcntl.flock on CORPUS/.campaign.lock, held by the campaign and by
every worker it starts (they inherit the lock's open file, which keeps the lock until the last one closes it).
The file names the campaign's pid and its running workers' pids."""

import fcntl
import os


class CorpusBusy(Exception):
    """Another campaign holds the corpus lock (one-line message naming its pid)."""


class CorpusLock:
    def __init__(self, corpus_root: str):
        self.path = os.path.join(corpus_root, ".campaign.lock")
        self.fd: int | None = None

    def __enter__(self) -> "CorpusLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lines = os.pread(fd, 4096, 0).decode(errors="replace").splitlines()
            os.close(fd)
            holder = lines[0].strip() if lines and lines[0].strip() else "unknown"
            workers = lines[1].split(":", 1)[1].split() if len(lines) > 1 and ":" in lines[1] else []
            alive = holder.isdigit() and os.path.exists(f"/proc/{holder}")
            who = f"pid {holder}" + ("" if alive or not holder.isdigit() else ", exited: its workers still run")
            if workers:
                who += f"; workers {' '.join(workers)}"
            raise CorpusBusy(f"{os.path.dirname(self.path) or '.'}: another campaign is running on this corpus "
                             f"({who}; lock {self.path}); wait for it or use another --corpus") from None
        self.fd = fd
        self.set_workers([])
        return self

    def set_workers(self, pids) -> None:
        """Rewrite the file: the campaign's pid, then the pids of its running workers."""
        data = f"{os.getpid()}\nworkers: {' '.join(map(str, pids))}\n".encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)      # the file stays (unlinking would race a waiting campaign)
            os.close(self.fd)             # no LOCK_UN: that would release it for a worker still holding it too
            self.fd = None
