"""PromQL range-vector functions over a ``RangeArray``: one small kernel per function.

Every kernel has the shape ``fn(ra, *params) -> (values, present)`` with one entry per window;
``params`` are per-window float64 arrays (already broadcast by the planner). ``present`` false
means Prometheus emits no sample for that (series, step).

Windows are ``(t - range, t]`` where ``t = ra.window_ends`` is the *range end in the samples'
time frame* (Prometheus' ``rangeEnd = enh.Ts - offset``). Kernels that need the evaluation time
itself (``predict_linear``'s intercept) take it as the keyword ``eval_times``; it defaults to
``window_ends`` (right when there is no offset / ``@``).

Semantics follow Prometheus ``promql/functions.go`` (main branch, 2026): ``extrapolatedRate``,
``instantValue``, ``linearRegression``, ``funcChanges``, ``funcResets``. The ``*_over_time``
family lives in ``udfs.over_time`` and is re-exported here so the registry can name
``udfs.range_functions:<name>`` for every range function.
"""

from __future__ import annotations

import numba
import numpy as np

from udfs.extrapolation import extrapolate_into, go_seconds
from udfs.over_time import (
    absent_over_time,
    avg_over_time,
    count_over_time,
    double_exponential_smoothing,
    first_over_time,
    last_over_time,
    mad_over_time,
    max_over_time,
    min_over_time,
    present_over_time,
    quantile_over_time,
    stddev_over_time,
    stdvar_over_time,
    sum_over_time,
    ts_of_first_over_time,
    ts_of_last_over_time,
    ts_of_max_over_time,
    ts_of_min_over_time,
)
from udfs.range_array import RangeArray
from udfs.scan import ColumnScan, by_window_chunks, kahan_inc

__all__ = [
    "absent_over_time",
    "avg_over_time",
    "changes",
    "count_over_time",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "first_over_time",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rate",
    "resets",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
]

Result = tuple[np.ndarray, np.ndarray]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _rates(values, timestamps, offsets, sizes, ends, range_ms, counter, scale, out):
    """``extrapolatedRate`` per window in one pass: last − first value (plus, for counters,
    the value before every reset, added in time order as upstream does), extrapolated to the
    window ``(end − range, end]``; NaN below two samples."""
    w = offsets.shape[0]
    result = np.zeros(w)
    first_v = np.zeros(w)
    first_t = np.zeros(w, dtype=np.int64)
    last_t = np.zeros(w, dtype=np.int64)
    for i in range(w):
        n = sizes[i]
        if n == 0:
            continue
        a = offsets[i]
        b = a + n - 1
        r = values[b] - values[a]
        if counter:
            for j in range(a + 1, b + 1):
                if values[j] < values[j - 1]:
                    r += values[j - 1]
        result[i] = r
        first_v[i] = values[a]
        first_t[i] = timestamps[a]
        last_t[i] = timestamps[b]
    extrapolate_into(
        result, first_v, first_t, last_t, sizes, ends - range_ms, ends, counter, scale, 1, out
    )


def _window_counts(flags: np.ndarray, ra: RangeArray) -> np.ndarray:
    """Per window, how many samples after its first one are flagged.

    One cumulative count straight from the booleans, in int32 when it cannot overflow: over
    millions of samples this is a quarter of the memory traffic of an int64 prefix sum.
    """
    dtype = np.int32 if flags.shape[0] < 2**31 - 1 else np.int64
    csum = np.empty(flags.shape[0] + 1, dtype=dtype)
    csum[0] = 0
    np.cumsum(flags, dtype=dtype, out=csum[1:])
    end = ra.offsets + ra.sizes
    return csum[end] - csum[np.minimum(ra.offsets + 1, end)]


def _extrapolated_rate(ra: RangeArray, is_counter: bool, is_rate: bool) -> Result:
    """``extrapolatedRate`` for float samples (no start timestamps, not anchored/smoothed)."""
    present = ra.sizes >= 2
    out = np.empty(ra.n_windows)
    if ra.values.shape[0] == 0:
        out.fill(np.nan)
        return out, present
    _rates(
        np.ascontiguousarray(ra.values, dtype=np.float64),
        np.ascontiguousarray(ra.timestamps, dtype=np.int64),
        np.ascontiguousarray(ra.offsets, dtype=np.int64),
        np.ascontiguousarray(ra.sizes, dtype=np.int64),
        np.ascontiguousarray(ra.window_ends, dtype=np.int64),
        ra.range_ms, is_counter, go_seconds(ra.range_ms) if is_rate else 1.0, out,
    )  # fmt: skip
    return out, present


def rate(ra: RangeArray) -> Result:
    return _extrapolated_rate(ra, is_counter=True, is_rate=True)


def increase(ra: RangeArray) -> Result:
    return _extrapolated_rate(ra, is_counter=True, is_rate=False)


def delta(ra: RangeArray) -> Result:
    return _extrapolated_rate(ra, is_counter=False, is_rate=False)


