"""Stored windows of one aggregation as columns, decoded once and extended as windows arrive.

The sketch store keeps one serialized accumulator per (key, window) entry; decoding them for
every query would cost Python per entry per query. A ``WindowTable`` decodes each entry once and
appends it to flat arrays — window end, key id (grouping values + sub key), and the statistics
(moments: sum/count/min/max; counters: n, first/last time and value, resets) — so a query
selects its windows and series with numpy masks and gathers. A KLL entry becomes a weighted
segment (its retained items sorted by value and their weights, ``udfs.weighted_quantile``), all
segments concatenated in growing buffers, so quantiles are array lookups, not sketch calls. Tables are kept per store and aggregation definition and follow
the store's log: new entries are appended; if the log was rebuilt (retention, removal) the table
is rebuilt too.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from planner.precompute_match import family
from udfs.weighted_quantile import Segments, kll_items, local_cumsum, ramp

if TYPE_CHECKING:
    from precompute.config import AggregationConfig
    from storage.sketch_store import SketchEntry, SketchStore

Key = tuple[str, ...]
COUNTER_COLS = ("n", "first_t", "first_v", "last_t", "last_v", "resets")
MOMENT_COLS = ("sum", "count", "min", "max")
LAST_COLS = ("last_t", "last_v", "stale")  # newest sample per key (MultipleLast)
_FAMILY_COLS = {"counter": COUNTER_COLS, "last": LAST_COLS}
_INT_COLS = frozenset({"count", "n", "first_t", "last_t", "stale"})


class WindowTable:
    def __init__(self, config: AggregationConfig) -> None:
        self.config = config
        self.family = family(config.aggregation_type)
        self.names = _FAMILY_COLS.get(self.family, MOMENT_COLS)
        self.key_ids: dict[Key, int] = {}
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.key_ids.clear()
        self.seen = 0
        self.first: SketchEntry | None = None
        self.last: SketchEntry | None = None
        self.pending: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        self.scalars: list[tuple[int, int, tuple]] = []  # (end, key id, statistics)
        self.kll_parts: list[tuple[np.ndarray, np.ndarray, int]] = []  # items, weights, k
        self.end = np.zeros(0, dtype=np.int64)
        self.kid = np.zeros(0, dtype=np.int64)
        self.cols: dict[str, np.ndarray] = {
            n: np.zeros(0, np.int64 if n in _INT_COLS else np.float64) for n in self.names
        }
        self.items, self.cumw = _Growing(np.float64), _Growing(np.int32)
        self.seg_lo, self.seg_hi = _Growing(np.int64), _Growing(np.int64)
        self.seg_exact, self.seg_k = _Growing(np.bool_), _Growing(np.int64)
        self.sub_cache: dict[tuple[Key, tuple[Key, ...]], np.ndarray] = {}
        self.by_end: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see rows_at
        self.worker_maps: dict[int, tuple[list[Key], np.ndarray]] = {}

    # --- following the store ----------------------------------------------------------------

    def sync(self, store: SketchStore) -> None:
        # Columnar records (``WindowBatch``: every group whose window closed together) are read
        # as columns; stores without them give per-entry views.
        reader = getattr(store, "chunk_view", None) or store.log_view
        view = reader(self.config.aggregation_id)
        if self.seen and (
            len(view) < self.seen
            or view[0] is not self.first
            or view[self.seen - 1] is not self.last
        ):
            self._reset()  # the log was rebuilt (retention, removal): start over
        if len(view) == self.seen:
            return
        for entry in view[self.seen :]:
            self._append(entry)
        self.first, self.last, self.seen = view[0], view[-1], len(view)
        self._flush()

    def _kid(self, key: Key) -> int:
        kid = self.key_ids.get(key)
        if kid is None:
            kid = self.key_ids[key] = len(self.key_ids)
        return kid

    def _append(self, entry: Any) -> None:
        from planner.nodes.precomputed_scan import _keyed_columns, _scalar_columns

        cfg = self.config
        if (
            entry.window_end - entry.window_start != cfg.window_size_ms
            or entry.window_end % cfg.slide_interval_ms
        ):
            return  # written under another definition of this aggregation id: not ours
        if not isinstance(entry, _sketch_entry_type()):  # a WindowBatch
            kids = self._batch_kids(entry.keys)
            cols = {n: np.asarray(entry.columns[n]) for n in self.names}
            self.pending.append((np.full(kids.shape[0], entry.window_end, np.int64), kids, cols))
            return
        acc = entry.accumulator()
        end = entry.window_end
        if self.family == "kll":
            self.scalars.append((end, self._kid(entry.key), ()))
            if acc.exact is not None:
                items = np.sort(acc.exact)
                self.kll_parts.append((items, np.ones(items.shape[0], np.int64), acc.k))
            else:
                self.kll_parts.append((*kll_items(acc.sketch.serialize()), acc.k))
            return
        if not acc.keyed:
            cols = _scalar_columns(acc, self.family)
            self.scalars.append((end, self._kid(entry.key), tuple(cols[n][0] for n in self.names)))
            return
        subs, rows, cols = _keyed_columns(acc, self.family)
        cache_key = (entry.key, subs)
        kids = self.sub_cache.get(cache_key)
        if kids is None:  # consecutive windows usually list the same keys: map them once
            kids = np.array([self._kid(entry.key + s) for s in subs], dtype=np.int64)
            self.sub_cache[cache_key] = kids
        picked = {n: cols[n][rows] for n in self.names}
        self.pending.append((np.full(kids.shape[0], end, dtype=np.int64), kids, picked))

    def _batch_kids(self, keys) -> np.ndarray:
        """Key ids of a batch's rows. Keys named by row ids into a worker's key table
        (``KeyRows``) map through a per-table array extended only for new rows; plain key lists
        are mapped once per distinct list."""
        table, rows = getattr(keys, "table", None), getattr(keys, "rows", None)
        if table is not None and rows is not None:
            mapping = self.worker_maps.get(id(table))
            if mapping is None or mapping[0] is not table:
                mapping = (table, np.zeros(0, dtype=np.int64))
            known = mapping[1]
            if rows.shape[0] and int(rows.max()) >= known.shape[0]:
                extra = [self._kid(k) for k in table[known.shape[0] : int(rows.max()) + 1]]
                known = np.concatenate([known, np.array(extra, dtype=np.int64)])
            self.worker_maps[id(table)] = (table, known)
            return known[np.asarray(rows, dtype=np.int64)]
        cache_key = ((), tuple(keys))
        kids = self.sub_cache.get(cache_key)
        if kids is None:
            kids = np.array([self._kid(k) for k in cache_key[1]], dtype=np.int64)
            self.sub_cache[cache_key] = kids
        return kids

    def _flush(self) -> None:
        ends, kids = [self.end], [self.kid]
        cols = {n: [self.cols[n]] for n in self.names}
        for e, k, c in self.pending:
            ends.append(e)
            kids.append(k)
            for n in self.names:
                cols[n].append(c[n])
        if self.scalars:
            ends.append(np.array([s[0] for s in self.scalars], dtype=np.int64))
            kids.append(np.array([s[1] for s in self.scalars], dtype=np.int64))
            if self.family != "kll":
                for i, n in enumerate(self.names):
                    dtype = np.int64 if n in _INT_COLS else np.float64
                    cols[n].append(np.array([s[2][i] for s in self.scalars], dtype=dtype))
        if self.kll_parts:
            self._flush_segments()
        old_rows = self.end.shape[0]
        self.end, self.kid = np.concatenate(ends), np.concatenate(kids)
        self._extend_index(old_rows)
        if self.family != "kll":
            self.cols = {n: np.concatenate(v) for n, v in cols.items()}
        self.pending, self.scalars, self.kll_parts = [], [], []

    def _extend_index(self, old_rows: int) -> None:
        """Keep ``by_end`` (rows grouped by window end) current: windows usually arrive in end
        order, so new rows are sorted among themselves and appended; otherwise rebuilt."""
        if self.by_end is None or old_rows == 0 or self.by_end[0].shape[0] == 0:
            self.by_end = _group_by_end(self.end, 0)
            return
        uniq, starts, order = self.by_end
        new = self.end[old_rows:]
        if new.shape[0] == 0:
            return
        if int(new.min()) < int(uniq[-1]):
            self.by_end = _group_by_end(self.end, 0)
            return
        n_uniq, n_starts, n_order = _group_by_end(new, old_rows)
        if int(n_uniq[0]) == int(uniq[-1]):  # the same end continues: one group, adjacent rows
            n_uniq, n_starts = n_uniq[1:], n_starts[1:]
        self.by_end = (
            np.concatenate([uniq, n_uniq]),
            np.concatenate([starts[:-1], n_starts + starts[-1]]),
            np.concatenate([order, n_order]),
        )

    def rows_at(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose window end is one of ``ends`` (sorted), and the position of that end:
        work in proportion to the rows read, not to the table."""
        if self.by_end is None or self.by_end[0].shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        uniq, starts, order = self.by_end
        pos = np.minimum(np.searchsorted(uniq, ends), uniq.shape[0] - 1)
        hit = np.flatnonzero(uniq[pos] == ends)
        a, b = starts[pos[hit]], starts[pos[hit] + 1]
        return order[ramp(a, b - a)], np.repeat(hit, b - a)

    def _flush_segments(self) -> None:
        assert not self.pending, "KLL windows arrive as entries, not window batches"
        parts = self.kll_parts
        sizes = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
        cumw = local_cumsum(np.concatenate([p[1] for p in parts]), sizes)
        if cumw.dtype != self.cumw.buf.dtype:  # a window of 2^31+ values: widen, once
            self.cumw.widen(cumw.dtype)
        hi = self.items.size + np.cumsum(sizes)
        self.seg_lo.extend(hi - sizes)
        self.seg_hi.extend(hi)
        self.items.extend(np.concatenate([p[0] for p in parts]))
        self.cumw.extend(cumw)
        exact_parts = [bool((p[1] == 1).all()) for p in parts]
        self.seg_exact.extend(np.array(exact_parts, dtype=bool))
        self.seg_k.extend(np.array([p[2] for p in parts], dtype=np.int64))

    def segments(self) -> Segments:
        """All KLL rows as weighted segments (row-aligned with ``end``/``kid``); the arrays are
        views that later appends never change."""
        return Segments(
            self.items.view(),
            self.cumw.view(),
            self.seg_lo.view(),
            self.seg_hi.view(),
            self.seg_exact.view(),
        )

    # --- reading ----------------------------------------------------------------------------

    def span(self) -> tuple[int, int] | None:
        """(oldest, newest) window end stored."""
        if self.end.shape[0] == 0 or self.by_end is None:
            return None
        return int(self.by_end[0][0]), int(self.by_end[0][-1])

    def rows_for(self, keys: dict[Key, int], n_series: int) -> np.ndarray:
        """Per key id, the query's series row (-1: not asked for)."""
        out = np.full(len(self.key_ids), -1, dtype=np.int64)
        for key, row in keys.items():
            kid = self.key_ids.get(key)
            if kid is not None:
                out[kid] = row
        return out


