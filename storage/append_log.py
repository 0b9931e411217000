"""The earliest sample timestamp written since a mark.

Why: an answer computed from the samples in ``[mint, maxt]`` stays right for as long as no
sample at or before ``maxt`` has been written since (a new series is written as samples too).
Under live ingest the samples arriving are newer than a dashboard's aligned newest step, so the
answer for that step can be kept and checked with one lookup instead of being read and computed
again on every refresh.

A mark is a write count. The log keeps, for every write, its earliest timestamp, reduced to
what a query "earliest since mark m" can still need: a write whose earliest timestamp is not
below a later write's is dropped (the later one answers for both). What remains has increasing
marks and increasing timestamps, so the answer is the first entry past the mark. When the log
grows past ``KEPT`` entries its older half is merged pairwise into the later mark with the
earlier timestamp: answers for old marks can only get earlier (more conservative), never later.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from dataclasses import dataclass

EVERYTHING = -(1 << 63)  # "anything may have changed" (data deleted, or an unknown mark)
NOTHING = (1 << 63) - 1  # nothing written since


class AppendLog:
    KEPT = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._marks: list[int] = []  # increasing
        self._earliest: list[int] = []  # strictly increasing

    def __len__(self) -> int:
        """Entries kept (bounded by ``KEPT``)."""
        return len(self._marks)

    def mark(self) -> int:
        """The current mark: take it before reading, so what is written meanwhile counts."""
        return self._count

    def before_read(self, reads_until: int) -> ReadMark:
        """Taken before reading samples up to ``reads_until``: what tells later whether an
        answer computed from that read still holds (``ReadMark.holds``)."""
        return ReadMark(weakref.ref(self), self._count, reads_until)

    def wrote(self, earliest_ts: int) -> None:
        """A write whose earliest sample timestamp is ``earliest_ts`` (``EVERYTHING`` for a
        deletion: every kept answer must be computed again)."""
        with self._lock:
            self._count += 1
            while self._earliest and self._earliest[-1] >= earliest_ts:
                self._earliest.pop()
                self._marks.pop()
            self._marks.append(self._count)
            self._earliest.append(earliest_ts)
            if len(self._marks) > self.KEPT:
                self._merge_older_half()

    def earliest_since(self, mark: int) -> int:
        """The earliest timestamp written after ``mark`` (``NOTHING`` when nothing was)."""
        with self._lock:
            i = bisect.bisect_right(self._marks, mark)
            return self._earliest[i] if i < len(self._earliest) else NOTHING

    def _merge_older_half(self) -> None:
        half = len(self._marks) // 2 // 2 * 2
        marks = self._marks[1:half:2]  # each pair's later mark ...
        earliest = self._earliest[0:half:2]  # ... with its earlier timestamp
        self._marks[:half] = marks
        self._earliest[:half] = earliest


@dataclass(frozen=True)
class ReadMark:
    """A read of samples up to ``reads_until`` after write ``mark`` of one log."""

    log: weakref.ref
    mark: int
    reads_until: int

    def holds(self, log: AppendLog) -> bool:
        """Nothing at or before ``reads_until`` was written to ``log`` since (another log, or
        one gone: False)."""
        return self.log() is log and log.earliest_since(self.mark) > self.reads_until
