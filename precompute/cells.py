"""Keyed aggregations held columnar over *cells*: distinct (group id, sub-key id) pairs.

A keyed type (MultipleSum, MultipleMinMax, MultipleIncrease, MultipleLast) keeps, per group and
pane, one state row per sub key. Holding one keyed accumulator object per (group, pane) costs
Python per group per batch and per close, which is ruinous when groups are small (a config
grouped per instance, aggregating ``code``). Here every (group, sub key) pair seen is interned
once as a cell id, and the columnar pane machinery (``precompute/columnar.py``) runs with cells
as its rows; windows still close per group (the worker maps a group's close onto its cells).
``ColumnarLast`` is the newest-sample state of ``MultipleLastAccumulator`` as pane columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from precompute.columnar import _all_distinct, _dense, _due_ends
from precompute.windows import WindowSpec
from storage.model import is_stale

Key = tuple[str, ...]
_NONE = np.iinfo(np.int64).min  # "no sample yet", as in MultipleLastAccumulator
_SHIFT = np.int64(32)  # cell code = group id << 32 | sub id (ids are far below 2**31)


class CellTable:
    """Append-only interner of (group id, sub id) pairs, vectorized: a batch looks its pairs up
    with one ``searchsorted`` over the sorted codes of known cells; Python runs only to name
    new cells. ``keys`` (group key + sub key per cell) is the key table emitted windows index:
    the same tuple the query side builds for a keyed entry's sub key (``prefix + sub``)."""

    def __init__(self) -> None:
        self.cell_gid = np.zeros(0, dtype=np.int64)
        self.cell_sid = np.zeros(0, dtype=np.int64)
        self.keys: list[Key] = []
        self._codes = np.zeros(0, dtype=np.int64)  # sorted codes of known cells
        self._ids = np.zeros(0, dtype=np.int64)  # their cell ids
        # The previous batch's codes and cells: a steady scrape repeats the same series in the
        # same order, and comparing arrays beats a binary search per sample.
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.cell_gid.shape[0])

    def intern(
        self, gids: np.ndarray, sids: np.ndarray, group_keys: list[Key], sub_keys: list[Key]
    ) -> np.ndarray:
        """Cell id per sample, creating cells for pairs not seen before."""
        codes = (gids.astype(np.int64) << _SHIFT) | sids.astype(np.int64)
        last = self._last
        if last is not None and np.array_equal(last[0], codes):
            return last[1]
        pos = np.searchsorted(self._codes, codes)
        found = pos < self._codes.shape[0]
        found[found] = self._codes[pos[found]] == codes[found]
        if not found.all():
            self._add(np.unique(codes[~found]), group_keys, sub_keys)
            pos = np.searchsorted(self._codes, codes)
        cells = self._ids[pos]
        cells.flags.writeable = False  # handed out again for the next equal batch
        self._last = (codes, cells)
        return cells

    def _add(self, new: np.ndarray, group_keys: list[Key], sub_keys: list[Key]) -> None:
        first = len(self)
        g, s = new >> _SHIFT, new & np.int64(0xFFFFFFFF)
        self.cell_gid = np.concatenate([self.cell_gid, g])
        self.cell_sid = np.concatenate([self.cell_sid, s])
        self.keys.extend(
            group_keys[a] + sub_keys[b] for a, b in zip(g.tolist(), s.tolist(), strict=True)
        )
        codes = np.concatenate([self._codes, new])
        ids = np.concatenate([self._ids, np.arange(first, first + new.shape[0], dtype=np.int64)])
        order = np.argsort(codes, kind="stable")
        self._codes, self._ids = codes[order], ids[order]

    def of_groups(
        self, gids: np.ndarray, old: np.ndarray, target: np.ndarray, n_groups: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cells of groups ``gids`` (ascending cell ids) with their group's ``old`` and
        ``target`` closing ends."""
        pos = np.full(max(n_groups, int(gids.max()) + 1 if gids.shape[0] else 0), -1, np.int64)
        pos[gids] = np.arange(gids.shape[0], dtype=np.int64)
        at = pos[self.cell_gid]
        cells = np.flatnonzero(at >= 0)
        at = at[cells]
        return cells, old[at], target[at]

    def group_reach(self, reach: dict[int, int]) -> dict[int, int]:
        """Per-cell reach (``groups_with_data`` over cells) as per-group reach: the latest."""
        out: dict[int, int] = {}
        gid_of = self.cell_gid
        for c, r in reach.items():
            g = int(gid_of[c])
            out[g] = max(out.get(g, r), r)
        return out

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cell_gid.copy(), self.cell_sid.copy()

    @classmethod
    def restore(
        cls, data: tuple[np.ndarray, np.ndarray], group_keys: list[Key], sub_keys: list[Key]
    ) -> CellTable:
        """The table with the same cell ids as the snapshot (keys rebuilt from the key tables)."""
        table = cls()
        g, s = (np.asarray(x, dtype=np.int64) for x in data)
        table.cell_gid, table.cell_sid = g.copy(), s.copy()
        table.keys = [
            group_keys[a] + sub_keys[b] for a, b in zip(g.tolist(), s.tolist(), strict=True)
        ]
        codes = (g << _SHIFT) | s
        order = np.argsort(codes, kind="stable")
        table._codes, table._ids = codes[order], order.astype(np.int64)
        return table


class LastArrays:
    """One pane's newest sample per row: time (``_NONE``: none), value, stale marker."""

    def __init__(self, size: int) -> None:
        self.last_t = np.full(size, _NONE, dtype=np.int64)
        self.last_v = np.zeros(size)
        self.stale = np.zeros(size, dtype=bool)

    def grow(self, size: int) -> None:
        extra = size - self.last_t.shape[0]
        if extra > 0:
            self.last_t = np.concatenate([self.last_t, np.full(extra, _NONE, dtype=np.int64)])
            self.last_v = np.concatenate([self.last_v, np.zeros(extra)])
            self.stale = np.concatenate([self.stale, np.zeros(extra, dtype=bool)])

    def fold(self, rows: np.ndarray, t: np.ndarray, v: np.ndarray, stale: np.ndarray) -> None:
        """``rows`` distinct; the incoming sample wins unless older (ties: incoming, i.e. the
        later written — ``MultipleLastAccumulator._fold``)."""
        newer = t >= self.last_t[rows]
        rows = rows[newer]
        self.last_t[rows], self.last_v[rows], self.stale[rows] = t[newer], v[newer], stale[newer]


def newest_per_row(rows: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of each distinct row's newest sample; of equal times the last given."""
    n = rows.shape[0]
    order = np.lexsort((np.arange(n), t, rows))
    r = rows[order]
    return order[np.flatnonzero(np.r_[r[1:] != r[:-1], True])]


def _merge_panes(parts: list[LastArrays], rows: np.ndarray, n_rows: int):
    """Rows ``rows`` of the window over ``parts`` (time order): per row the newest sample, a
    later pane winning a tie. Returns new arrays (``stale`` as int64, the emitted dtype)."""
    for part in parts:
        part.grow(n_rows)
    pick, after = _dense(rows)
    first = parts[0]
    last_t, last_v = first.last_t[pick].copy(), first.last_v[pick].copy()
    stale = first.stale[pick].astype(np.int64)
    for part in parts[1:]:
        pt = part.last_t[pick]
        newer = pt >= last_t
        np.copyto(last_t, pt, where=newer)
        np.copyto(last_v, part.last_v[pick], where=newer)
        np.copyto(stale, part.stale[pick], where=newer)
    if after is not None:
        return last_t[after], last_v[after], stale[after]
    return last_t, last_v, stale


class ColumnarLast:
    """Open panes of a MultipleLast aggregation: newest sample per cell per pane, as arrays.
    A window is its panes folded in time order (a later pane's sample wins a tie, as the
    object path's ``merge`` of later panes does)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.panes: dict[int, LastArrays] = {}

    def update(self, rows, panes, ts, vals, n_rows: int) -> None:
        if rows.shape[0] == 0:
            return
        lo, hi = int(panes.min()), int(panes.max())
        ends = [lo] if lo == hi else np.unique(panes).tolist()
        for pane in ends:
            sel = None if lo == hi else panes == pane
            r, t, v = (rows, ts, vals) if sel is None else (rows[sel], ts[sel], vals[sel])
            arrays = self.panes.get(pane)
            if arrays is None:
                arrays = self.panes[pane] = LastArrays(n_rows)
            arrays.grow(n_rows)
            if _all_distinct(r, n_rows):  # one sample per cell (a scrape): nothing to pick
                arrays.fold(r, t, v, is_stale(v))
                continue
            last = newest_per_row(r, t)
            arrays.fold(r[last], t[last], v[last], is_stale(v[last]))

    def close(self, rows_all: np.ndarray, old: np.ndarray, target: np.ndarray, n_rows: int):
        """``(rows, window end, LAST_COLS columns)`` per window ending in ``(old, target]`` (per
        row) that holds data; then drop spent pane rows."""
        out = []
        for w in _due_ends(self.spec, sorted(self.panes), old, target):
            sel = (old < w) & (w <= target)
            if not sel.any():
                continue
            rows = rows_all[sel]
            parts = [self.panes[p] for p in self.spec.pane_ends_of_window(w) if p in self.panes]
            if not parts:
                continue
            last_t, last_v, stale = _merge_panes(parts, rows, n_rows)
            has = last_t != _NONE
            if has.all():
                out.append((rows, w, {"last_t": last_t, "last_v": last_v, "stale": stale}))
            elif has.any():
                cols = {"last_t": last_t[has], "last_v": last_v[has], "stale": stale[has]}
                out.append((rows[has], w, cols))
        self._evict(rows_all, target)
        return out

    def _evict(self, rows: np.ndarray, target: np.ndarray) -> None:
        for p in list(self.panes):
            arrays = self.panes[p]
            spent = rows[self.spec.last_window_end_of_pane(p) <= target]
            spent = spent[spent < arrays.last_t.shape[0]]
            if spent.shape[0]:
                arrays.last_t[spent] = _NONE
                if not (arrays.last_t != _NONE).any():
                    del self.panes[p]

    def groups_with_data(self, n_rows: int) -> dict[int, int]:
        reach: dict[int, int] = {}
        for p, arrays in self.panes.items():
            last = self.spec.last_window_end_of_pane(p)
            for r in np.flatnonzero(arrays.last_t != _NONE).tolist():
                reach[r] = max(reach.get(r, last), last)
        return reach

    def open_cells(self) -> int:
        return int(sum(int((a.last_t != _NONE).sum()) for a in self.panes.values()))

    def snapshot(self, n_rows: int) -> dict[int, tuple[np.ndarray, ...]]:
        return {
            p: (a.last_t.copy(), a.last_v.copy(), a.stale.copy()) for p, a in self.panes.items()
        }

    def restore(self, data: dict[int, Any]) -> None:
        self.panes = {}
        for p, (t, v, s) in data.items():
            arrays = LastArrays(0)
            arrays.last_t, arrays.last_v = t.copy(), v.copy()
            arrays.stale = s.astype(bool)
            self.panes[p] = arrays
