"""The in-memory head: a columnar append log frozen into sorted segments.

Appending a remote-write request (thousands of series, one sample each) is three array copies:
no per-series Python work. Appended arrays collect in an unsorted *tail*; once it holds
``freeze_samples`` rows it is frozen into an immutable *segment* sorted by ``(series id, ts)``
with duplicates resolved (last written wins). Segments merge LSM-style (a new segment merges into
its predecessor while it is at least half its size), so a head of N samples has O(log N)
segments and reads are a few vectorized gathers per segment plus a filter over the small tail.

Segments and tail arrays are immutable once created, so a reader takes a ``HeadSnapshot`` under
the store's lock and works on it without the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from storage.arrays import Runs, find_runs, merge_runs, sort_dedupe

_I64 = np.int64


@dataclass(frozen=True)
class Segment:
    """Rows sorted by ``(sid, ts)``, unique; ``starts[k]..starts[k+1]`` are series ``sids[k]``."""

    sids: np.ndarray  # distinct series ids, ascending
    starts: np.ndarray  # len(sids) + 1
    ts: np.ndarray
    values: np.ndarray
    mint: int = 0
    maxt: int = -1

    @property
    def sid(self) -> np.ndarray:
        """Per-row series ids, materialized on demand: not storing them saves 8 bytes/sample."""
        return np.repeat(self.sids, np.diff(self.starts))

    @staticmethod
    def build(sid: np.ndarray, ts: np.ndarray, values: np.ndarray) -> Segment:
        sid, ts, values = sort_dedupe(sid, ts, values)
        return Segment.from_sorted(sid, ts, values)

    @staticmethod
    def from_sorted(sid: np.ndarray, ts: np.ndarray, values: np.ndarray) -> Segment:
        if sid.shape[0] == 0:
            return Segment(sid[:0].astype(_I64), np.zeros(1, dtype=_I64), ts, values)
        change = np.flatnonzero(sid[1:] != sid[:-1]) + 1
        starts = np.concatenate(([0], change, [sid.shape[0]])).astype(_I64)
        sids = sid[starts[:-1]].astype(_I64)
        return Segment(sids, starts, ts, values, int(ts.min()), int(ts.max()))

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @cached_property
    def series_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each series' first and last timestamp (kept: a segment never changes once built)."""
        if not self.sids.shape[0]:
            return self.ts[:0], self.ts[:0]
        return self.ts[self.starts[:-1]], self.ts[self.starts[1:] - 1]

    def runs(self, sids: np.ndarray, mint: int, maxt: int) -> Runs:
        """The requested series' rows in ``[mint, maxt]`` as runs keyed by request index,
        pointing into this segment's arrays (nothing is copied)."""
        if not self.sids.shape[0] or sids.shape[0] == 0:
            z = np.zeros(0, dtype=_I64)
            return Runs(self.ts, self.values, z, z, z)
        clip = self.mint < mint or self.maxt > maxt
        wanted = np.ascontiguousarray(sids, dtype=_I64)
        found, lo, hi = find_runs(self.sids, self.starts, self.ts, wanted, mint, maxt, clip)
        return Runs(self.ts, self.values, found, lo, hi)

    def as_runs(self) -> Runs:
        """All rows as runs keyed by series id (nothing copied)."""
        return Runs(self.ts, self.values, self.sids, self.starts[:-1], self.starts[1:])

    def without_before(self, cut_ts: int) -> Segment:
        keep = self.ts >= cut_ts
        if keep.all():
            return self
        return Segment.from_sorted(self.sid[keep], self.ts[keep], self.values[keep])


