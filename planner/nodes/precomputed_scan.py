"""``PrecomputedScan``: the closed windows of one aggregation, per query series and window end.

Reads the sketch store for the window ends a grid needs (``t − offset − j·window`` for every
step ``t`` and ``j < range / window``) and lays the entries out as ``[series, window]`` arrays
(moments, counter columns) or an object matrix (KLL sketches). Several entries of one
(key, window) — late mini-accumulators, restarts — are merged here, before any window merging
(moments add, sketches merge); counter states cannot be merged when their time ranges overlap,
so such cells are marked ``dirty`` and answered from raw data.

Data-dependent checks that planning cannot make happen here, and refuse (``reason``) rather than
answer wrongly: every query series must be one the aggregation summarises (its metric and
filter), and the key labels must identify a single series among all the aggregation's series.
Coverage: a window is answered only when it starts at or after the oldest stored window's end
and ends no later than the newest stored window's end (so the first, possibly partial window of
a config added while data flowed, retention, and the still-open newest window are outside).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from planner.nodes.base import PlanNode
from planner.precompute_match import family, key_labels
from precompute.filters import LabelFilter
from promql.types import Matcher, MatchType, ValueType
from storage.model import METRIC_NAME, Labels

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid
    from precompute.config import AggregationConfig
    from storage.sketch_store import SketchEntry, SketchStore

Key = tuple[str, ...]
_COUNTER_COLS = ("n", "first_t", "first_v", "last_t", "last_v", "resets")


@dataclass(frozen=True)
class SketchWindows:
    """Per query series (rows) and window end (columns, every ``slide`` ms from ``ends[0]``)."""

    labels: list[Labels]
    ends: np.ndarray  # int64 [w]
    family: str
    cols: dict[str, np.ndarray]  # moments: sum/count/min/max; counter: _COUNTER_COLS; [n, w]
    sketches: np.ndarray | None  # object [n, w] of KLLAccumulator | None
    dirty: np.ndarray  # bool [n, w]: a cell that must come from raw data
    covered: np.ndarray  # bool [w]: the window is closed and inside the stored range
    entries: int = 0
    reason: str = ""  # non-empty: cannot answer from windows at all (fall back)
    rank_error: float = 0.0  # worst KLL normalized rank error among read sketches

    @property
    def n_series(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SketchSource:
    """Where the query side finds configurations and closed windows."""

    store: SketchStore
    configs: Any  # () -> Sequence[AggregationConfig]; live, so run-time config changes apply

    def current(self) -> list[AggregationConfig]:
        return list(self.configs())


@dataclass(frozen=True)
class PrecomputedScan(PlanNode):
    config: AggregationConfig
    matchers: tuple[Matcher, ...]  # the query's selector
    range_ms: int
    offset_ms: int
    source: SketchSource | None = field(default=None, compare=False, repr=False)

    OUTPUT = ValueType.NONE

    def params(self):
        cfg = self.config
        return [
            ("aggregation", cfg.aggregation_id),
            ("type", cfg.aggregation_type),
            ("window", cfg.window_size_ms),
            ("slide", cfg.slide_interval_ms),
            ("keys", list(key_labels(cfg))),
        ]

    def window_ends(self, grid: Grid) -> np.ndarray:
        times = grid.times() - self.offset_ms
        if times.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        slide, window = self.config.slide_interval_ms, self.config.window_size_ms
        lo = int(times.min()) - self.range_ms + window
        return np.arange(lo, int(times.max()) + 1, slide, dtype=np.int64)

    def execute(self, ex: Executor, grid: Grid) -> SketchWindows:
        ends = self.window_ends(grid)
        if self.source is None or ends.shape[0] == 0:
            return _refused([], ends, family(self.config.aggregation_type), "no sketch store")
        return load_windows(ex.storage, self.source.store, self.config, self.matchers, ends)


def _refused(labels, ends, fam: str, reason: str) -> SketchWindows:
    n, w = len(labels), int(ends.shape[0])
    return SketchWindows(
        labels, ends, fam, {}, None, np.ones((n, w), bool), np.zeros(w, bool), 0, reason
    )


def resolve_series(
    storage, cfg: AggregationConfig, matchers: tuple[Matcher, ...], mint: int, maxt: int
) -> tuple[list[Labels], dict[Key, int], str]:
    """The query's series, their keys → row, or the reason keys cannot name them."""
    names = key_labels(cfg)
    query = storage.series([list(matchers)], mint, maxt)
    metric = Matcher(MatchType.EQUAL, METRIC_NAME, cfg.metric)
    summarised = storage.series([[metric, *cfg.matchers]], mint, maxt)
    keys_of_all: dict[Key, Labels] = {}
    for ls in summarised:
        values = dict(ls)
        key = tuple(values.get(n, "") for n in names)
        if key in keys_of_all:
            return (
                query,
                {},
                (
                    f"key labels {list(names)} do not identify series: "
                    f"{_fmt(keys_of_all[key])} and {_fmt(ls)} share a key"
                ),
            )
        keys_of_all[key] = ls
    filt = LabelFilter.from_matchers((metric, *cfg.matchers))
    rows: dict[Key, int] = {}
    for i, ls in enumerate(query):
        if not filt.matches(ls):
            return query, {}, f"series {_fmt(ls)} is not summarised by the aggregation"
        values = dict(ls)
        rows[tuple(values.get(n, "") for n in names)] = i
    return query, rows, ""