def _instant_value(ra: RangeArray, is_rate: bool) -> Result:
    """``instantValue``: the last two samples of the window."""
    last = ra.offsets + ra.sizes - 1
    has_two = ra.sizes >= 2
    cur = np.where(has_two, last, 0)
    prev = np.where(has_two, last - 1, 0)
    if ra.values.shape[0] == 0:
        return np.full(ra.n_windows, np.nan), np.zeros(ra.n_windows, dtype=bool)
    v1, v0 = ra.values[cur], ra.values[prev]
    dt = ra.timestamps[cur] - ra.timestamps[prev]
    present = has_two & (dt != 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if is_rate:
            # A counter reset leaves the result at the newest value (not a negative delta).
            out = np.where(v1 < v0, v1, v1 - v0)
            out = out / (dt.astype(np.float64) / 1000)
        else:
            out = v1 - v0
    return np.where(present, out, np.nan), present


def irate(ra: RangeArray) -> Result:
    return _instant_value(ra, is_rate=True)


def idelta(ra: RangeArray) -> Result:
    return _instant_value(ra, is_rate=False)


def _linear_regression(
    ra: RangeArray, intercept_times: np.ndarray | None
) -> tuple[np.ndarray, ...]:
    """``linearRegression`` per window with >= 2 samples: (slope, intercept, scan).

    ``intercept_times`` None means each window's first sample time (what ``deriv`` passes).
    """
    scan = ColumnScan.of(ra, min_size=2)
    m = scan.order.shape[0]
    t0 = ra.timestamps[scan.starts] if intercept_times is None else intercept_times[scan.order]
    init_y = ra.values[scan.starts] if m else np.zeros(0)
    const_y = np.ones(m, dtype=bool)
    sums = {k: (np.zeros(m), np.zeros(m)) for k in ("x", "y", "xy", "x2")}
    n = np.zeros(m)
    # x (seconds from the intercept) is always small; y-terms only overflow with huge values.
    lo = int(scan.starts.min()) if m else 0
    hi = int((scan.starts + scan.sizes).max()) if m else 0
    with np.errstate(invalid="ignore"):
        tame_y = bool(np.all(np.abs(ra.values[lo:hi]) < 1e100))
    may = {"x": False, "x2": False, "y": not tame_y, "xy": not tame_y}
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for j, k, idx in scan.columns():
            y = ra.values[idx]
            x = (ra.timestamps[idx] - t0[:k]).astype(np.float64) / 1e3
            if j > 0:
                const_y[:k] &= y == init_y[:k]
            n[:k] += 1.0
            for key, inc in (("x", x), ("y", y), ("xy", x * y), ("x2", x * x)):
                s, c = sums[key]
                s[:k], c[:k] = kahan_inc(inc, s[:k], c[:k], may[key])
        sx, sy, sxy, sx2 = (sums[k][0] + sums[k][1] for k in ("x", "y", "xy", "x2"))
        cov_xy = sxy - sx * sy / n
        var_x = sx2 - sx * sx / n
        slope = cov_xy / var_x
        intercept = sy / n - slope * sx / n
        inf_y = np.isinf(init_y)
        slope = np.where(const_y, np.where(inf_y, np.nan, 0.0), slope)
        intercept = np.where(const_y, np.where(inf_y, np.nan, init_y), intercept)
    return slope, intercept, scan


@by_window_chunks
def deriv(ra: RangeArray) -> Result:
    # Upstream passes the first sample's timestamp as intercept time to keep x small.
    slope, _, scan = _linear_regression(ra, None)
    return scan.scatter(ra.n_windows, slope), ra.sizes >= 2


@by_window_chunks
def predict_linear(
    ra: RangeArray, duration: np.ndarray, *, eval_times: np.ndarray | None = None
) -> Result:
    """``slope * duration + intercept`` with the intercept at the evaluation time."""
    at = ra.window_ends if eval_times is None else np.asarray(eval_times, dtype=np.int64)
    slope, intercept, scan = _linear_regression(ra, at)
    d = np.broadcast_to(np.asarray(duration, dtype=np.float64), (ra.n_windows,))[scan.order]
    with np.errstate(invalid="ignore", over="ignore"):
        out = slope * d + intercept
    return scan.scatter(ra.n_windows, out), ra.sizes >= 2


def _pair_count(ra: RangeArray, flags: np.ndarray) -> Result:
    """Count of adjacent pairs ``(i-1, i)`` inside each window where ``flags[i-1]`` holds."""
    per_sample = np.zeros(ra.values.shape[0], dtype=bool)
    per_sample[1:] = flags
    counts = _window_counts(per_sample, ra)
    present = ra.sizes >= 1
    return np.where(present, counts.astype(np.float64), np.nan), present


def changes(ra: RangeArray) -> Result:
    v = ra.values
    with np.errstate(invalid="ignore"):
        flags = (v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1]))
    return _pair_count(ra, flags)


def resets(ra: RangeArray) -> Result:
    v = ra.values
    with np.errstate(invalid="ignore"):
        flags = v[1:] < v[:-1]
    return _pair_count(ra, flags)


def warm_up() -> None:
    """Compile the window-delta kernel (or load it from numba's cache) before the first query."""
    ts = np.array([0, 10_000], dtype=np.int64)
    ra = RangeArray(np.array([2.0, 1.0]), ts, np.zeros(1, np.int64), np.full(1, 2), ts[1:], 20_000)
    rate(ra)