@dataclass(frozen=True)
class HeadSnapshot:
    """An immutable view of the head: segments oldest first, then the unsorted tail chunks."""

    segments: tuple[Segment, ...]
    tail: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]

    def sources(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
        """``(sid, ts, values, sorted)`` sources in write order (the tail as one unsorted one)."""
        out = [(s.sid, s.ts, s.values, True) for s in self.segments]
        if self.tail:
            sid, ts, val = (np.concatenate([c[i] for c in self.tail]) for i in range(3))
            out.append((sid, ts, val, False))
        return out


@dataclass
class Head:
    freeze_samples: int = 1 << 16
    segments: list[Segment] = field(default_factory=list)
    _tail: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _tail_len: int = 0
    mint: int | None = None
    maxt: int | None = None
    pinned: int = 0
    """The first ``pinned`` segments are being cut into blocks: keep them out of merges."""

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments) + self._tail_len

    def append(self, sid: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Take ownership of the three arrays (callers pass fresh copies)."""
        n = ts.shape[0]
        if n == 0:
            return
        lo, hi = int(ts.min()), int(ts.max())
        self.mint = lo if self.mint is None else min(self.mint, lo)
        self.maxt = hi if self.maxt is None else max(self.maxt, hi)
        self._tail.append((sid, ts, values))
        self._tail_len += n
        if self._tail_len >= self.freeze_samples:
            self.freeze()

    def freeze(self) -> None:
        """Turn the tail into a sorted segment and merge segment tiers."""
        if not self._tail:
            return
        sid, ts, val = (np.concatenate([c[i] for c in self._tail]) for i in range(3))
        self._tail, self._tail_len = [], 0
        self.segments.append(Segment.build(sid, ts, val))
        while len(self.segments) - self.pinned >= 2 and 2 * len(self.segments[-1]) >= len(
            self.segments[-2]
        ):
            newer = self.segments.pop()
            older = self.segments.pop()
            self.segments.append(_merge(older, newer))

    def snapshot(self) -> HeadSnapshot:
        return HeadSnapshot(tuple(self.segments), tuple(self._tail))

    def drop_pinned_before(self, cut_ts: int) -> None:
        """Forget the pinned segments' samples older than ``cut_ts`` (now in blocks), unpin.

        Samples appended since the segments were pinned stay, whatever their timestamps: they
        are not in the blocks.
        """
        done = [s.without_before(cut_ts) for s in self.segments[: self.pinned]]
        self.segments = [s for s in done if len(s)] + self.segments[self.pinned :]
        self.pinned = 0
        self._recompute_bounds()

    def _recompute_bounds(self) -> None:
        lows = [s.mint for s in self.segments] + [int(c[1].min()) for c in self._tail]
        highs = [s.maxt for s in self.segments] + [int(c[1].max()) for c in self._tail]
        self.mint = min(lows) if lows else None
        self.maxt = max(highs) if highs else None

    def all_sorted(self) -> Segment:
        """Every head sample as one sorted, deduplicated segment (for full checkpoints)."""
        assert not self.pinned, "a cut is in progress"
        self.freeze()
        if not self.segments:
            return Segment.from_sorted(*(np.zeros(0, dtype=t) for t in (_I64, _I64, np.float64)))
        while len(self.segments) > 1:
            newer = self.segments.pop()
            older = self.segments.pop()
            self.segments.append(_merge(older, newer))
        return self.segments[0]


def _merge(older: Segment, newer: Segment) -> Segment:
    """One segment of both (newer wins on equal ``(sid, ts)``), copied once by ``merge_runs``
    straight from the two segments' per-series runs (no per-row series ids are made)."""
    if not len(older) or not len(newer):
        return newer if len(newer) else older
    ngroups = int(max(older.sids[-1], newer.sids[-1])) + 1
    offsets, ts, values = merge_runs([older.as_runs(), newer.as_runs()], ngroups)
    sids = np.flatnonzero(offsets[1:] > offsets[:-1]).astype(_I64)
    starts = np.append(offsets[sids], offsets[-1])
    return Segment(
        sids, starts, ts, values, min(older.mint, newer.mint), max(older.maxt, newer.maxt)
    )
