"""One campaign per corpus directory: an fcntl.flock on CORPUS/.campaign.lock held for the campaign's lifetime."""

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
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CorpusBusy(f"{os.path.dirname(self.path) or '.'}: another campaign is running on this corpus "
                             f"(pid {holder}, lock {self.path}); wait for it or use another --corpus") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)      # the file stays (unlinking would race a waiting campaign)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
