"""An exclusive lock on a data directory, held for as long as a store has it open.

Two processes appending to the same WAL and cutting the same blocks would corrupt both; like
Prometheus' ``lock`` file, the second opener fails at once with a clear error instead. The lock
is an ``flock`` on ``<dir>/lock``, so the kernel releases it when the holder dies (``kill -9``
leaves nothing stale to clean up).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirInUseError(OSError):
    """Another process (or another open store in this one) holds the data directory."""


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise DataDirInUseError(
                f"data directory {directory} is in use by another Tidemark process "
                "(query the running server over HTTP instead)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
