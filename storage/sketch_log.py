"""The sketch store's log writes: ``writev`` of a record's pieces, whole even across short writes,
and the opt-in writer thread (``SketchStore(background_writes=True)``)."""

from __future__ import annotations

import os
import queue
import threading

Buffer = bytes | memoryview
# Linux caps one writev at IOV_MAX (1024) pieces.
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


def _writev_all(fd: int, iov: list[Buffer]) -> None:
    """Write every piece, in order: batches of at most IOV_MAX, resuming after a short write
    (a full disk or a signal) so a record is never silently cut short in the middle."""
    views = [memoryview(b).cast("B") for b in iov]
    while views:
        batch = views[:_IOV_MAX]
        written = os.writev(fd, batch)
        if written == 0 and any(v.nbytes for v in batch):
            raise OSError("sketch store log: writev wrote nothing")
        done = 0
        while done < len(batch) and written >= batch[done].nbytes:
            written -= batch[done].nbytes
            done += 1
        views = views[done:]
        if written and views:
            views[0] = views[0][written:]


class _LogWriter:
    """The store's own log writer thread. Writing a per-series window batch is ~0.5 MB into the
    page cache (~1 ms); done on the emitting worker's thread it stalled ingest. ``writev`` and
    ``crc32`` release the GIL, so here they overlap the worker. FIFO keeps the log order (a key
    record before the batch that uses it); the bounded queue pushes back on a slow disk."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[int, list[Buffer]] | None] = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, fd: int, iov: list[Buffer]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sketch-log", daemon=True)
            self._thread.start()
        self._queue.put((fd, iov))

    def drain(self) -> None:
        """Return once everything submitted is in the log (the OS page cache)."""
        self._queue.join()
        self._raise()

    def stop(self) -> None:
        """Drain, then end the thread (a later ``submit`` starts a new one)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise OSError("sketch store log write failed") from error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            fd, iov = item
            try:
                if self._error is None:  # after a failure, later records must not follow it
                    _writev_all(fd, iov)
            except BaseException as e:  # reported to the next append, drain or close
                self._error = e
            finally:
                self._queue.task_done()