def _group_by_end(end: np.ndarray, first_row: int):
    """(distinct ends, start of each one's rows in ``order`` + a final end, ``order``: row ids
    sorted by end, stable) for rows ``first_row + i``."""
    if end.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64)
    order = np.argsort(end, kind="stable")
    sorted_end = end[order]
    cut = np.flatnonzero(np.r_[True, sorted_end[1:] != sorted_end[:-1]])
    starts = np.append(cut, end.shape[0]).astype(np.int64)
    return sorted_end[cut], starts, order.astype(np.int64) + first_row


class _Growing:
    """An append-only array with doubling capacity: appending never copies what is stored
    (amortized), and a ``view`` taken earlier keeps its contents."""

    def __init__(self, dtype) -> None:
        self.buf = np.zeros(0, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + values.shape[0]
        if need > self.buf.shape[0]:
            grown = np.zeros(max(need, 2 * self.buf.shape[0], 1024), dtype=self.buf.dtype)
            grown[: self.size] = self.buf[: self.size]
            self.buf = grown
        self.buf[self.size : need] = values
        self.size = need

    def view(self) -> np.ndarray:
        return self.buf[: self.size]

    def widen(self, dtype) -> None:
        self.buf = self.buf.astype(dtype)


def _sketch_entry_type() -> type:
    from storage.sketch_store import SketchEntry

    return SketchEntry


_TABLES: weakref.WeakKeyDictionary[Any, dict[AggregationConfig, WindowTable]] = (
    weakref.WeakKeyDictionary()
)
_GUARD = threading.Lock()


def table_for(store: SketchStore, config: AggregationConfig) -> WindowTable:
    with _GUARD:
        per_store = _TABLES.setdefault(store, {})
        table = per_store.get(config)
        if table is None:
            table = per_store[config] = WindowTable(config)
    return table
