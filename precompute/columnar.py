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

from precompute.accumulators.counter_state import fold_parts
from precompute.accumulators.increase import (
    _COLS as _COUNTER_COLS,
)
from precompute.accumulators.increase import (
    CounterColumns,
    merge_pair,
    merge_stack,
)
from precompute.accumulators.scalar import _Moments
from precompute.counter_kernels import (
    due_rows,
    evict_rows,
    merge_into_kernel,
    merge_panes_take,
    merge_take_kernel,
    native,
    take_present,
    warm,
)
from precompute.two_stack import TwoStackMerge
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


def _dense(rows: np.ndarray) -> tuple[slice | np.ndarray, np.ndarray | None]:
    """How to read ``rows`` of pane columns: ``(pick, after)``. When most
    groups are due at once (per-series grouping), merging whole column prefixes as views and
    gathering ``after`` once from the result beats gathering every pane's column; ``after`` is
    None when ``rows`` is exactly ``0..n-1``. Callers copy before keeping anything read."""
    n = rows.shape[0]
    if n == 0:
        return rows, None
    size = int(rows.max()) + 1
    if n * 2 < size:
        return rows, None
    exact = n == size and bool((rows[1:] > rows[:-1]).all())
    return slice(0, size), (None if exact else rows)


def _due_ends(spec: WindowSpec, pane_ends, old: np.ndarray, target: np.ndarray) -> list[int]:
    """Ends of windows holding an open pane that some group closes now, ascending: only those in
    ``(min old, max target]`` (a per-series close would otherwise test ~2W ends over all groups)."""
    if old.shape[0] == 0:
        return []
    lo, hi = int(old.min()), int(target.max())
    ends = {w for p in pane_ends for w in spec.window_ends_of_pane(p)}
    return sorted(w for w in ends if lo < w <= hi)


def _all_distinct(ids: np.ndarray, size: int) -> bool:
    if ids.shape[0] * 8 < size:
        return np.unique(ids).shape[0] == ids.shape[0]
    mark = np.zeros(size, dtype=bool)
    mark[ids] = True
    return int(np.count_nonzero(mark)) == ids.shape[0]


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
        # A batch is mostly one scrape: one or a few adjacent panes, found from min/max.
        lo, hi = int(panes.min()), int(panes.max())
        if lo == hi:
            self._update_pane(lo, gids, vals, n_groups)
            return
        slide = self.spec.slide_ms
        ends = range(lo, hi + 1, slide) if (hi - lo) // slide < 8 else np.unique(panes).tolist()
        for pane in ends:
            sel = panes == pane
            if sel.any():
                self._update_pane(pane, gids[sel], vals[sel], n_groups)

    def _update_pane(self, pane: int, g: np.ndarray, v: np.ndarray, n_groups: int) -> None:
        arrays = self.panes.get(pane)
        if arrays is None:
            arrays = self.panes[pane] = PaneArrays.empty(n_groups)
        arrays.grow(n_groups)
        if _all_distinct(g, n_groups):
            # The per-series case: one sample per group — plain scatters, no sort.
            arrays.sums[g] += v
            arrays.counts[g] += 1
            arrays.mins[g] = np.fmin(arrays.mins[g], v)
            arrays.maxs[g] = np.fmax(arrays.maxs[g], v)
            return
        order = np.argsort(g, kind="stable")
        g, v = g[order], v[order]
        change = np.ones(g.shape[0], dtype=bool)
        change[1:] = g[1:] != g[:-1]
        starts = np.flatnonzero(change)
        rows = g[starts]
        arrays.sums[rows] += np.add.reduceat(v, starts)
        arrays.counts[rows] += np.diff(np.append(starts, g.shape[0]))
        arrays.mins[rows] = np.fmin(arrays.mins[rows], np.fmin.reduceat(v, starts))
        arrays.maxs[rows] = np.fmax(arrays.maxs[rows], np.fmax.reduceat(v, starts))

    def close(self, gids: np.ndarray, old: np.ndarray, target: np.ndarray, n_groups: int):
        """Return ``(group ids, window end, state columns)`` for every window ending in
        ``(old, target]`` (per group) that holds data; then drop spent pane rows."""
        spec = self.spec
        pane_ends = sorted(self.panes)
        out = []
        if pane_ends:
            for w in _due_ends(spec, pane_ends, old, target):
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
                    if not has.all():
                        rows, cols = rows[has], {n: c[has] for n, c in cols.items()}
                    out.append((rows, w, cols))
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
        pick, after = _dense(rows)
        # Accumulate pane by pane, in pane order (the same additions as a sum over the stack).
        first = parts[0]
        sums, counts = first.sums[pick].copy(), first.counts[pick].copy()
        mins, maxs = first.mins[pick].copy(), first.maxs[pick].copy()
        for part in parts[1:]:
            np.add(sums, part.sums[pick], out=sums)
            np.add(counts, part.counts[pick], out=counts)
            np.fmin(mins, part.mins[pick], out=mins)
            np.fmax(maxs, part.maxs[pick], out=maxs)
        if after is not None:
            return sums[after], counts[after], mins[after], maxs[after]
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


