"""``PrecomputedScan``: the windows of one aggregation, per query series and window end.

Reads the aggregation's window table (``planner.sketch_table``: stored windows decoded lazily
per block of window ends, cached under a memory budget) for
the window ends a grid needs (``t − offset − j·window`` for every step ``t`` and
``j < range / window``) and lays them out as ``[series, window]`` arrays (moments, counter
columns) or, for KLL sketches, weighted segments grouped by cell (``KllCells``). Several entries
of one (key, window) — late mini-accumulators, restarts — are merged here, before any window
merging (moments add; sketches become a union of the cell's segments, read by the quantile
kernel); counter states whose time ranges overlap cannot be merged exactly.

Coverage: with a precompute engine attached (``SketchSource.coverage``), a window is answered by
the store when the engine says it holds every sample (it starts at or after the aggregation's
``complete_from``: the engine listened before those samples arrived) and is closed for every group
(it ends at or before ``closed_through``), and it is inside the stored range (retention). Without
an engine (store only) the oldest stored window counts as possibly partial (the first window of a
config added while data flowed) and windows after the newest stored one as open. With tumbling
windows, every other window — and counter windows with overlapping entries — is rebuilt from raw
samples (``raw_windows``); with sliding windows it stays uncovered and the steps needing it go to
the exact subtree.

Data-dependent checks that planning cannot make happen here, and refuse (``reason``) rather than
answer wrongly: every query series must be one the aggregation summarises (its metric and
filter), and the key labels must identify a single series among all the aggregation's series.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from planner.labels import ListMemo, all_distinct
from planner.nodes.base import PlanNode
from planner.nodes.raw_windows import raw_cells
from planner.precompute_match import family, key_labels
from planner.sketch_table import COUNTER_COLS, MOMENT_COLS, table_for
from planner.window_cells import empty_cells, gather_cells, to_rows
from precompute import holes
from precompute.filters import LabelFilter
from promql.types import Matcher, MatchType, ValueType
from storage.append_log import ReadMark
from storage.model import METRIC_NAME, Labels
from udfs.weighted_quantile import Segments, concat, local_cumsum, take

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid
    from precompute.config import AggregationConfig
    from storage.sketch_store import SketchStore

Key = tuple[str, ...]


@dataclass(frozen=True)
class KllCells:
    """KLL windows per cell: cell ``c = row·w + column`` owns the segments
    ``rows[start[c]:start[c + 1]]`` (several when late entries were forwarded)."""

    segments: Segments
    start: np.ndarray  # int64 [n·w + 1]
    rows: np.ndarray  # int64: segment ids grouped by cell


@dataclass(frozen=True)
class SketchWindows:
    """Per query series (rows) and window end (columns: every ``slide`` ms from ``ends[0]``, or
    only the steps' own windows when each step reads one sliding window)."""

    labels: list[Labels]
    ends: np.ndarray  # int64 [w]
    family: str
    cols: dict[str, np.ndarray]  # moments: sum/count/min/max; counter: COUNTER_COLS; [n, w]
    kll: KllCells | None  # quantile sketches (family "kll")
    dirty: np.ndarray  # bool [n, w]: a cell that must come from raw data
    covered: np.ndarray  # bool [w]: the window is closed and inside the stored range
    entries: int = 0
    reason: str = ""  # non-empty: cannot answer from windows at all (fall back)
    rank_error: float = 0.0  # worst KLL normalized rank error among read sketches
    raw_windows: int = 0  # window columns rebuilt from raw samples

    @property
    def n_series(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class SketchSource:
    """Where the query side finds configurations and closed windows."""

    store: SketchStore
    configs: Any  # () -> Sequence[AggregationConfig]; live, so run-time config changes apply
    # aggregation id -> (complete_from_ms, closed_through_ms, holes) | None: the engine's
    # ``PrecomputeEngine.coverage``; None: judge coverage from the store alone.
    coverage: Any = None

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
    READS_STORAGE = True

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
        if self.range_ms == window and window != slide:
            # One sliding window per step: only the steps' own windows, not every slide between
            # them (a 200 s step over 20 s slides would read and scatter 10× the windows). A
            # grid's times are ascending and distinct already.
            return times
        lo = int(times.min()) - self.range_ms + window
        return np.arange(lo, int(times.max()) + 1, slide, dtype=np.int64)

    def execute(self, ex: Executor, grid: Grid) -> SketchWindows:
        ends = self.window_ends(grid)
        if self.source is None or ends.shape[0] == 0:
            return _refused([], ends, family(self.config.aggregation_type), "no sketch store")
        src = self.source
        cov = src.coverage(self.config.aggregation_id) if src.coverage is not None else None
        return load_windows(ex.storage, src.store, self.config, self.matchers, ends, cov)


def _refused(labels, ends, fam: str, reason: str) -> SketchWindows:
    n, w = len(labels), int(ends.shape[0])
    return SketchWindows(
        labels, ends, fam, {}, None, np.ones((n, w), bool), np.zeros(w, bool), 0, reason
    )


# Resolved series lists by (storage, aggregation, selector, range), with the storage's write mark
# taken before the read: kept while nothing at or before the range's end was written since.
_RESOLVED: dict[tuple, tuple[ReadMark, tuple[list[Labels], dict[Key, int], str]]] = {}
RESOLVED_KEPT = 256


def resolve_series(
    storage, cfg: AggregationConfig, matchers: tuple[Matcher, ...], mint: int, maxt: int
) -> tuple[list[Labels], dict[Key, int], str]:
    """The query's series, their keys → row, or the reason keys cannot name them.

    A refresh asks for the same range again: the answer is kept while the earliest sample
    written since (``storage.append_log``) is newer than ``maxt``. A series listed only because
    its samples straddle the range (``Storage.series``) can then be missed; it has no sample
    in the range, so no window or raw cell to answer for."""
    appends = getattr(storage, "appends", None)
    if appends is None:
        return _resolve(storage, cfg, matchers, mint, maxt)
    key = (id(storage), cfg, matchers, mint, maxt)
    kept = _RESOLVED.get(key)
    if kept is not None and kept[0].holds(appends):
        labels, rows, reason = kept[1]
        return list(labels), rows, reason
    read = appends.before_read(maxt)
    resolved = _resolve(storage, cfg, matchers, mint, maxt)
    if len(_RESOLVED) >= RESOLVED_KEPT:
        _RESOLVED.clear()
    _RESOLVED[key] = (read, (list(resolved[0]), *resolved[1:]))
    return resolved


def _resolve(
    storage, cfg: AggregationConfig, matchers: tuple[Matcher, ...], mint: int, maxt: int
) -> tuple[list[Labels], dict[Key, int], str]:
    names = key_labels(cfg)
    query = storage.series([list(matchers)], mint, maxt)
    metric = Matcher(MatchType.EQUAL, METRIC_NAME, cfg.metric)
    aggregated = {metric, *cfg.matchers}
    same = aggregated == set(matchers)  # the dashboard case: the query selects what is summarised
    summarised = query if same else storage.series([[metric, *cfg.matchers]], mint, maxt)
    keys = _keys(names, summarised)
    if not all_distinct(list(keys)):
        first: dict[Key, Labels] = {}
        for key, ls in zip(keys, summarised, strict=True):
            if key in first:
                reason = (
                    f"key labels {list(names)} do not identify series: "
                    f"{_fmt(first[key])} and {_fmt(ls)} share a key"
                )
                return query, {}, reason
            first[key] = ls
    if aggregated <= set(matchers):  # the selector applied the aggregation's own matchers
        own = keys if same else _keys(names, query)
        return query, _ROWS(list(own)), ""
    # Judged with the router's own filter (what was really summarised), memoized per series.
    filt = LabelFilter.from_matchers((metric, *cfg.matchers))
    seen = _MATCH_CACHE.setdefault((metric, *cfg.matchers), {})
    if len(seen) > 1_000_000:
        seen.clear()
    for ls in query:
        ok = seen.get(ls)
        if ok is None:
            ok = seen[ls] = filt.matches(ls)
        if not ok:
            return query, {}, f"series {_fmt(ls)} is not summarised by the aggregation"
    return query, _ROWS(list(_keys(names, query))), ""


_KEY_CACHE: dict[tuple[str, ...], dict[Labels, Key]] = {}
_MATCH_CACHE: dict[tuple[Matcher, ...], dict[Labels, bool]] = {}
_KEYS: dict[tuple[str, ...], ListMemo] = {}


def _keys(names: tuple[str, ...], series: list[Labels]) -> tuple[Key, ...]:
    """Each series' key label values, remembered per series list and per label set
    (dashboards ask for the same series on every refresh; building a dict per series per query
    was most of this scan's Python time)."""
    memo = _KEYS.get(names)
    if memo is None:
        memo = _KEYS.setdefault(names, ListMemo(partial(_derive_keys, names)))
    return memo(series)


def _derive_keys(names: tuple[str, ...], series: list[Labels]) -> tuple[Key, ...]:
    cache = _KEY_CACHE.setdefault(names, {})
    if len(cache) > 1_000_000:  # bound memory under series churn
        cache.clear()
    out = []
    for ls in series:
        key = cache.get(ls)
        if key is None:
            values = dict(ls)
            key = cache[ls] = tuple(values.get(n, "") for n in names)
        out.append(key)
    return tuple(out)


def _row_index(keys: list[Key]) -> dict[Key, int]:
    return dict(zip(keys, range(len(keys)), strict=True))


# Key → query row per key list (shared between queries: read, never changed).
_ROWS = ListMemo(_row_index)


def _fmt(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def load_windows(
    storage,
    store: SketchStore,
    cfg: AggregationConfig,
    matchers,
    ends: np.ndarray,
    coverage: tuple | None = None,
) -> SketchWindows:
    fam = family(cfg.aggregation_type)
    window, slide = cfg.window_size_ms, cfg.slide_interval_ms
    lo, hi = int(ends[0]) - window, int(ends[-1])
    labels, rows, reason = resolve_series(storage, cfg, matchers, lo + 1, hi)
    if reason:
        return _refused(labels, ends, fam, reason)
    n, w = len(labels), int(ends.shape[0])
    table = table_for(store, cfg)
    with table.lock:
        got = table.select(store, ends)
        covered = covered_windows(table.span(), ends, window, coverage)
        key_row = table.rows_for(rows, n)
    if fam != "kll":
        return _cells(storage, matchers, labels, ends, fam, (window, slide), covered, got, key_row)
    r = key_row[got.kid]
    sel = np.flatnonzero(r >= 0)
    r, col = r[sel], got.col[sel]
    keep = covered[col]
    sel, r, col = sel[keep], r[keep], col[keep]
    segments, ks = got.segments, got.seg_k[sel] if got.seg_k is not None else None
    assert segments is not None and ks is not None
    # Tumbling windows: the uncovered ones are rebuilt from raw samples (exact segments).
    fill = ~covered if window == slide else np.zeros(w, dtype=bool)
    raw, n_raw = None, int(fill.sum())
    if n_raw:
        raw = raw_cells(storage, matchers, labels, ends, np.flatnonzero(fill), window, fam)
        covered = covered | fill
    sw = _sketch_cells(labels, ends, r * w + col, sel, segments, ks, covered, raw, len(sel))
    return dataclasses.replace(sw, raw_windows=n_raw)


def _cells(storage, matchers, labels, ends, fam: str, sizes, covered, got, key_row):
    """Moments and counter states per cell, straight from the selected pool rows
    (``planner.window_cells``). With tumbling windows, the uncovered columns and counter columns
    whose entries overlap are rebuilt from raw samples; sliding windows overlap each other, so
    their gaps are left to the exact subtree."""
    n, w = len(labels), int(ends.shape[0])
    window, slide = sizes
    tumbling = window == slide
    names = MOMENT_COLS if fam == "moments" else COUNTER_COLS
    flat_cols = empty_cells(names, n * w)  # column-major: cell c·n + r
    hits = np.zeros(n * w, dtype=np.int32)
    gather_cells(fam, got.pool, got.rows, got.kid, got.col, key_row, covered, n, flat_cols, hits)
    fill = ~covered if tumbling else np.zeros(w, dtype=bool)
    if fam == "counter" and tumbling:
        overlap = (hits.reshape(w, n) > 1).any(axis=1) & covered
        if overlap.any():
            reset = np.repeat(overlap, n)
            for k, v in empty_cells(names, 1).items():
                flat_cols[k][reset] = v[0]
            hits[reset] = 0
            fill |= overlap
    entries, n_raw = int(hits.sum()), int(fill.sum())
    if n_raw:
        raw = raw_cells(storage, matchers, labels, ends, np.flatnonzero(fill), window, fam)
        if raw.flat.shape[0]:
            ids = np.arange(raw.flat.shape[0], dtype=np.int64)
            every = np.ones(w, dtype=bool)
            gather_cells(fam, raw.cols, ids, raw.flat // w, raw.flat % w, np.arange(n), every, n,
                         flat_cols, hits)  # fmt: skip
        covered = covered | fill
    if fam == "counter":
        # Left column-major ([n, w] views of [w, n] arrays): the common one-window-per-step
        # read goes straight to the extrapolation kernel, which walks that order, so only its
        # output is ever reordered.
        dirty = (hits > 1).reshape(w, n).T
        cols = {k: v.reshape(w, n).T for k, v in flat_cols.items()}
    else:
        dirty = np.zeros((n, w), dtype=bool)
        cols = {k: to_rows(v, n, w) for k, v in flat_cols.items()}
    return SketchWindows(labels, ends, fam, cols, None, dirty, covered, entries, raw_windows=n_raw)


def covered_windows(span, ends: np.ndarray, window: int, coverage=None) -> np.ndarray:
    """Windows the store answers. With the engine's ``coverage`` (complete from, closed
    through, holes, empty before): complete and closed windows inside the stored range ``span``
    or before the aggregation's oldest sample, outside the holes. Without it, the oldest stored
    window may have missed samples ingested before the aggregation existed, so only windows
    starting at or after its end count, and windows after the newest are open."""
    if span is None:
        return np.zeros(ends.shape[0], dtype=bool)
    if coverage is None:
        return (ends - window >= span[0]) & (ends <= span[1])
    complete_from, closed_through, *rest = coverage
    inside = (ends >= span[0]) & (ends <= min(span[1], closed_through))
    if len(rest) > 1 and rest[1] is not None:
        # Before the aggregation's oldest sample (its whole history seen): empty, not missing.
        inside |= ends < rest[1]
    inside &= ends - window >= complete_from
    if rest and rest[0]:
        inside &= ~holes.inside(ends, rest[0])
    return inside


def _sketch_cells(labels, ends, flat, sel, segments: Segments, ks, covered, raw, entries: int):
    """Cells → segment ids (CSR by cell); windows rebuilt from raw samples join as exact
    segments of their values."""
    from datasketches import kll_doubles_sketch

    n, w = len(labels), int(ends.shape[0])
    approx = ~segments.exact[sel]
    bounds = [kll_doubles_sketch.get_normalized_rank_error(int(k), True) for k in set(ks[approx])]
    rows = sel
    if raw is not None and raw.flat.shape[0]:
        # Only here are segments copied: the query's own rows, then the raw cells' values.
        sizes = raw.cols["n"]
        hi = np.cumsum(sizes)
        ones = np.ones(int(hi[-1]), dtype=np.int64)
        raw_seg = Segments(
            raw.cols["items"], local_cumsum(ones, sizes), hi - sizes, hi,
            np.ones(sizes.shape[0], dtype=bool),
        )  # fmt: skip
        segments = concat(take(segments, sel), raw_seg)
        rows = np.arange(segments.n_segments, dtype=np.int64)
        flat = np.concatenate([flat, raw.flat])
    order = np.argsort(flat, kind="stable")
    start = np.zeros(n * w + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=n * w), out=start[1:])
    cells = KllCells(segments, start, rows[order])
    dirty = np.zeros((n, w), dtype=bool)
    return SketchWindows(
        labels, ends, "kll", {}, cells, dirty, covered, entries, rank_error=max(bounds, default=0.0)
    )


def _scalar_columns(acc, fam: str) -> dict[str, np.ndarray]:
    if fam == "moments":
        return {
            "sum": np.array([acc.sum]),
            "count": np.array([acc.count], dtype=np.int64),
            "min": np.array([acc.min]),
            "max": np.array([acc.max]),
        }
    s = acc.stats()
    return {k: np.array([s["count" if k == "n" else k]]) for k in COUNTER_COLS}


def _keyed_columns(acc, fam: str) -> tuple[tuple[Key, ...], np.ndarray, dict[str, np.ndarray]]:
    """(sub keys, their row indexes in the column arrays, columns) of a keyed accumulator."""
    if fam == "last":
        return acc.key_columns()
    if fam == "moments":
        rows = acc.present()
        keys = tuple(acc.interner.keys[i] for i in rows.tolist())
        cols = {"sum": acc.sums, "count": acc.counts, "min": acc.mins, "max": acc.maxs}
        return keys, rows, cols
    cols_obj = acc.columns()
    rows = np.flatnonzero(cols_obj.n > 0)
    return tuple(acc.keys()), rows, {k: getattr(cols_obj, k) for k in COUNTER_COLS}
