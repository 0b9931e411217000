"""``LatestSample``: an instant selector answered from ``MultipleLast`` windows.

Prometheus (promql/engine.go ``vectorSelectorSingle``, v3.x) gives each series, at selector time
``s = (@ or t) − offset``, its newest sample in ``(s − lookback, s]``, and no value when that
sample is a stale marker. With ``lookback = m · window`` and ``s`` on the slide grid the windows
ending at ``s, s − window, …, s − (m−1)·window`` tile that interval exactly, and each keeps per
series its newest sample including stale markers: the answer is the newest of those windows that
holds a sample — found for every (series, step) at once with one forward "last non-empty window"
index per residue class of the window grid (stride ``window / slide``), then stale ones dropped.

Coverage is the range-function path's (``precomputed_scan.covered_windows``: the precompute engine's
coverage when attached — every group closed — else the stored span). Other windows (before the
aggregation existed, retention, the still-open newest window, a group not closed yet) are rebuilt
from raw samples for tumbling windows (``raw_windows.raw_cells``); with sliding windows a step
whose answer depends on an uncovered window (one newer than every non-empty covered window) is
evaluated by the exact subtree (``summary_infer.stitch_exact_steps``). Several entries of one (key, window) — late
mini-accumulators, restarts — merge as the accumulator does: newest timestamp, ties to the one
written later. Data-dependent refusals (keys not identifying series, series the aggregation does
not summarise) hand the whole query to the exact subtree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.precomputed_scan import SketchSource, covered_windows, resolve_series
from planner.nodes.raw_windows import raw_cells
from planner.nodes.summary_infer import notes_for, stitch_exact_steps
from planner.nodes.summary_merge import _classes
from planner.nodes.timing import describe_at, selector_times
from planner.precompute_match import key_labels
from planner.sketch_table import table_for
from planner.values import InstantVector
from promql.types import Matcher, ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid
    from precompute.config import AggregationConfig


@dataclass(frozen=True)
class LastCells:
    """Per query series (rows) and window end (columns, ``slide`` apart from ``ends[0]``)."""

    labels: list
    ends: np.ndarray  # int64 [w]
    has: np.ndarray  # bool [n, w]: the window holds a sample of the series
    value: np.ndarray  # float64 [n, w]: its newest sample (stale markers bit-exact)
    stale: np.ndarray  # bool [n, w]: that sample is a stale marker
    covered: np.ndarray  # bool [w]: the column is known (stored or rebuilt from raw samples)
    entries: int = 0
    raw_windows: int = 0
    reason: str = ""


@dataclass(frozen=True)
class LatestSample(PlanNode):
    config: AggregationConfig
    exact: PlanNode  # the original InstantManipulate subtree: raw data for what windows lack
    matchers: tuple[Matcher, ...]
    lookback_ms: int
    offset_ms: int = 0
    at_ms: int | None = None
    source: SketchSource | None = field(default=None, compare=False, repr=False)

    INPUTS = ("exact",)
    READS_STORAGE = True

    def params(self):
        cfg = self.config
        out: list[tuple[str, object]] = [
            ("aggregation", cfg.aggregation_id),
            ("type", cfg.aggregation_type),
            ("window", cfg.window_size_ms),
            ("slide", cfg.slide_interval_ms),
            ("keys", list(key_labels(cfg))),
            ("lookback", self.lookback_ms),
        ]
        return out + describe_at(self.offset_ms, self.at_ms)

    def check(self) -> None:
        require_type(self, self.exact, ValueType.VECTOR)
        window, slide = self.config.window_size_ms, self.config.slide_interval_ms
        if self.lookback_ms % window or window % slide:
            raise PlanError("LatestSample: windows do not tile the lookback")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        k = grid.n_steps
        note = notes_for(ex, self)
        if self.source is None or k == 0:
            return ex.run(self.exact, grid)
        times = selector_times(grid, self.offset_ms, self.at_ms)
        cfg = self.config
        window, slide = cfg.window_size_ms, cfg.slide_interval_ms
        lo = int(times.min()) - self.lookback_ms + window
        ends = np.arange(lo, int(times.max()) + 1, slide, dtype=np.int64)
        src = self.source
        cov = src.coverage(cfg.aggregation_id) if src.coverage is not None else None
        cells = load_last_cells(ex.storage, src.store, cfg, self.matchers, ends, cov)
        note.update(windows=int(ends.shape[0]), entries=cells.entries)
        if cells.raw_windows:
            note["raw_windows"] = cells.raw_windows
        if cells.reason:
            note["fallback"] = cells.reason
            return ex.run(self.exact, grid)
        if not cells.labels:
            return InstantVector.empty(k)
        ex.check_cells(len(cells.labels), k)
        cols = (times - int(ends[0])) // slide
        values, present, ok = newest_in_lookback(
            cells, cols, window // slide, self.lookback_ms // window
        )
        rows = np.flatnonzero(present.any(axis=1))
        out = InstantVector([cells.labels[i] for i in rows.tolist()], values[rows], present[rows])
        bad = ~ok.all(axis=0)
        if bad.any():
            note["raw_steps"] = int(bad.sum())
            out = stitch_exact_steps(ex, self.exact, grid, out, bad)
        return out


def newest_in_lookback(cells: LastCells, cols: np.ndarray, stride: int, m: int):
    """(values, present, ok) over [series, steps]: per step the newest sample among the ``m``
    windows ending at column ``cols[i]`` and every ``stride`` columns before it. ``ok`` is false
    where an uncovered window is newer than every window holding a sample (raw data decides)."""
    n = len(cells.labels)
    stop = cells.has | ~cells.covered[None, :]  # a sample, or a window we know nothing about
    pos = np.arange(-(-cells.ends.shape[0] // stride))
    marks = np.where(_classes(stop, stride, False), pos, -1)
    newest = np.maximum.accumulate(marks, axis=2)  # [n, stride, positions]
    r, q = cols % stride, cols // stride
    p = newest[:, r, q]  # [n, k] position of the newest stop at or before the step's window
    found = (p >= 0) & (p >= (q - m + 1)[None, :])
    col = np.where(found, p * stride + r[None, :], 0)
    rows = np.arange(n)[:, None]
    known = cells.covered[col]
    sample = found & known & cells.has[rows, col]
    present = sample & ~cells.stale[rows, col]
    values = np.where(present, cells.value[rows, col], 0.0)
    return values, present, ~(found & ~known)


def load_last_cells(
    storage, store, cfg: AggregationConfig, matchers, ends: np.ndarray, coverage=None
) -> LastCells:
    """The stored (and, for tumbling windows, raw-rebuilt) newest samples per series × window.
    ``coverage``: the precompute engine's ``(complete_from, closed_through, holes)`` when
    attached."""
    window, slide = cfg.window_size_ms, cfg.slide_interval_ms
    mint, maxt = int(ends[0]) - window + 1, int(ends[-1])
    labels, rows, reason = resolve_series(storage, cfg, matchers, mint, maxt)
    n, w = len(labels), int(ends.shape[0])
    if reason:
        return _empty(labels, ends, reason)
    table = table_for(store, cfg)
    with table.lock:
        got = table.select(store, ends)
        covered = covered_windows(table.span(), ends, window, coverage)
        r = table.rows_for(rows, n)[got.kid]
    sel = np.flatnonzero((r >= 0) & covered[got.col])
    r, col = r[sel], got.col[sel]
    picked = got.take(sel, ("last_t", "last_v", "stale", "seq"))
    t, v, st = picked["last_t"], picked["last_v"], picked["stale"].astype(bool)
    flat, seq = r * w + col, picked["seq"]  # log position: a later entry was written later
    fill = ~covered if window == slide else np.zeros(w, dtype=bool)
    n_raw = int(fill.sum())
    if n_raw and n:
        raw = raw_cells(storage, matchers, labels, ends, np.flatnonzero(fill), window, "last")
        if raw.flat.shape[0]:  # rebuilt columns hold no stored entry: no overlap
            flat = np.concatenate([flat, raw.flat])
            seq = np.concatenate([seq, np.full(raw.flat.shape[0], -1)])
            t = np.concatenate([t, raw.cols["last_t"]])
            v = np.concatenate([v, raw.cols["last_v"]])
            st = np.concatenate([st, raw.cols["stale"].astype(bool)])
        covered = covered | fill
    has = np.zeros(n * w, dtype=bool)
    value = np.zeros(n * w)
    stale = np.zeros(n * w, dtype=bool)
    if flat.shape[0]:
        last = _newest_per_cell(flat, t, seq, n * w)
        has[flat[last]] = True
        value[flat[last]] = v[last]
        stale[flat[last]] = st[last]
    return LastCells(
        labels,
        ends,
        has.reshape(n, w),
        value.reshape(n, w),
        stale.reshape(n, w),
        covered,
        int(sel.shape[0]),
        n_raw,
    )


def _newest_per_cell(flat: np.ndarray, t: np.ndarray, seq: np.ndarray, size: int) -> np.ndarray:
    """Index of the entry to keep per cell: the newest sample, ties to the later entry. One entry
    per cell is the normal case (a sort only when late data or restarts added more)."""
    if int(np.bincount(flat, minlength=size).max()) <= 1:
        return np.arange(flat.shape[0])
    order = np.lexsort((seq, t, flat))
    f = flat[order]
    return order[np.r_[f[1:] != f[:-1], True]]


def _empty(labels, ends: np.ndarray, reason: str) -> LastCells:
    n, w = len(labels), int(ends.shape[0])
    none = np.zeros((n, w), dtype=bool)
    return LastCells(labels, ends, none, np.zeros((n, w)), none, np.zeros(w, bool), reason=reason)
