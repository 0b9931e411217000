"""The window driver: where each (series, step) window starts and ends in the sample arrays.

This is the core of ``RangeManipulate`` and ``InstantManipulate``. Samples of all series are
concatenated (series-major, time-ordered within a series); ``series_offsets[s]:series_offsets[s+1]``
are series ``s``'s samples. Both window kinds are left-open, right-closed, as in Prometheus 3:
a range window is ``(t - range, t]`` and the instant lookback is ``(t - lookback, t]``
(``promql/engine.go``: ``matrixIterSlice`` and ``vectorSelectorSingle``).

Every window bound is a count "samples of series ``s`` at or before query time ``q``". One
compiled pass per series walks its samples and the sorted distinct query times together,
galloping (doubling, then bisecting) from the previous bound, so a series costs
O(queries x log(samples per gap)) and never more than one read of its samples: cheap both for
dashboard shapes (about one sample per step) and for sample-heavy windows (``rate(x[1d])``).
No temporaries proportional to the samples are made, and there is no overflow-prone composite
key.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def _advance(ts, i, end, q):
    """The first index in ``[i, end)`` whose timestamp is ``> q`` (``end`` if none), given that
    ``ts[i:end]`` ascends: gallop from ``i``, then bisect."""
    if i >= end or ts[i] > q:
        return i
    lo = i  # invariant: ts[lo] <= q
    step = 1
    hi = lo + 1
    while hi < end and ts[hi] <= q:
        lo = hi
        step *= 2
        hi = lo + step
    if hi > end:
        hi = end
    while hi - lo > 1:  # ts[lo] <= q, and hi == end or ts[hi] > q
        mid = (lo + hi) >> 1
        if ts[mid] <= q:
            lo = mid
        else:
            hi = mid
    return hi


@numba.njit(cache=True, nogil=True)
def _count_le_kernel(series_offsets, timestamps, uniq, out):
    """``out[s, j]``: one past the last sample of series ``s`` at or before ``uniq[j]``
    (``uniq`` ascending)."""
    for s in range(series_offsets.shape[0] - 1):
        i = series_offsets[s]
        end = series_offsets[s + 1]
        for j in range(uniq.shape[0]):
            i = _advance(timestamps, i, end, uniq[j])
            out[s, j] = i


@numba.njit(cache=True, nogil=True)
def _range_kernel(series_offsets, timestamps, uniq, inv_lo, inv_hi, starts, sizes):
    k = inv_lo.shape[0]
    counts = np.empty(uniq.shape[0], dtype=np.int64)
    for s in range(series_offsets.shape[0] - 1):
        i = series_offsets[s]
        end = series_offsets[s + 1]
        for j in range(uniq.shape[0]):
            i = _advance(timestamps, i, end, uniq[j])
            counts[j] = i
        base = s * k
        for j in range(k):
            a = counts[inv_lo[j]]
            starts[base + j] = a
            sizes[base + j] = counts[inv_hi[j]] - a


@numba.njit(cache=True, nogil=True)
def _lookback_kernel(series_offsets, timestamps, uniq, inv, eval_times, lookback, index, present):
    k = inv.shape[0]
    counts = np.empty(uniq.shape[0], dtype=np.int64)
    for s in range(series_offsets.shape[0] - 1):
        first = series_offsets[s]
        i = first
        end = series_offsets[s + 1]
        for j in range(uniq.shape[0]):
            i = _advance(timestamps, i, end, uniq[j])
            counts[j] = i
        for j in range(k):
            last = counts[inv[j]] - 1
            if last >= first:
                index[s, j] = last
                present[s, j] = timestamps[last] > eval_times[j] - lookback
            else:
                index[s, j] = 0
                present[s, j] = False


def _distinct(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending distinct query times and each query's position among them."""
    if queries.shape[0] and bool(np.all(queries[1:] > queries[:-1])):
        return queries, np.arange(queries.shape[0], dtype=np.int64)  # a grid: already so
    uniq, inverse = np.unique(queries, return_inverse=True)
    return uniq, inverse.reshape(-1).astype(np.int64)


def _count_le(
    series_offsets: np.ndarray, timestamps: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """For each series ``s`` and query ``queries[k]``: the global index one past the last sample of
    ``s`` with timestamp ``<= queries[k]``. Shape ``[n_series, n_queries]``.
    """
    n_series = series_offsets.shape[0] - 1
    queries = np.asarray(queries, dtype=np.int64)
    uniq, inverse = _distinct(queries)
    out = np.empty((max(n_series, 0), uniq.shape[0]), dtype=np.int64)
    _count_le_kernel(
        np.asarray(series_offsets, dtype=np.int64),
        np.asarray(timestamps, dtype=np.int64),
        uniq,
        out,
    )
    return out if uniq is queries else out[:, inverse]


def _ascending(times: np.ndarray) -> bool:
    return times.shape[0] < 2 or bool(np.all(times[1:] > times[:-1]))


def range_windows(
    series_offsets: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray, range_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows ``(t - range, t]`` for every (series, step), series-major.

    Returns ``(offsets, sizes, window_ends)``, each of length ``n_series * n_steps``; window
    ``s * n_steps + k`` is series ``s`` at ``eval_times[k]``. Ready for ``RangeArray``.
    """
    series_offsets = np.asarray(series_offsets, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    eval_times = np.asarray(eval_times, dtype=np.int64)
    n_steps = eval_times.shape[0]
    n_series = series_offsets.shape[0] - 1
    bounds = np.concatenate([eval_times - int(range_ms), eval_times])
    if n_steps and bounds[n_steps - 1] < bounds[n_steps] and _ascending(eval_times):
        # Every window starts before the first ends (one step, or a range wider than the
        # steps span): the bounds are already sorted and distinct.
        uniq, inverse = bounds, np.arange(2 * n_steps, dtype=np.int64)
    else:
        uniq, inverse = np.unique(bounds, return_inverse=True)
        inverse = inverse.reshape(-1).astype(np.int64)
    starts = np.empty(n_series * n_steps, dtype=np.int64)
    sizes = np.empty(n_series * n_steps, dtype=np.int64)
    _range_kernel(
        series_offsets, timestamps, uniq, inverse[:n_steps], inverse[n_steps:], starts, sizes
    )
    return starts, sizes, np.tile(eval_times, n_series)


def instant_lookback(
    series_offsets: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray, lookback_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """The newest sample in ``(t - lookback, t]`` per (series, step).

    Returns ``(index, present)``, both ``[n_series, n_steps]``: ``index`` is a global sample index
    (0 where ``present`` is false). Stale markers are the caller's to mask.
    """
    series_offsets = np.asarray(series_offsets, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    eval_times = np.asarray(eval_times, dtype=np.int64)
    n_series, k = series_offsets.shape[0] - 1, eval_times.shape[0]
    uniq, inverse = _distinct(eval_times)
    index = np.empty((n_series, k), dtype=np.int64)
    present = np.empty((n_series, k), dtype=np.bool_)
    _lookback_kernel(
        series_offsets, timestamps, uniq, inverse, eval_times, int(lookback_ms), index, present
    )
    return index, present


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache)."""
    offsets, ts = np.array([0, 2], dtype=np.int64), np.array([1, 5], dtype=np.int64)
    range_windows(offsets, ts, np.array([4, 6], dtype=np.int64), 3)
    instant_lookback(offsets, ts, np.array([4, 6], dtype=np.int64), 3)
    _count_le(offsets, ts, np.array([6, 4], dtype=np.int64))