def merge_ordered(parts: list[CounterColumns], rows: np.ndarray) -> CounterColumns:
    """Rows ``rows`` of time-ordered, disjoint panes merged into one state per row — what folding
    ``merge_rows`` over the panes in order gives, as one pass over a (panes × rows) stack: each
    non-empty pane continues the previous non-empty one (a shared boundary sample counts once;
    a drop across the seam is a counter reset)."""
    if len(parts) == 1:
        src = parts[0]
        return CounterColumns(*(getattr(src, c)[rows] for c in _COUNTER_COLS))
    pick, after = _dense(rows)
    st = {c: np.stack([getattr(p, c)[pick] for p in parts]) for c in _COUNTER_COLS}
    merged = merge_stack(st)
    if after is not None:  # computed over a dense prefix: keep the asked rows, in their order
        merged = CounterColumns(*(getattr(merged, c)[after] for c in _COUNTER_COLS))
    return merged


def _split_by_pane(panes: np.ndarray, slide: int, arrays: tuple[np.ndarray, ...]):
    """Yield ``(pane end, arrays restricted to it)`` per pane present in ``panes``. A batch is
    mostly one scrape: one or a few adjacent panes, found from min/max without a hashing
    ``unique``. Parts are copies: they are buffered past the caller's batch."""
    lo, hi = int(panes.min()), int(panes.max())
    if lo == hi:
        yield lo, tuple(x.copy() for x in arrays)
        return
    ends = range(lo, hi + 1, slide) if (hi - lo) // slide < 8 else np.unique(panes).tolist()
    for pane in ends:
        sel = panes == pane
        if sel.any():
            yield pane, tuple(x[sel] for x in arrays)


