"""The ``*_over_time`` family and ``double_exponential_smoothing`` over a ``RangeArray``.

Semantics follow Prometheus ``promql/functions.go`` (main branch, 2026): ``funcAvgOverTime``
(Kahan sum, switching to an incremental mean on overflow), ``funcSumOverTime`` (Kahan),
``compareOverTime`` (NaN is replaced by any later value, ties keep the latest timestamp for
``ts_of_*``), ``varianceOverTime`` (Welford with Kahan-compensated mean and M2, population),
``funcQuantileOverTime`` / ``funcMadOverTime`` (``quantile`` in ``quantile.go``: NaN sorts as
the smallest value, linear interpolation between ranks; heavily overlapping windows take their
two order statistics from a wavelet matrix, ``udfs/range_kth.py``, instead of sorting each
window), ``funcDoubleExponentialSmoothing``.
Sequential folds run through ``ColumnScan`` so rounding matches upstream exactly.
"""

from __future__ import annotations

import numpy as np

from promql.errors import ExecutionError
from udfs.quantile import go_sort_rows, quantile_combine, quantile_ranks, quantile_rows
from udfs.range_array import RangeArray
from udfs.range_kth import kth_smallest, worth_it
from udfs.scan import (
    ColumnScan,
    by_window_chunks,
    integer_exact_windows,
    kahan_inc,
    window_reduce,
)

Result = tuple[np.ndarray, np.ndarray]

_MAX_GATHER = 1 << 22  # elements per padded chunk in the sorting kernels
_MIN_WAVELET_TOTAL = 1 << 16  # below this many window samples sorting is always cheap enough


def _nonempty(ra: RangeArray) -> np.ndarray:
    return ra.sizes >= 1


def _last_index(ra: RangeArray) -> np.ndarray:
    return np.maximum(ra.offsets + ra.sizes - 1, 0)


def count_over_time(ra: RangeArray) -> Result:
    present = _nonempty(ra)
    return np.where(present, ra.sizes.astype(np.float64), np.nan), present


def present_over_time(ra: RangeArray) -> Result:
    present = _nonempty(ra)
    return np.where(present, 1.0, np.nan), present


def absent_over_time(ra: RangeArray) -> Result:
    """Upstream's kernel: 1 where the window has samples; the planner turns this into absence."""
    return present_over_time(ra)


def _pick(ra: RangeArray, index: np.ndarray, what: np.ndarray) -> Result:
    present = _nonempty(ra)
    if what.shape[0] == 0:
        return np.full(ra.n_windows, np.nan), present
    return np.where(present, what[np.minimum(index, what.shape[0] - 1)], np.nan), present


def first_over_time(ra: RangeArray) -> Result:
    return _pick(ra, ra.offsets, ra.values)


def last_over_time(ra: RangeArray) -> Result:
    return _pick(ra, _last_index(ra), ra.values)


def ts_of_first_over_time(ra: RangeArray) -> Result:
    return _pick(ra, ra.offsets, ra.timestamps.astype(np.float64) / 1000)


def ts_of_last_over_time(ra: RangeArray) -> Result:
    return _pick(ra, _last_index(ra), ra.timestamps.astype(np.float64) / 1000)


def max_over_time(ra: RangeArray) -> Result:
    # fmax ignores NaN unless the whole window is NaN, exactly upstream's "replace NaN" rule.
    present = _nonempty(ra)
    return np.where(present, window_reduce(np.fmax, ra.values, ra), np.nan), present


def min_over_time(ra: RangeArray) -> Result:
    present = _nonempty(ra)
    return np.where(present, window_reduce(np.fmin, ra.values, ra), np.nan), present


