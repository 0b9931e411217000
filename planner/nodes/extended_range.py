"""Experimental ``anchored`` / ``smoothed`` selectors, vectorized over all (series, step) windows.

Semantics of Prometheus 3 (``promql/engine.go`` ``matrixSelector``/``smoothSeries`` and
``promql/functions.go`` ``extendedRate``, ``pickFirstSampleIndices``, ``interpolate``):

- an anchored window ``(t - range, t]`` also reads back one lookback delta, so the last sample at
  or before the window start anchors it; rate/increase/delta are ``right - left`` (plus counter
  reset corrections) with no extrapolation; changes/resets start at the anchor;
- a smoothed window additionally reads one lookback delta past its end and interpolates linearly
  at both boundaries; a smoothed instant selector interpolates at the evaluation time.

These are pure functions over the concatenated sample arrays (stale markers already removed);
they could move into ``udfs`` as kernels unchanged.
"""

from __future__ import annotations

import numpy as np

from udfs.range_array import RangeArray
from udfs.windows import range_windows

ANCHORED_FUNCTIONS = ("changes", "delta", "increase", "rate", "resets")
SMOOTHED_FUNCTIONS = ("delta", "increase", "rate")


def first_after(offsets: np.ndarray, ts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``[n_series * n_steps]``: global index of each series' first sample with ``T > time``."""
    starts, sizes, _ = range_windows(offsets, ts, times, 1)
    return starts + sizes


def extended_windows(
    offsets: np.ndarray,
    ts: np.ndarray,
    times: np.ndarray,
    range_ms: int,
    lookback_ms: int,
    smoothed: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(start, size)`` of each extended window ``(t - range - lb, t (+ lb if smoothed)]``."""
    if smoothed:
        starts, sizes, _ = range_windows(
            offsets, ts, times + lookback_ms, range_ms + 2 * lookback_ms
        )
    else:
        starts, sizes, _ = range_windows(offsets, ts, times, range_ms + lookback_ms)
    return starts, sizes


def _interpolate(ts, vs, i1, i2, t, is_counter: bool) -> np.ndarray:
    y1, y2 = vs[i1], vs[i2]
    if is_counter:
        y1 = np.where(y2 < y1, 0.0, y1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return y1 + (y2 - y1) * (t - ts[i1]) / (ts[i2] - ts[i1])


def extended_rate(
    ra: RangeArray,
    gt_start: np.ndarray,
    ge_end: np.ndarray,
    smoothed: bool,
    is_counter: bool,
    is_rate: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream ``extendedRate`` for every window of ``ra`` (windows already extended).

    ``gt_start[w]``: global index of the first sample after the window start ``t - range``;
    ``ge_end[w]``: of the first sample at or after ``t``.
    """
    ts, vs = ra.timestamps, ra.values
    a, n = ra.offsets, ra.sizes
    b = a + n
    nonempty = n > 0
    last_ok = np.maximum(b - 1, a)
    rs = ra.window_ends - ra.range_ms
    re = ra.window_ends
    first = a + np.maximum(0, np.clip(gt_start, a, last_ok) - a - 1)
    last = np.clip(ge_end, a, last_ok) if smoothed else last_ok
    safe = lambda i: np.clip(i, 0, max(ts.shape[0] - 1, 0))  # noqa: E731
    present = nonempty & (ts[safe(last)] > rs)
    if smoothed:
        present &= ts[safe(first)] <= re
    first, last = safe(first), safe(last)
    left = vs[first]
    right = vs[last]
    if smoothed:
        need_l = present & (ts[first] < rs)
        nxt = safe(first + 1)
        left = np.where(need_l, _interpolate(ts, vs, first, nxt, rs, is_counter), left)
        need_r = present & (last > a) & (ts[last] > re)
        prv = safe(last - 1)
        right = np.where(need_r, _interpolate(ts, vs, prv, last, re, is_counter), right)
    result = right - left
    if is_counter:
        result = result + _reset_correction(ts, vs, first, last, left, right, rs, re)
    if is_rate:
        result = result / (ra.range_ms / 1000.0)
    return np.where(present, result, np.nan), present


def _reset_correction(ts, vs, first, last, left, right, rs, re) -> np.ndarray:
    """``correctForCounterResets(left, right, f[first':last'+1])`` for every window at once."""
    f2 = first + (ts[first] <= rs)
    l2 = last - (ts[last] >= re)
    drops = np.zeros(vs.shape[0], dtype=np.float64)
    if vs.shape[0] > 1:
        with np.errstate(invalid="ignore"):
            drops[1:] = np.where(vs[1:] < vs[:-1], vs[:-1], 0.0)
    prefix = np.cumsum(drops)
    inner = f2 <= l2
    f2c = np.clip(f2, 0, max(vs.shape[0] - 1, 0))
    l2c = np.clip(l2, 0, max(vs.shape[0] - 1, 0))
    with np.errstate(invalid="ignore"):
        head = np.where(vs[f2c] < left, left, 0.0)
        tail = np.where(right < vs[l2c], vs[l2c], 0.0)
        empty = np.where(right < left, left, 0.0)
    return np.where(inner, head + (prefix[l2c] - prefix[f2c]) + tail, empty)


def anchored_from(ra: RangeArray, gt_start: np.ndarray) -> tuple[RangeArray, np.ndarray]:
    """Windows starting at the anchor (last sample at or before the start) for changes/resets.

    Returns the adjusted ranges and whether a sample lies strictly after the window start.
    """
    a, b = ra.offsets, ra.offsets + ra.sizes
    found = gt_start < b
    start = np.where(gt_start - 1 >= a, gt_start - 1, a)
    sizes = np.where(found, b - start, 0)
    adjusted = RangeArray(ra.values, ra.timestamps, start, sizes, ra.window_ends, ra.range_ms)
    return adjusted, found


def smoothed_instant(
    offsets: np.ndarray, ts: np.ndarray, vs: np.ndarray, times: np.ndarray, lookback_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """``smoothSeries``: the value at ``t`` interpolated from the samples around it.

    Returns ``(values, present)`` as ``[n_series, n_steps]``.
    """
    n_series, k = offsets.shape[0] - 1, times.shape[0]
    a, n, _ = range_windows(offsets, ts, times + lookback_ms, 2 * lookback_ms)
    b = a + n
    i = np.clip(first_after(offsets, ts, times - 1), a, b)  # first sample with T >= t
    t = np.tile(times, n_series)
    last = max(ts.shape[0] - 1, 0)
    ic, pc = np.clip(i, 0, last), np.clip(i - 1, 0, last)
    exact = (i < b) & (ts[ic] == t)
    between = (i > a) & (i < b) & ~exact
    carry = (i > a) & (i == b)
    values = np.where(
        exact, vs[ic], np.where(carry, vs[pc], _interpolate(ts, vs, pc, ic, t, False))
    )
    present = exact | between | carry
    if ts.shape[0] == 0:
        present = np.zeros_like(present)
    return values.reshape(n_series, k), present.reshape(n_series, k)