class SlidingCounterMerge(TwoStackMerge):
    """Two-stack sliding merge of counter panes over a dense group-id prefix.

    A window of W panes ``j..w`` is ``back[j] ⊕ front``: ``back`` holds suffix merges of an older
    block of panes ``a..b`` (``back[j]`` = panes ``j..b``), ``front`` the merge of panes
    ``b+1..w``. Each window close extends ``front`` by its new pane and combines once; when the
    window start passes ``b``, the block is rebuilt from the window's own panes (W − 1 merges
    once per W closes). So a close costs about 3 pair merges instead of a (W × groups) stack.

    Cached merges (``back``, handed out as windows) are new arrays never written again; only the
    private ``front`` is merged into in place. Eviction zeroing rows does not invalidate them: a row
    is evicted from a pane only once its group has closed every window holding that pane, so
    the cached row is never asked for again. New data in a merged pane (late samples, batches
    applied out of order) does: ``touch`` drops only the merges that include that pane.
    """

    def reset(self) -> None:
        super().reset()
        self.width = 0

    def window(self, ends: list[int], get, width: int) -> CounterColumns:
        """The merge of panes ``ends`` (time order, consecutive) over rows ``0..width-1``;
        ``get(p)`` gives pane ``p``'s columns or None when the pane is absent (empty)."""
        head, front = self._operands(ends, get, width)
        return head if front is None else merge_pair(head, front)

    def window_rows(
        self, ends: list[int], get, width: int, rows: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Rows ``rows`` (all below ``width``) of ``window``, only those holding data, as
        ``(kept rows, the columns in _COLS order)``: the final combine merges just those rows,
        straight into the output (no full-width window is written and gathered again)."""
        head, front = self._operands(ends, get, width)
        if front is None:
            out = take_present(*_col_arrays(head), rows, rows)
        else:
            out = merge_take_kernel(*_col_arrays(head), *_col_arrays(front), rows, rows)
        kept, *arrays = native(out)
        return kept, arrays

    def holds(self, ends: list[int], width: int) -> bool:
        """Whether ``window(ends)`` over ``width`` rows needs no pane merged: its back suffix
        and the front are current and end where it ends (a window read again right after)."""
        return (
            ends[0] in self.back
            and width <= self.width
            and self.front_end == ends[-1]
            and not self.front_stale
        )

    def _operands(self, ends: list[int], get, width: int):
        """``(head, front)``: the window is ``head`` ⊕ ``front``, or ``head`` when the front is
        None. Extends the front, or rebuilds the back block, as the window needs."""
        j, w = ends[0], ends[-1]
        usable = self.back and width <= self.width and j in self.back and self.front_end <= w
        if not usable:
            if self.back and j in self.back and w < self.front_end:
                return self._direct(ends, get, width), None  # an older window again: rare
            return self._rebuild(ends, get, width), None
        self._catch_up(ends, get)
        return self.back[j], self.front

    def _extend(self, p: int, get) -> None:
        part = self._part(p, get)
        if part is None:
            return
        if self.front is None:
            self.front = _copy(part)  # panes change later (folds, eviction)
            return
        front = _col_arrays(self.front)
        merge_into_kernel(*front, *_col_arrays(part), *front)  # in place: front is private

    def _part(self, p: int, get) -> CounterColumns | None:
        """Pane ``p``'s rows ``0..width-1`` as views (read at once, never kept)."""
        cols = get(p)
        self.merged.add(p)  # after get(): a pane folded by get() is merged with its new data
        if cols is None:
            return None
        return CounterColumns(*(getattr(cols, c)[: self.width] for c in _COUNTER_COLS))

    def _rebuild(self, ends: list[int], get, width: int) -> CounterColumns:
        self.reset()
        self.width = width
        acc: CounterColumns | None = None
        for p in reversed(ends):
            part = self._part(p, get)
            if part is not None:  # merge_pair gives new arrays; a lone pane is copied
                acc = _copy(part) if acc is None else merge_pair(part, acc)
            self.back[p] = acc if acc is not None else CounterColumns.zeros(width)
        self.block_end = self.front_end = ends[-1]
        return self.back[ends[0]]

    def _direct(self, ends: list[int], get, width: int) -> CounterColumns:
        acc = CounterColumns.zeros(width)
        for p in ends:
            cols = get(p)
            if cols is not None:  # merge_pair gives new arrays: the pane is only read
                acc = merge_pair(
                    acc, CounterColumns(*(getattr(cols, c)[:width] for c in _COUNTER_COLS))
                )
        return acc


def _col_arrays(cols: CounterColumns) -> tuple[np.ndarray, ...]:
    return tuple(getattr(cols, c) for c in _COUNTER_COLS)


def _copy(cols: CounterColumns) -> CounterColumns:
    return CounterColumns(*(getattr(cols, c).copy() for c in _COUNTER_COLS))


def keyed_counter_window(
    sliding: SlidingCounterMerge, ends: list[int], group: dict[int, Any]
) -> Any | None:
    """The window over panes ``ends`` of one keyed counter group (``MultipleIncrease`` panes
    over the worker's sub-key table, ``group``: pane end → accumulator) through the group's
    two-stack merge — about 3 pair merges per close instead of W − 1. None when the panes are
    not all in table mode over one table (the caller merges them generally)."""
    parts = [group[p] for p in ends if p in group]
    if not parts or len(ends) < 3:
        return None
    cls = type(parts[0])
    table_of = getattr(cls, "table_of", None)
    table = table_of(parts) if table_of is not None else None
    if table is None:
        return None
    width = len(table)

    def get(p: int) -> CounterColumns | None:
        acc = group.get(p)
        if acc is None:
            return None
        acc._fold()
        acc.cols.grow(width)
        return acc.cols

    return cls.from_table_columns(table, sliding.window(ends, get, width), parts)


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
        self.sliding = SlidingCounterMerge()
        self._spare: CounterColumns | None = None
        warm()  # kernels loaded now, not inside the first closes

    def update(self, gids, panes, ts, vals, n_groups: int) -> None:
        if gids.shape[0] == 0:
            return
        self.n_groups = max(self.n_groups, n_groups)
        for pane, part in _split_by_pane(panes, self.spec.slide_ms, (gids, ts, vals)):
            if pane not in self.panes:
                self.panes[pane] = self._new_pane(n_groups)
            self.buffers.setdefault(pane, []).append(part)
            self.buffered[pane] = self.buffered.get(pane, 0) + int(part[0].shape[0])
            if self.buffered[pane] > self.max_buffer * max(1, n_groups):
                self._fold(pane, n_groups)

    def _new_pane(self, n_groups: int) -> CounterColumns:
        """Empty columns for a new pane: the last pane every group was done with, when there is
        one (evicting emptied each of its rows: n == 0 and resets == 0, all an empty row needs),
        else zeros. Per-series closes retire one pane per scrape and open one."""
        cols, self._spare = self._spare, None
        if cols is None:
            return CounterColumns.zeros(n_groups)
        cols.grow(n_groups)
        return cols

    def _fold(self, pane: int, n_groups: int) -> CounterColumns:
        cols = self.panes[pane]
        self.n_groups = max(self.n_groups, n_groups)
        cols.grow(self.n_groups)
        parts = self.buffers.pop(pane, [])
        self.buffered.pop(pane, None)
        if parts:
            self.out_of_order += fold_parts(cols, parts)
            self.sliding.touch(pane)
        return cols

    def close(self, gids: np.ndarray, old: np.ndarray, target: np.ndarray, n_groups: int):
        spec = self.spec
        out = []
        for w in _due_ends(spec, self.panes, old, target):
            rows = due_rows(gids, old, target, w).view(gids.dtype.type)
            if rows.shape[0] == 0:
                continue
            # Panes in time order: the ordered merge bridges counter resets across them.
            parts = [
                self._fold(p, n_groups) for p in spec.pane_ends_of_window(w) if p in self.panes
            ]
            if not parts:
                continue
            kept, arrays = self._window_rows(list(spec.pane_ends_of_window(w)), parts, rows)
            if kept.shape[0]:
                out.append((kept, w, dict(zip(_COUNTER_COLS, arrays, strict=True))))
        self._evict(gids, target)
        return out

    def _window_rows(
        self, ends: list[int], parts: list[CounterColumns], rows: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Rows ``rows`` of the window over panes ``ends`` (``parts``: those present, folded)
        that hold data: ``(kept rows, columns)``. Most groups due at once (per-series grouping,
        sliding): the two-stack merge over all groups. The groups whose newest sample sat
        exactly on a pane end close that window one scrape later, before the two-stack moves
        on: it still holds the window (no pane of it folded since, or ``touch`` said so), and
        these groups had not closed it, so none of their rows in its panes was evicted.
        Otherwise one pass over the asked rows of the panes."""
        sliding, width = self.sliding, self.n_groups
        if len(ends) >= 3 and (
            rows.shape[0] * 2 > int(rows.max())  # most rows of the prefix: dense
            or (sliding.holds(ends, width) and int(rows.max()) < sliding.width)
        ):
            return sliding.window_rows(ends, self.panes.get, width, rows)
        # One compiled pass over the asked rows of every pane (``merge_ordered``'s arithmetic).
        columns = (tuple(getattr(p, c) for p in parts) for c in _COUNTER_COLS)
        kept, *arrays = native(merge_panes_take(*columns, rows))
        return kept, arrays

    def _evict(self, gids: np.ndarray, target: np.ndarray) -> None:
        newest = int(target.max()) if target.shape[0] else None
        for p in list(self.panes):
            last = self.spec.last_window_end_of_pane(p)
            if newest is None or last > newest:  # no group is done with this pane yet
                continue
            spent = gids[last <= target]
            if spent.shape[0] == 0:
                continue
            cols = self._fold(p, int(spent.max()) + 1)
            # An empty row is n == 0 and resets == 0 (additions rely on both); its times and
            # values are read only where n > 0 (folds, merges, emits), so they stay as they are.
            if not evict_rows(cols.n, cols.resets, spent):
                self._spare = self.panes.pop(p)  # every group is done with it

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
        self.sliding.reset()
