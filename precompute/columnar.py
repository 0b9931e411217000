"""Columnar pane state for the moments family (Sum, Count, Min, Max, MinMax, Avg) and Increase.

With one accumulator object per (group, pane), an aggregation grouped per series costs Python
work per sample: one update, and at every slide one window close merging W pane objects. Here a
pane is instead a set of arrays indexed by group id (sum, count, min, max), updated with segment
reductions and merged into windows with array arithmetic over all due groups at once; closed
windows leave as state columns (``precompute/window_batch.py``), not one object per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from precompute.accumulators.increase import (
    _COLS as _COUNTER_COLS,
)
from precompute.accumulators.increase import (
    CounterColumns,
    fold_sorted,
    merge_rows,
)
from precompute.accumulators.scalar import _Moments
from precompute.windows import WindowSpec

MOMENT_TYPES = frozenset({"Sum", "Count", "Min", "Max", "MinMax", "Avg"})


@dataclass
class PaneArrays:
    sums: np.ndarray
    counts: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray

    @classmethod
    def empty(cls, size: int) -> PaneArrays:
        return cls(np.zeros(size), np.zeros(size, np.int64), np.full(size, math.nan),
                   np.full(size, math.nan))  # fmt: skip

    def grow(self, size: int) -> None:
        extra = size - self.sums.shape[0]
        if extra > 0:
            more = PaneArrays.empty(extra)
            for name in ("sums", "counts", "mins", "maxs"):
                setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))

    def clear(self, rows: np.ndarray) -> None:
        self.sums[rows], self.counts[rows] = 0.0, 0
        self.mins[rows], self.maxs[rows] = math.nan, math.nan

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        return self.sums, self.counts, self.mins, self.maxs


class ColumnarPanes:
    """Open panes of one aggregation on one worker, keyed by pane end."""

    def __init__(self, acc_class: type[_Moments], spec: WindowSpec) -> None:
        self.acc_class = acc_class
        self.spec = spec
        self.panes: dict[int, PaneArrays] = {}

    def update(self, gids, panes, ts, vals, n_groups: int) -> None:
        """Fold samples (any order) into their (group, pane) cells."""
        if gids.shape[0] == 0:
            return
        order = np.lexsort((gids, panes))
        g, p, v = gids[order], panes[order], vals[order]
        change = np.ones(g.shape[0], dtype=bool)
        change[1:] = (g[1:] != g[:-1]) | (p[1:] != p[:-1])
        starts = np.flatnonzero(change)
        seg_g, seg_p = g[starts], p[starts]
        sums = np.add.reduceat(v, starts)
        counts = np.diff(np.append(starts, g.shape[0]))
        mins, maxs = np.fmin.reduceat(v, starts), np.fmax.reduceat(v, starts)
        for pane in np.unique(seg_p).tolist():
            sel = seg_p == pane
            arrays = self.panes.get(pane)
            if arrays is None:
                arrays = self.panes[pane] = PaneArrays.empty(n_groups)
            arrays.grow(n_groups)
            rows = seg_g[sel]
            arrays.sums[rows] += sums[sel]
            arrays.counts[rows] += counts[sel]
            arrays.mins[rows] = np.fmin(arrays.mins[rows], mins[sel])
            arrays.maxs[rows] = np.fmax(arrays.maxs[rows], maxs[sel])

    def close(self, gids: np.ndarray, old: np.ndarray, target: np.ndarray, n_groups: int):
        """Return ``(group ids, window end, state columns)`` for every window ending in
        ``(old, target]`` (per group) that holds data; then drop spent pane rows."""
        spec = self.spec
        pane_ends = sorted(self.panes)
        out = []
        if pane_ends:
            candidates = sorted({w for p in pane_ends for w in spec.window_ends_of_pane(p)})
            for w in candidates:
                sel = (old < w) & (w <= target)
                if not sel.any():
                    continue
                rows = gids[sel]
                merged = self._merge_window(w, rows)
                if merged is None:
                    continue
                has = merged[1] > 0
                if has.any():
                    cols = dict(zip(("sum", "count", "min", "max"), merged, strict=True))
                    out.append((rows[has], w, {n: c[has] for n, c in cols.items()}))
        self._evict(gids, target)
        return out

    def _merge_window(self, window_end: int, rows: np.ndarray):
        parts = [
            self.panes[p] for p in self.spec.pane_ends_of_window(window_end) if p in self.panes
        ]
        if not parts:
            return None
        size = rows.max() + 1
        for part in parts:
            part.grow(size)
        sums = np.sum([p.sums[rows] for p in parts], axis=0)
        counts = np.sum([p.counts[rows] for p in parts], axis=0)
        mins = np.fmin.reduce([p.mins[rows] for p in parts], axis=0)
        maxs = np.fmax.reduce([p.maxs[rows] for p in parts], axis=0)
        return sums, counts, mins, maxs

    def _evict(self, gids: np.ndarray, target: np.ndarray) -> None:
        for p in list(self.panes):
            spent = gids[self.spec.last_window_end_of_pane(p) <= target]
            arrays = self.panes[p]
            spent = spent[spent < arrays.sums.shape[0]]
            if spent.shape[0]:
                arrays.clear(spent)
                if not arrays.counts.any():
                    del self.panes[p]

    def groups_with_data(self, n_groups: int) -> dict[int, int]:
        """Per group id with open data, the end of the last window its panes reach."""
        reach: dict[int, int] = {}
        for p, arrays in self.panes.items():
            last = self.spec.last_window_end_of_pane(p)
            for g in np.flatnonzero(arrays.counts > 0).tolist():
                reach[g] = max(reach.get(g, last), last)
        return reach

    def open_cells(self) -> int:
        return int(sum(int((a.counts > 0).sum()) for a in self.panes.values()))

    def snapshot(self, n_groups: int) -> dict[int, tuple[np.ndarray, ...]]:
        return {p: tuple(x.copy() for x in a.as_tuple()) for p, a in self.panes.items()}

    def restore(self, data: dict[int, Any]) -> None:
        self.panes = {p: PaneArrays(*(x.copy() for x in arrays)) for p, arrays in data.items()}


class ColumnarCounters:
    """Open panes of an Increase aggregation as counter columns over group ids.

    Samples are buffered per pane (they may arrive out of order) and folded in time order when a
    window needs the pane or the buffer passes ``max_buffer`` samples per group; windows are the
    ordered merge of their panes' columns (``merge_rows``), wrapped per group at emit time.
    """

    def __init__(self, spec: WindowSpec, max_buffer: int) -> None:
        self.spec = spec
        self.max_buffer = max_buffer
        self.panes: dict[int, CounterColumns] = {}
        self.buffers: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.buffered: dict[int, int] = {}
        self.out_of_order = 0
        self.n_groups = 0

    def update(self, gids, panes, ts, vals, n_groups: int) -> None:
        if gids.shape[0] == 0:
            return
        self.n_groups = max(self.n_groups, n_groups)
        for pane in np.unique(panes).tolist():
            sel = panes == pane
            self.panes.setdefault(pane, CounterColumns.zeros(n_groups))
            self.buffers.setdefault(pane, []).append((gids[sel], ts[sel], vals[sel]))
            self.buffered[pane] = self.buffered.get(pane, 0) + int(sel.sum())
            if self.buffered[pane] > self.max_buffer * max(1, n_groups):
                self._fold(pane, n_groups)

    def _fold(self, pane: int, n_groups: int) -> CounterColumns:
        cols = self.panes[pane]
        self.n_groups = max(self.n_groups, n_groups)
        cols.grow(self.n_groups)
        parts = self.buffers.pop(pane, [])
        self.buffered.pop(pane, None)
        if parts:
            g, t, v = (np.concatenate(x) for x in zip(*parts, strict=True))
            self.out_of_order += fold_sorted(cols, g, t, v)
        return cols

    def close(self, gids: np.ndarray, old: np.ndarray, target: np.ndarray, n_groups: int):
        spec = self.spec
        out = []
        candidates = sorted({w for p in self.panes for w in spec.window_ends_of_pane(p)})
        for w in candidates:
            sel = (old < w) & (w <= target)
            if not sel.any():
                continue
            rows = gids[sel]
            merged = CounterColumns.zeros(rows.shape[0])
            local = np.arange(rows.shape[0], dtype=np.int64)
            for p in spec.pane_ends_of_window(w):  # in time order: merge_rows bridges resets
                if p in self.panes:
                    src = self._fold(p, n_groups)
                    part = CounterColumns(*(getattr(src, c)[rows] for c in _COUNTER_COLS))
                    merge_rows(merged, local, part)
            has = merged.n > 0
            if has.any():
                out.append((rows[has], w, {c: getattr(merged, c)[has] for c in _COUNTER_COLS}))
        self._evict(gids, target)
        return out

    def _evict(self, gids: np.ndarray, target: np.ndarray) -> None:
        for p in list(self.panes):
            spent = gids[self.spec.last_window_end_of_pane(p) <= target]
            if spent.shape[0] == 0:
                continue
            cols = self._fold(p, int(spent.max()) + 1)
            for name in _COUNTER_COLS:
                getattr(cols, name)[spent] = 0
            if not cols.n.any():
                del self.panes[p]

    def groups_with_data(self, n_groups: int) -> dict[int, int]:
        reach: dict[int, int] = {}
        for p in list(self.panes):
            last = self.spec.last_window_end_of_pane(p)
            for g in np.flatnonzero(self._fold(p, n_groups).n > 0).tolist():
                reach[g] = max(reach.get(g, last), last)
        return reach

    def open_cells(self) -> int:
        return int(sum(int((c.n > 0).sum()) for c in self.panes.values())) + sum(
            self.buffered.values()
        )

    def snapshot(self, n_groups: int) -> dict[int, tuple[np.ndarray, ...]]:
        return {
            p: tuple(getattr(self._fold(p, n_groups), c).copy() for c in _COUNTER_COLS)
            for p in list(self.panes)
        }

    def restore(self, data: dict[int, Any]) -> None:
        self.panes = {p: CounterColumns(*(x.copy() for x in arrays)) for p, arrays in data.items()}
        self.buffers, self.buffered = {}, {}