def _fmt(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def load_windows(
    storage, store: SketchStore, cfg: AggregationConfig, matchers, ends: np.ndarray
) -> SketchWindows:
    fam = family(cfg.aggregation_type)
    window, slide = cfg.window_size_ms, cfg.slide_interval_ms
    lo, hi = int(ends[0]) - window, int(ends[-1])
    labels, rows, reason = resolve_series(storage, cfg, matchers, lo + 1, hi)
    if reason:
        return _refused(labels, ends, fam, reason)
    span = store_span(store, cfg.aggregation_id)
    covered = np.zeros(ends.shape[0], dtype=bool)
    if span is not None:
        # The oldest pane may have missed samples ingested before the aggregation existed (or
        # lost to retention mid-window): only windows starting at or after the first stored
        # window's end are complete.
        covered = (ends - window >= span[0]) & (ends <= span[1])
    grouped = store.windows(cfg.aggregation_id, lo, hi)
    layout = _Layout(len(labels), ends, slide, fam)
    for (key, _start, end), entries in grouped.items():
        w = layout.column(end)
        if w < 0 or not covered[w]:
            continue
        for entry in entries:
            layout.add(decoded(entry), key, w, rows, cfg.keyed)
    return layout.finish(labels, covered, sum(len(v) for v in grouped.values()))


@functools.lru_cache(maxsize=200_000)
def decoded(entry: SketchEntry) -> Any:
    """What the query side reads from an entry, decoded once: entries are immutable and
    dashboards ask again and again (the bytes' hash is cached by Python, so lookups are cheap).
    Keyed moments/counters: (sub keys, their rows, columns); others: the accumulator (callers
    must not mutate it)."""
    acc = entry.accumulator()
    fam = family(acc.type_name)
    if acc.keyed and fam != "kll":
        return _keyed_columns(acc, fam)
    if fam == "kll":
        return acc
    return _scalar_columns(acc, fam)


def store_span(store: SketchStore, aggregation_id: int) -> tuple[int, int] | None:
    """(oldest window end, newest window end) of an aggregation's stored windows."""
    entries = store.entries(aggregation_id)
    if not entries:
        return None
    return entries[0].window_end, entries[-1].window_end  # ordered by window end


class _Layout:
    """Accumulates decoded entries into [series, window] cells (merging duplicates)."""

    def __init__(self, n: int, ends: np.ndarray, slide: int, fam: str) -> None:
        self.n, self.w, self.ends, self.slide, self.fam = n, int(ends.shape[0]), ends, slide, fam
        self.parts: list[tuple[np.ndarray, int, dict[str, np.ndarray]]] = []
        self.sketches = np.full((n, self.w), None, dtype=object) if fam == "kll" else None
        self.rank_error = 0.0
        self.sub_cache: dict[tuple[Key, tuple[Key, ...]], np.ndarray] = {}

    def column(self, end: int) -> int:
        off = end - int(self.ends[0])
        if off < 0 or off % self.slide or off // self.slide >= self.w:
            return -1
        return off // self.slide

    def add(self, item, key: Key, w: int, rows: dict[Key, int], keyed: bool) -> None:
        """``item`` from ``decoded``: shared between queries, so never mutated here."""
        if self.fam == "kll":
            row = rows.get(key)
            if row is None:
                return
            cell = self.sketches[row, w]
            if cell is None:
                self.sketches[row, w] = item
            else:  # several entries for one window (late data, restarts): merge into a copy
                merged = cell.empty_like()
                merged.merge(cell)
                merged.merge(item)
                self.sketches[row, w] = merged
            self.rank_error = max(self.rank_error, item.rank_error())
            return
        if keyed:
            subs, sub_rows, cols = item
            found = self.key_rows(key, subs, rows)
            ok = found >= 0
            if ok.any():
                pick = sub_rows[ok]
                self.parts.append((found[ok], w, {c: a[pick] for c, a in cols.items()}))
            return
        row = rows.get(key)
        if row is not None:
            self.parts.append((np.array([row]), w, item))

    def key_rows(self, key: Key, subs: tuple[Key, ...], rows: dict[Key, int]) -> np.ndarray:
        """Rows of a keyed entry's sub keys; consecutive windows usually list the same keys in
        the same order, so the mapping is reused (one tuple comparison, not a lookup per key)."""
        cache_key = (key, subs)
        found = self.sub_cache.get(cache_key)
        if found is None:
            found = np.array([rows.get(key + k, -1) for k in subs], dtype=np.int64)
            self.sub_cache[cache_key] = found
        return found

    def finish(self, labels, covered: np.ndarray, entries: int) -> SketchWindows:
        dirty = np.zeros((self.n, self.w), dtype=bool)
        if self.fam == "kll":
            return SketchWindows(
                labels, self.ends, self.fam, {}, self.sketches, dirty, covered, entries,
                rank_error=self.rank_error,
            )  # fmt: skip
        names = ("sum", "count", "min", "max") if self.fam == "moments" else _COUNTER_COLS
        if not self.parts:
            return SketchWindows(labels, self.ends, self.fam, _empty(names, self.n, self.w),
                                 None, dirty, covered, entries)  # fmt: skip
        r = np.concatenate([p[0] for p in self.parts])
        c = np.concatenate([np.full(p[0].shape[0], p[1], dtype=np.int64) for p in self.parts])
        cat = {k: np.concatenate([p[2][k] for p in self.parts]) for k in names}
        cols = _empty(names, self.n, self.w)
        if self.fam == "moments":
            np.add.at(cols["sum"], (r, c), cat["sum"])
            np.add.at(cols["count"], (r, c), cat["count"])
            np.fmin.at(cols["min"], (r, c), cat["min"])
            np.fmax.at(cols["max"], (r, c), cat["max"])
        else:
            seen = np.zeros((self.n, self.w), dtype=np.int64)
            np.add.at(seen, (r, c), 1)
            dirty = seen > 1  # overlapping counter states (late data): raw data decides
            for k in names:
                cols[k][r, c] = cat[k]
        return SketchWindows(labels, self.ends, self.fam, cols, None, dirty, covered, entries)


def _empty(names, n: int, w: int) -> dict[str, np.ndarray]:
    out = {}
    for k in names:
        if k in ("count", "n", "first_t", "last_t"):
            out[k] = np.zeros((n, w), dtype=np.int64)
        elif k in ("min", "max"):
            out[k] = np.full((n, w), np.nan)
        else:
            out[k] = np.zeros((n, w))
    return out


def _scalar_columns(acc, fam: str) -> dict[str, np.ndarray]:
    if fam == "moments":
        return {
            "sum": np.array([acc.sum]),
            "count": np.array([acc.count], dtype=np.int64),
            "min": np.array([acc.min]),
            "max": np.array([acc.max]),
        }
    s = acc.stats()
    return {k: np.array([s["count" if k == "n" else k]]) for k in _COUNTER_COLS}


def _keyed_columns(acc, fam: str) -> tuple[tuple[Key, ...], np.ndarray, dict[str, np.ndarray]]:
    """(sub keys, their row indexes in the column arrays, columns) of a keyed accumulator."""
    if fam == "moments":
        rows = acc.present()
        keys = tuple(acc.interner.keys[i] for i in rows.tolist())
        cols = {"sum": acc.sums, "count": acc.counts, "min": acc.mins, "max": acc.maxs}
        return keys, rows, cols
    cols_obj = acc.columns()
    rows = np.flatnonzero(cols_obj.n > 0)
    return tuple(acc.keys()), rows, {k: getattr(cols_obj, k) for k in _COUNTER_COLS}
