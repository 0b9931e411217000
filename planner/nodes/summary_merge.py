"""``SummaryMergeMultiple``: merge the windows each evaluation step spans.

Step ``t`` spans the ``m = range / window`` windows ending at ``t − offset − j·window``. The input
already merged several entries of one (key, window); here windows are merged across time:

- sums and counts: one cumulative sum per residue class of the window grid (stride
  ``window / slide``), so each step is a difference of two prefix sums — incremental from step to
  step, never recomputed from scratch, and vectorized over series × steps;
- min/max: ``m`` vectorized ``fmin``/``fmax`` passes over [series, steps];
- counter states: ``m`` vectorized merges in time order (reset bridging across window seams);
- KLL sketches: the weighted union of the step's window segments (``KllSteps``), evaluated by the
  quantile kernel for all (series, step) pairs at once, in chunks: a step of one window is one
  ``searchsorted`` into the stored segments; several windows are gathered and sorted by
  (pair, value). No sketch object is touched and nothing loops per (series, step).

A step whose windows are not all covered (or whose counter cell is dirty) is marked for raw data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.precomputed_scan import KllCells, SketchWindows
from promql.types import ValueType
from udfs.weighted_quantile import CHUNK_ITEMS, ramp, segment_quantiles, union_quantiles

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class MergedSteps:
    """Per (series, step) merged state; ``ok[n, k]``: the cell may be answered from windows."""

    labels: list
    family: str
    cols: dict[str, np.ndarray]  # [n, k]
    kll: KllSteps | None  # quantile sketches: the windows of each step, merged on demand
    ok: np.ndarray  # bool [n, k]
    reason: str = ""
    windows_merged: int = 0
    entries: int = 0
    rank_error: float = 0.0
    raw_windows: int = 0


@dataclass(frozen=True)
class SummaryMergeMultiple(PlanNode):
    input: PlanNode
    range_ms: int
    offset_ms: int
    window_ms: int
    slide_ms: int
    stats: tuple[str, ...] = ("sum", "count", "min", "max")  # moments the function reads

    INPUTS = ("input",)
    OUTPUT = ValueType.NONE

    def params(self):
        return [("windows_per_step", self.range_ms // self.window_ms), ("offset", self.offset_ms)]

    def check(self) -> None:
        require_type(self, self.input, ValueType.NONE)
        if self.range_ms % self.window_ms or self.window_ms % self.slide_ms:
            raise PlanError("SummaryMergeMultiple: windows do not tile the range")

    def execute(self, ex: Executor, grid: Grid) -> MergedSteps:
        sw = ex.run(self.input, grid)
        assert isinstance(sw, SketchWindows)
        k = grid.n_steps
        if sw.reason or sw.n_series == 0 or k == 0:
            n = sw.n_series
            return MergedSteps(sw.labels, sw.family, {}, None, np.zeros((n, k), bool), sw.reason)
        stride, m = self.window_ms // self.slide_ms, self.range_ms // self.window_ms
        last = np.searchsorted(sw.ends, grid.times() - self.offset_ms)  # [k] column per step
        cols_idx = last[None, :] - stride * np.arange(m)[::-1, None]  # [m, k], oldest first
        # Steps whose windows are all covered and clean: window counts by prefix sums, so no
        # [series, windows, steps] array is ever built.
        gaps = window_sum((~sw.covered)[None, :].astype(np.int64), last, stride, m)[0]
        ok = np.broadcast_to(gaps == 0, (sw.n_series, k)).copy()
        if sw.dirty.any():
            ok &= window_sum(sw.dirty.astype(np.int64), last, stride, m) == 0
        if m == 1 and sw.family != "kll":  # one window per step: its state is the answer
            wanted = ("count", *self.stats) if sw.family == "moments" else tuple(sw.cols)
            cols, sketches = {c: _columns(sw.cols[c], last) for c in dict.fromkeys(wanted)}, None
        elif sw.family == "moments":
            cols = merge_moments(sw.cols, last, stride, m, self.stats)
            sketches = None
        elif sw.family == "counter":
            cols, sketches = merge_counters(sw.cols, last, stride, m), None
        else:
            assert sw.kll is not None
            cols, sketches = {}, KllSteps(sw.kll, int(sw.ends.shape[0]), cols_idx)
        return MergedSteps(
            sw.labels, sw.family, cols, sketches, ok, "", int(m * ok.any(axis=0).sum()),
            sw.entries, sw.rank_error, sw.raw_windows,
        )  # fmt: skip


def _columns(x: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``x[:, last]``, C-ordered (fancy indexing on the last axis returns a transposed layout,
    which every kernel downstream would copy again); ``x`` itself when ``last`` takes every
    column in order (one stored window per step: the common dashboard case)."""
    if last.shape[0] == x.shape[1] and (
        last.shape[0] == 0 or (last[0] == 0 and bool((np.diff(last) == 1).all()))
    ):
        return x
    return np.take(x, last, axis=1)