def _ts_of_extreme(ra: RangeArray, better_or_equal: np.ufunc) -> Result:
    """Timestamp of the newest sample that ties the window's extreme (``compareOverTime``)."""
    scan = ColumnScan.of(ra)
    m = scan.order.shape[0]
    best = np.full(m, np.nan)
    best_t = np.zeros(m, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for _, k, idx in scan.columns():
            v = ra.values[idx]
            take = better_or_equal(v, best[:k]) | np.isnan(best[:k])
            best[:k] = np.where(take, v, best[:k])
            best_t[:k] = np.where(take, ra.timestamps[idx], best_t[:k])
    out = scan.scatter(ra.n_windows, best_t.astype(np.float64) / 1000)
    return out, _nonempty(ra)


@by_window_chunks
def ts_of_max_over_time(ra: RangeArray) -> Result:
    return _ts_of_extreme(ra, np.greater_equal)


@by_window_chunks
def ts_of_min_over_time(ra: RangeArray) -> Result:
    return _ts_of_extreme(ra, np.less_equal)


def _subset(ra: RangeArray, ids: np.ndarray) -> RangeArray:
    return RangeArray(
        ra.values, ra.timestamps, ra.offsets[ids], ra.sizes[ids], ra.window_ends[ids], ra.range_ms
    )


@by_window_chunks
def _kahan_sum(ra: RangeArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``kahansum.Inc`` over every (non-empty) window: ``(sum, compensation, overflowed)``."""
    scan = ColumnScan.of(ra)
    m = scan.order.shape[0]
    s, c = np.zeros(m), np.zeros(m)
    overflowed = np.zeros(m, dtype=bool)
    for _, k, idx in scan.columns():
        s[:k], c[:k] = kahan_inc(ra.values[idx], s[:k], c[:k])
        overflowed[:k] |= np.isinf(s[:k])
    ids = scan.order
    out_s, out_c = np.zeros(ra.n_windows), np.zeros(ra.n_windows)
    out_o = np.zeros(ra.n_windows, dtype=bool)
    out_s[ids], out_c[ids], out_o[ids] = s, c, overflowed
    return out_s, out_c, out_o


@by_window_chunks
def _kahan_mean(ra: RangeArray) -> Result:
    """``funcAvgOverTime``'s fold: Kahan sum, incremental mean once the sum overflows."""
    scan = ColumnScan.of(ra)
    m = scan.order.shape[0]
    total, comp, mean = np.zeros(m), np.zeros(m), np.zeros(m)
    incremental = np.zeros(m, dtype=bool)
    count = np.ones(m)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for j, k, idx in scan.columns():
            x = ra.values[idx]
            if j == 0:
                total[:k] = x
                continue
            cnt = float(j + 1)
            count[:k] = cnt
            s, c, mu, inc = total[:k], comp[:k], mean[:k], incremental[:k]
            new_s, new_c = kahan_inc(x, s, c)
            ok = ~inc & ~np.isinf(new_s)
            switch = ~inc & np.isinf(new_s)
            s[:] = np.where(ok, new_s, s)
            c[:] = np.where(ok, new_c, c)
            mu[:] = np.where(switch, s / (cnt - 1), mu)
            c[:] = np.where(switch, c / (cnt - 1), c)
            inc |= switch
            q = (cnt - 1) / cnt
            m2, c2 = kahan_inc(x / cnt, q * mu, q * c)
            mu[:] = np.where(inc, m2, mu)
            c[:] = np.where(inc, c2, c)
        out = np.where(incremental, mean + comp, total / count + comp / count)
    return scan.scatter(ra.n_windows, out), ra.sizes >= 1


def _sum_or_mean(ra: RangeArray, mean: bool) -> Result:
    present = _nonempty(ra)
    exact, sums = integer_exact_windows(ra)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Exact sums: Kahan's compensation is 0, so upstream's result is the plain sum (mean).
        out = np.where(exact, sums / ra.sizes if mean else sums, np.nan)
    rest = np.flatnonzero(present & ~exact)
    if rest.shape[0] == 0:
        return np.where(present, out, np.nan), present
    s, c, overflowed = _kahan_sum(_subset(ra, rest))
    with np.errstate(invalid="ignore", divide="ignore"):
        if not mean:
            out[rest] = np.where(np.isinf(s), s, s + c)
        else:
            # Without overflow upstream's mean is sum/count + c/count; windows whose running
            # sum overflowed take upstream's incremental-mean path exactly.
            n = ra.sizes[rest].astype(np.float64)
            out[rest] = s / n + c / n
            redo = rest[overflowed]
            if redo.shape[0]:
                out[redo] = _kahan_mean(_subset(ra, redo))[0]
    return np.where(present, out, np.nan), present


def sum_over_time(ra: RangeArray) -> Result:
    return _sum_or_mean(ra, mean=False)


def avg_over_time(ra: RangeArray) -> Result:
    return _sum_or_mean(ra, mean=True)


@by_window_chunks
def _variance(ra: RangeArray) -> tuple[np.ndarray, np.ndarray]:
    scan = ColumnScan.of(ra)
    m = scan.order.shape[0]
    mean, c_mean, aux, c_aux = np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    count = np.zeros(m)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for _, k, idx in scan.columns():
            x = ra.values[idx]
            count[:k] += 1
            d = x - (mean[:k] + c_mean[:k])
            mean[:k], c_mean[:k] = kahan_inc(d / count[:k], mean[:k], c_mean[:k])
            aux[:k], c_aux[:k] = kahan_inc(d * (x - (mean[:k] + c_mean[:k])), aux[:k], c_aux[:k])
        var = (aux + c_aux) / count
    return scan.scatter(ra.n_windows, var), _nonempty(ra)


def stdvar_over_time(ra: RangeArray) -> Result:
    return _variance(ra)


def stddev_over_time(ra: RangeArray) -> Result:
    var, present = _variance(ra)
    with np.errstate(invalid="ignore"):
        return np.sqrt(var), present


def _sorted_windows(ra: RangeArray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``ids`` gathered into a padded matrix, each row sorted as upstream sorts."""
    sizes = ra.sizes[ids]
    width = int(sizes.max())
    col = np.arange(width)
    valid = col[None, :] < sizes[:, None]
    gather = np.where(valid, ra.offsets[ids][:, None] + col[None, :], 0)
    mat = np.where(valid, ra.values[gather], np.nan)
    return go_sort_rows(mat, sizes), sizes


def _chunks(ra: RangeArray) -> list[np.ndarray]:
    ids = np.flatnonzero(ra.sizes >= 1)
    if ids.shape[0] == 0:
        return []
    width = int(ra.sizes[ids].max())
    per = max(1, _MAX_GATHER // max(width, 1))
    return [ids[i : i + per] for i in range(0, ids.shape[0], per)]


def quantile_over_time(ra: RangeArray, phi: np.ndarray, path: str | None = None) -> Result:
    """``funcQuantileOverTime``; ``path`` forces ``"sort"`` or ``"wavelet"`` (tests, benches).

    Both paths pick the same two order statistics per window (Go order, ties in sample order)
    and interpolate them with the same arithmetic, so they agree bit for bit. The wavelet path
    (``udfs/range_kth.py``) wins when windows overlap heavily: a short step over a long range.
    """
    q = np.broadcast_to(np.asarray(phi, dtype=np.float64), (ra.n_windows,))
    out = np.full(ra.n_windows, np.nan)
    if path is None:
        path = "wavelet" if _overlap_pays(ra) else "sort"
    if path == "wavelet":
        ids = np.flatnonzero(ra.sizes >= 1)
        out[ids] = _quantile_by_rank(ra, ids, q[ids])
        return out, _nonempty(ra)
    if path != "sort":
        raise ValueError(f"unknown quantile_over_time path {path!r}")
    for ids in _chunks(ra):
        mat, sizes = _sorted_windows(ra, ids)
        out[ids] = quantile_rows(q[ids], mat, sizes)
    return out, _nonempty(ra)


def _overlap_pays(ra: RangeArray) -> bool:
    """The cost model of ``range_kth.worth_it``, after a cheap check for small inputs."""
    if int(ra.sizes.sum()) < _MIN_WAVELET_TOTAL:
        return False
    ids = np.flatnonzero(ra.sizes >= 1)
    return worth_it(ra.offsets[ids], ra.offsets[ids] + ra.sizes[ids])


def _quantile_by_rank(ra: RangeArray, ids: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``quantile`` of windows ``ids`` from their k-th smallest values (no window is sorted)."""
    sizes = ra.sizes[ids]
    lower, upper, weight = quantile_ranks(q, sizes)
    ask = np.flatnonzero(~np.isnan(q) & (q >= 0) & (q <= 1))  # the others need no values
    lo_v = np.zeros(ids.shape[0])
    up_v = np.zeros(ids.shape[0])
    if ask.shape[0]:
        start = ra.offsets[ids[ask]]
        lo_v[ask], up_v[ask] = kth_smallest(
            ra.values, start, start + sizes[ask], [lower[ask], upper[ask]]
        )
    return quantile_combine(q, lo_v, up_v, weight, sizes)


def mad_over_time(ra: RangeArray) -> Result:
    """``funcMadOverTime``: always sorts each window. Its second quantile is over deviations
    from *that window's* median, a different value set per window, so one index over the
    samples cannot order them (only the median could come from ``range_kth``; not worth it).
    """
    out = np.full(ra.n_windows, np.nan)
    for ids in _chunks(ra):
        mat, sizes = _sorted_windows(ra, ids)
        half = np.full(ids.shape[0], 0.5)
        median = quantile_rows(half, mat, sizes)
        valid = np.arange(mat.shape[1])[None, :] < sizes[:, None]
        with np.errstate(invalid="ignore"):
            dev = np.where(valid, np.abs(mat - median[:, None]), np.nan)
        mad = quantile_rows(half, go_sort_rows(dev, sizes), sizes)
        has_nan = np.isnan(np.where(valid, mat, 0.0)).any(axis=1)
        out[ids] = np.where(has_nan, np.nan, mad)
    return out, _nonempty(ra)


@by_window_chunks
def double_exponential_smoothing(ra: RangeArray, sf: np.ndarray, tf: np.ndarray) -> Result:
    sfa = np.broadcast_to(np.asarray(sf, dtype=np.float64), (ra.n_windows,))
    tfa = np.broadcast_to(np.asarray(tf, dtype=np.float64), (ra.n_windows,))
    used = ra.sizes >= 1  # upstream validates only when a series is evaluated
    _check_factor(sfa[used], "smoothing factor", "sf")
    _check_factor(tfa[used], "trend factor", "tf")
    scan = ColumnScan.of(ra, min_size=2)
    m = scan.order.shape[0]
    sfo, tfo = sfa[scan.order], tfa[scan.order]
    s0, s1, b = np.zeros(m), np.zeros(m), np.zeros(m)
    if m:
        s1 = ra.values[scan.starts].copy()
        b = ra.values[scan.starts + 1] - s1
    with np.errstate(invalid="ignore", over="ignore"):
        for j, k, idx in scan.columns(first=1):
            x = sfo[:k] * ra.values[idx]
            if j > 1:  # calcTrendValue(i-1, ...) returns b unchanged for i-1 == 0
                b[:k] = tfo[:k] * (s1[:k] - s0[:k]) + (1 - tfo[:k]) * b[:k]
            y = (1 - sfo[:k]) * (s1[:k] + b[:k])
            s0[:k], s1[:k] = s1[:k], x + y
    return scan.scatter(ra.n_windows, s1), ra.sizes >= 2


def _check_factor(f: np.ndarray, what: str, short: str) -> None:
    bad = (f <= 0) | (f >= 1) | np.isnan(f)
    if bad.any():
        val = float(f[np.flatnonzero(bad)[0]])
        raise ExecutionError(f"invalid {what}. Expected: 0 < {short} < 1, got: {val:f}")
