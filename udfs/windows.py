"""The window driver: where each (series, step) window starts and ends in the sample arrays.

This is the core of ``RangeManipulate`` and ``InstantManipulate``. Samples of all series are
concatenated (series-major, time-ordered within a series); ``series_offsets[s]:series_offsets[s+1]``
are series ``s``'s samples. Both window kinds are left-open, right-closed, as in Prometheus 3:
a range window is ``(t - range, t]`` and the instant lookback is ``(t - lookback, t]``
(``promql/engine.go``: ``matrixIterSlice`` and ``vectorSelectorSingle``).

The counts behind every window bound come from one of two whole-array methods, chosen by size:
when a query reads about as many samples as it has (series, step) cells (the common dashboard
shape), each sample is ranked among the few distinct query times (arithmetically on a regular
grid) and a per-series histogram of ranks is accumulated; when samples far outnumber cells, one
``np.searchsorted`` over a composite key ``series * span + (ts - lo)`` answers each cell. Neither
loops per series or per step; a per-series fallback exists only for the (absurd) case where the
composite key would overflow int64.
"""

from __future__ import annotations

import numpy as np

_INT64_MAX = np.iinfo(np.int64).max
# Up to this many samples per (series, query time) cell, ranking samples beats searching cells.
_HISTOGRAM_RATIO = 2
# Timestamps within this bound keep ``t - first`` far from int64 overflow (±146 million years).
_SAFE_TS = 1 << 62


def _series_ids(series_offsets: np.ndarray) -> np.ndarray:
    """The series index of every sample."""
    lengths = np.diff(series_offsets)
    return np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)


def _count_le(
    series_offsets: np.ndarray, timestamps: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """For each series ``s`` and query ``queries[k]``: the global index one past the last sample of
    ``s`` with timestamp ``<= queries[k]``. Shape ``[n_series, n_queries]``.
    """
    n_series = series_offsets.shape[0] - 1
    if n_series == 0:
        return np.zeros((0, queries.shape[0]), dtype=np.int64)
    if timestamps.shape[0] == 0 or queries.shape[0] == 0:
        return np.repeat(series_offsets[:-1, None], queries.shape[0], axis=1).astype(np.int64)
    lo = min(int(timestamps.min()), int(queries.min()))
    hi = max(int(timestamps.max()), int(queries.max()))
    if timestamps.shape[0] <= _HISTOGRAM_RATIO * n_series * queries.shape[0] and (
        lo >= -_SAFE_TS and hi <= _SAFE_TS
    ):
        return _count_le_by_histogram(series_offsets, timestamps, queries)
    span = hi - lo + 1
    if span > 0 and n_series <= _INT64_MAX // span - 1:
        # One sorted composite key for all series: (series, ts) order equals key order.
        keys = _series_ids(series_offsets) * span + (timestamps.astype(np.int64) - lo)
        q = (np.arange(n_series, dtype=np.int64)[:, None] * span) + (queries[None, :] - lo)
        return np.searchsorted(keys, q.ravel(), side="right").reshape(n_series, -1)
    out = np.empty((n_series, queries.shape[0]), dtype=np.int64)
    for s in range(n_series):  # only when the composite key cannot be represented
        a, b = int(series_offsets[s]), int(series_offsets[s + 1])
        out[s] = a + np.searchsorted(timestamps[a:b], queries, side="right")
    return out


def _count_le_by_histogram(
    series_offsets: np.ndarray, timestamps: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """``_count_le`` in O(samples + cells): a sample counts for query ``q`` iff fewer distinct
    query times lie below it than below-or-at ``q``, so a cumulative histogram of each series'
    sample ranks, read at each query's rank, is the count."""
    n_series = series_offsets.shape[0] - 1
    uniq, inverse = np.unique(queries, return_inverse=True)
    m = uniq.shape[0]
    rank = _rank_below(timestamps.astype(np.int64, copy=False), uniq)
    bins = _series_ids(series_offsets) * (m + 1) + rank
    hist = np.bincount(bins, minlength=n_series * (m + 1)).reshape(n_series, m + 1)
    below_or_at = np.cumsum(hist[:, :m], axis=1)
    return series_offsets[:-1, None] + below_or_at[:, inverse.reshape(-1)]


def _rank_below(timestamps: np.ndarray, uniq: np.ndarray) -> np.ndarray:
    """How many of the ascending distinct ``uniq`` are ``< t``, for every timestamp ``t``."""
    m = uniq.shape[0]
    if m > 1:
        step = int(uniq[1] - uniq[0])
        if int(uniq[-1] - uniq[0]) == step * (m - 1) and bool(np.all(np.diff(uniq) == step)):
            # A regular grid: ceil((t - first) / step), clipped, with integer arithmetic only.
            return np.clip(-((uniq[0] - timestamps) // step), 0, m)
    return np.searchsorted(uniq, timestamps, side="left")


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
    both = np.concatenate([eval_times - int(range_ms), eval_times])
    idx = _count_le(series_offsets, timestamps, both)
    starts = idx[:, :n_steps].ravel()
    ends = idx[:, n_steps:].ravel()
    n_series = series_offsets.shape[0] - 1
    return starts, ends - starts, np.tile(eval_times, n_series)


def instant_lookback(
    series_offsets: np.ndarray, timestamps: np.ndarray, eval_times: np.ndarray, lookback_ms: int
) -> tuple[np.ndarray, np.ndarray]:
    """The newest sample in ``(t - lookback, t]`` per (series, step).

    Returns ``(index, present)``, both ``[n_series, n_steps]``: ``index`` is a global sample index
    (meaningless where ``present`` is false). Stale markers are the caller's to mask.
    """
    series_offsets = np.asarray(series_offsets, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    eval_times = np.asarray(eval_times, dtype=np.int64)
    last = _count_le(series_offsets, timestamps, eval_times) - 1
    first_of_series = series_offsets[:-1, None]
    has = last >= first_of_series
    safe = np.where(has, last, 0)
    if timestamps.shape[0] == 0:
        return safe, np.zeros_like(has)
    present = has & (timestamps[safe] > (eval_times[None, :] - int(lookback_ms)))
    return safe, present