def strided_prefix(x: np.ndarray, stride: int) -> np.ndarray:
    """``P[:, i + stride] = x[:, i] + P[:, i]`` (``P[:, :stride] = 0``): prefix sums per residue
    class of the column index modulo ``stride``."""
    n, w = x.shape
    blocks = -(-w // stride)
    padded = np.zeros((n, (blocks + 1) * stride), dtype=x.dtype)
    padded[:, stride : stride + w] = x
    view = padded.reshape(n, blocks + 1, stride)
    np.cumsum(view, axis=1, out=view)
    return padded


def window_sum(x: np.ndarray, last: np.ndarray, stride: int, m: int) -> np.ndarray:
    """Per step, the sum of ``x[:, c]`` over the ``m`` columns ``last − j·stride``."""
    prefix = strided_prefix(x, stride)
    return prefix[:, last + stride] - prefix[:, last + stride - m * stride]


def sliding_extreme(x: np.ndarray, last: np.ndarray, stride: int, m: int, op) -> np.ndarray:
    """Per step, ``op`` (``np.fmin``/``np.fmax``) over the ``m`` columns ``last − j·stride``:
    van Herk/Gil-Werman — per residue class, running extremes forward and backward inside blocks
    of ``m`` positions, so any ``m`` consecutive positions are two lookups. O(n·w), any ``m``."""
    n, w = x.shape
    per_class = -(-w // stride)
    blocks = -(-per_class // m)
    fill = np.nan
    padded = np.full((n, per_class * stride), fill)
    padded[:, :w] = x
    classes = np.full((n, stride, blocks * m), fill)
    classes[:, :, :per_class] = padded.reshape(n, per_class, stride).transpose(0, 2, 1)
    grouped = classes.reshape(n, stride, blocks, m)
    forward = op.accumulate(grouped, axis=3).reshape(n, stride, blocks * m)
    backward = op.accumulate(grouped[..., ::-1], axis=3)[..., ::-1].reshape(n, stride, blocks * m)
    r, pos = last % stride, last // stride
    return op(backward[:, r, pos - m + 1], forward[:, r, pos])


def merge_moments(cols: dict[str, np.ndarray], last: np.ndarray, stride: int, m: int, stats=()):
    """Per step: the statistics ``stats`` (count always) over the ``m`` windows ending at column
    ``last`` (stride apart): sums/counts by prefix differences, extremes by ``sliding_extreme``."""
    out: dict[str, np.ndarray] = {"count": window_sum(cols["count"], last, stride, m)}
    if "sum" in stats:
        out["sum"] = window_sum(cols["sum"], last, stride, m)
    if "min" in stats:
        out["min"] = sliding_extreme(cols["min"], last, stride, m, np.fmin)
    if "max" in stats:
        out["max"] = sliding_extreme(cols["max"], last, stride, m, np.fmax)
    return out


def _classes(x: np.ndarray, stride: int, fill) -> np.ndarray:
    """[n, w] → [n, stride, positions]: each residue class of the columns, in order."""
    n, w = x.shape
    per_class = -(-w // stride)
    padded = np.full((n, per_class * stride), fill, dtype=x.dtype)
    padded[:, :w] = x
    return np.ascontiguousarray(padded.reshape(n, per_class, stride).transpose(0, 2, 1))


def merge_counters(cols: dict[str, np.ndarray], last: np.ndarray, stride: int, m: int):
    """Counter state over the ``m`` windows ending at column ``last`` (stride apart), for every
    (series, step) at once. Equal to folding the windows in time order (``fold_counters``): the
    first/last sample come from the first/last non-empty window of the step; the reset correction
    is the windows' own plus a "bridge" at each seam between consecutive non-empty windows (the
    earlier window's last value when the later one starts lower), summed by prefix differences —
    seams after the step's first non-empty window only (the one into it is an earlier step's)."""
    c = {k: _classes(v, stride, 0) for k, v in cols.items()}
    n, _, positions = c["n"].shape
    pos = np.arange(positions)
    nonempty = c["n"] > 0
    prev_ne = np.maximum.accumulate(np.where(nonempty, pos, -1), axis=2)
    next_ne = np.minimum.accumulate(np.where(nonempty, pos, positions)[..., ::-1], axis=2)[
        ..., ::-1
    ]
    before = np.concatenate([np.full((n, stride, 1), -1), prev_ne[..., :-1]], axis=2)
    prev_last = np.take_along_axis(c["last_v"], np.maximum(before, 0), axis=2)
    bridge = np.where(nonempty & (before >= 0) & (c["first_v"] < prev_last), prev_last, 0.0)
    # Separate prefixes, so a step without resets (or without seams) gets exactly 0.
    prefix = np.zeros((n, stride, positions + 1))
    np.cumsum(c["resets"], axis=2, out=prefix[..., 1:])
    seams = np.zeros((n, stride, positions + 1))
    np.cumsum(bridge, axis=2, out=seams[..., 1:])
    count = np.zeros((n, stride, positions + 1), dtype=np.int64)
    np.cumsum(c["n"], axis=2, out=count[..., 1:])
    r, hi = last % stride, last // stride
    lo = hi - m + 1
    rows = np.arange(n)[:, None]
    first = next_ne[:, r, lo]
    final = prev_ne[:, r, hi]
    has = first <= hi[None, :]
    first, final = np.where(has, first, 0), np.where(has, final, 0)
    own = prefix[:, r, hi + 1] - prefix[:, r, lo]
    resets = own + (seams[:, r, hi + 1] - seams[rows, r[None, :], first + 1])
    return {
        "n": np.where(has, count[:, r, hi + 1] - count[:, r, lo], 0),
        "resets": np.where(has, resets, 0.0),
        "first_t": np.where(has, c["first_t"][rows, r[None, :], first], 0),
        "first_v": np.where(has, c["first_v"][rows, r[None, :], first], 0.0),
        "last_t": np.where(has, c["last_t"][rows, r[None, :], final], 0),
        "last_v": np.where(has, c["last_v"][rows, r[None, :], final], 0.0),
    }


def fold_counters(cols: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    """Reference for ``merge_counters`` (tests): fold each step's windows in time order."""
    acc = {name: a[:, idx[0]].copy() for name, a in cols.items()}
    for j in range(1, idx.shape[0]):
        acc = merge_counter_pair(acc, {name: a[:, idx[j]] for name, a in cols.items()})
    return acc


def merge_counter_pair(a: dict[str, np.ndarray], b: dict[str, np.ndarray]):
    """Counter state of ``a`` followed by ``b`` (``b`` strictly later), elementwise."""
    ea, eb = a["n"] == 0, b["n"] == 0
    both = ~ea & ~eb
    bridge = np.where(both & (b["first_v"] < a["last_v"]), a["last_v"], 0.0)
    return {
        "n": a["n"] + b["n"],
        "resets": a["resets"] + b["resets"] + bridge,
        "first_t": np.where(ea, b["first_t"], a["first_t"]),
        "first_v": np.where(ea, b["first_v"], a["first_v"]),
        "last_t": np.where(eb, a["last_t"], b["last_t"]),
        "last_v": np.where(eb, a["last_v"], b["last_v"]),
    }


@dataclass(frozen=True)
class KllSteps:
    """Step ``j`` of series ``i`` is the weighted union of the cells ``i·w + cols[:, j]``."""

    cells: KllCells
    w: int
    cols: np.ndarray  # int64 [m, k]: window columns of each step, oldest first

    def quantiles(self, ok: np.ndarray, q: np.ndarray):
        """(values [n, k], present [n, k], per step whether an answer is approximate [k]) for
        the cells ``ok``; ``q`` per step."""
        n, k = ok.shape
        q = np.broadcast_to(q, (k,))
        values = np.zeros(n * k)
        present = np.zeros(n * k, dtype=bool)
        pairs = np.flatnonzero(ok.ravel())
        m = self.cols.shape[0]
        block = max(1, CHUNK_ITEMS // (16 * m))  # pairs per pass: bounds the [pairs, m] arrays
        approx = np.zeros(k, dtype=bool)
        for a in range(0, pairs.shape[0], block):
            p = pairs[a : a + block]
            v, has, exact = self._pairs(p // k, p % k, q[p % k])
            values[p], present[p] = v, has
            approx[(p % k)[has & ~exact]] = True
        return values.reshape(n, k), present.reshape(n, k), approx

    def _pairs(self, i: np.ndarray, j: np.ndarray, q: np.ndarray):
        c, seg = self.cells, self.cells.segments
        cells = i[:, None] * self.w + self.cols[:, j].T  # [pairs, m]
        counts = c.start[cells + 1] - c.start[cells]
        per_pair = counts.sum(axis=1)
        if c.rows.shape[0] == 0:
            return np.zeros(i.shape[0]), np.zeros(i.shape[0], bool), np.ones(i.shape[0], bool)
        if self.cols.shape[0] == 1 and int(per_pair.max(initial=0)) <= 1:
            # One stored segment per step (the common case): no gather, one searchsorted.
            rows = c.rows[np.minimum(c.start[cells[:, 0]], c.rows.shape[0] - 1)]
            has = per_pair == 1
            has[has] = seg.totals(rows[has]) > 0
            values = segment_quantiles(seg, rows[has], q[has])
            out = np.zeros(i.shape[0])
            out[has] = values
            return out, has, np.where(has, seg.exact[rows], True)
        members = c.rows[ramp(c.start[cells.ravel()], counts.ravel())]
        starts = np.zeros(i.shape[0] + 1, dtype=np.int64)
        np.cumsum(per_pair, out=starts[1:])
        weight = np.zeros(members.shape[0] + 1, dtype=np.int64)
        np.cumsum(seg.totals(members), out=weight[1:])
        totals = weight[starts[1:]] - weight[starts[:-1]]
        has = (per_pair > 0) & (totals > 0)
        values, exact = union_quantiles(seg, starts, members, q)
        return np.where(has, values, 0.0), has, exact
