"""Window states computed from raw samples, for the windows the sketch store cannot answer.

When a configuration uses tumbling windows, a window that is not covered (before the
configuration existed, dropped by retention, the still-open newest window) or whose counter
entries overlap (late data) is rebuilt here from the raw samples of exactly that window, in the
same form as the stored states: moments (sum, count, min, max), counter state (n, first and last
sample, reset correction) or, for quantiles, the cell's values sorted (an exact segment). The precomputed windows and these are then merged
by the same code, so a query combines both instead of recomputing everything from raw data.
Samples are series-major and time-sorted from storage, so every (series, window) cell is one
contiguous run: the states come from ``reduceat`` over run starts, never a loop per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storage.model import Labels, is_stale


@dataclass(frozen=True)
class RawCells:
    flat: np.ndarray  # cell index row * n_windows + column, one per non-empty cell
    cols: dict[str, np.ndarray]  # moments or counter columns, aligned with ``flat``
    values: list[np.ndarray]  # unused (kept for callers of the old form)


def raw_cells(
    storage,
    matchers,
    labels: list[Labels],
    ends: np.ndarray,
    columns: np.ndarray,
    window_ms: int,
    family: str,
) -> RawCells:
    """States of the tumbling windows ``ends[columns]`` for the series ``labels`` (row = position)."""
    w = int(ends.shape[0])
    rows_of = _RowLookup(labels)
    parts: list[RawCells] = []
    for a, b in contiguous_runs(columns):
        ss = storage.select(list(matchers), int(ends[a]) - window_ms + 1, int(ends[b]))
        if not len(ss):
            continue
        rows = rows_of.rows(ss.labels)
        counts = np.diff(np.asarray(ss.offsets, dtype=np.int64))
        row = np.repeat(rows, counts)
        t = np.asarray(ss.timestamps, dtype=np.int64)
        v = np.asarray(ss.values, dtype=np.float64)
        keep = (row >= 0) if family == "last" else (row >= 0) & ~is_stale(v)  # last: markers too
        row, t, v = row[keep], t[keep], v[keep]
        col = a + (t - (int(ends[a]) - window_ms) - 1) // window_ms  # window (e - w, e]
        parts.append(_states(row * w + col, t, v, family))
    parts = [p for p in parts if p.flat.shape[0]]
    if not parts:
        return RawCells(np.zeros(0, np.int64), {}, [])
    flat = np.concatenate([p.flat for p in parts])
    names = parts[0].cols.keys()
    cols = {k: np.concatenate([p.cols[k] for p in parts]) for k in names}
    return RawCells(flat, cols, [x for p in parts for x in p.values])


def contiguous_runs(columns: np.ndarray):
    """Contiguous runs ``(first, last)`` of a sorted column index array."""
    if columns.shape[0] == 0:
        return []
    cols = columns.tolist()
    if cols[-1] - cols[0] == len(cols) - 1:  # one run (e.g. every step missed, or the newest)
        return [(cols[0], cols[-1])]
    breaks = np.flatnonzero(np.diff(columns) != 1)
    starts = np.concatenate((columns[:1], columns[breaks + 1]))
    stops = np.concatenate((columns[breaks], columns[-1:]))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _states(cell: np.ndarray, t: np.ndarray, v: np.ndarray, family: str) -> RawCells:
    if cell.shape[0] == 0:
        return RawCells(cell, {}, [])
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    stops = np.r_[starts[1:], cell.shape[0]]
    n = stops - starts
    if family == "kll":  # every cell's values, sorted: exact weighted segments
        run = np.repeat(np.arange(starts.shape[0]), n)  # runs keep their order (= cell[starts])
        return RawCells(cell[starts], {"items": v[np.lexsort((v, run))], "n": n}, [])
    if family == "last":  # newest sample per cell (storage returns them deduplicated)
        last = stops - 1
        cols = {"last_t": t[last], "last_v": v[last], "stale": is_stale(v[last]).astype(np.int64)}
        return RawCells(cell[starts], cols, [])
    if family == "moments":
        cols = {
            "sum": np.add.reduceat(v, starts),
            "count": n.astype(np.int64),
            "min": np.fmin.reduceat(v, starts),
            "max": np.fmax.reduceat(v, starts),
        }
        return RawCells(cell[starts], cols, [])
    prev = np.r_[np.nan, v[:-1]]
    same = np.r_[False, cell[1:] == cell[:-1]]
    contrib = np.where(same & (v < prev), prev, 0.0)  # value before each reset
    last = stops - 1
    cols = {
        "n": n.astype(np.int64),
        "first_t": t[starts],
        "first_v": v[starts],
        "last_t": t[last],
        "last_v": v[last],
        "resets": np.add.reduceat(contrib, starts),
    }
    return RawCells(cell[starts], cols, [])


class _RowLookup:
    """Series label set → row. Storage hands out the same label tuples to every read, so the
    lookup goes by identity (an int hash) and hashes a label set only for one it has not seen
    (hashing ~1,000 label tuples twice per query was a visible part of small queries)."""

    def __init__(self, labels: list[Labels]) -> None:
        self.labels = labels
        self.by_id: dict[int, int] | None = None
        self.by_value: dict[Labels, int] | None = None

    def rows(self, labels: list[Labels]) -> np.ndarray:
        if len(labels) == len(self.labels) and labels == self.labels:
            return np.arange(len(labels), dtype=np.int64)  # the usual read: every series
        if self.by_id is None:
            self.by_id = {id(ls): i for i, ls in enumerate(self.labels)}
        out = np.empty(len(labels), dtype=np.int64)
        for j, ls in enumerate(labels):
            i = self.by_id.get(id(ls))
            if i is None or self.labels[i] is not ls:
                if self.by_value is None:
                    self.by_value = {x: k for k, x in enumerate(self.labels)}
                i = self.by_value.get(ls, -1)
            out[j] = i
        return out
