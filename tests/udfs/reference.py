"""Slow, obviously-correct reference versions of the kernels (tests only).

Each is a direct, loop-per-window transcription of Prometheus ``promql/functions.go``,
``quantile.go`` and ``engine.go`` (main, 2026) on plain Python floats. Property tests check the
vectorized kernels agree with these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Point = tuple[int, float]  # (timestamp ms, value)
Window = list[Point]


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def brute_windows(series: list[list[Point]], eval_times: list[int], range_ms: int) -> list[Window]:
    """Series-major windows ``(t - range, t]`` by filtering every sample."""
    return [[p for p in s if t - range_ms < p[0] <= t] for s in series for t in eval_times]


def brute_lookback(s: list[Point], t: int, lookback: int) -> int | None:
    """Position in ``s`` of the newest sample in ``(t - lookback, t]``."""
    best = None
    for i, (ts, _) in enumerate(s):
        if t - lookback < ts <= t:
            best = i
    return best


def _range_seconds(range_ms: int) -> float:
    return float(range_ms // 1000) + float((range_ms % 1000) * 1_000_000) / 1e9


def extrapolated_rate(
    w: Window, t: int, range_ms: int, is_counter: bool, is_rate: bool
) -> float | None:
    if len(w) < 2:
        return None
    range_start, range_end = t - range_ms, t
    result = w[-1][1] - w[0][1]
    if is_counter:
        for i in range(1, len(w)):
            if w[i][1] < w[i - 1][1]:
                result += w[i - 1][1]
    first_t, last_t = w[0][0], w[-1][0]
    to_start = float(first_t - range_start) / 1000
    to_end = float(range_end - last_t) / 1000
    sampled = float(last_t - first_t) / 1000
    avg = sampled / float(len(w) - 1)
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if is_counter:
        to_zero = to_start
        if result > 0 and w[0][1] >= 0:
            to_zero = sampled * (w[0][1] / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = 1.0
    if sampled != 0:
        factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= _range_seconds(range_ms)
    return result * factor


def instant_value(w: Window, is_rate: bool) -> float | None:
    if len(w) < 2:
        return None
    (t0, v0), (t1, v1) = w[-2], w[-1]
    dt = t1 - t0
    if dt == 0:
        return None
    res = v1
    if not is_rate or not v1 < v0:
        res = v1 - v0
    if is_rate:
        res /= float(dt) / 1000
    return res


def linear_regression(w: Window, intercept_time: int) -> tuple[float, float]:
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    init_y = w[0][1]
    const_y = True
    for i, (ts, v) in enumerate(w):
        if const_y and i > 0 and v != init_y:
            const_y = False
        n += 1.0
        x = float(ts - intercept_time) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const_y:
        if math.isinf(init_y):
            return math.nan, math.nan
        return 0.0, init_y
    sx += cx
    sy += cy
    sxy += cxy
    sx2 += cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = _div(cov, var)
    return slope, sy / n - slope * sx / n


def _div(a: float, b: float) -> float:
    """Go float division (no exceptions)."""
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def deriv(w: Window) -> float | None:
    return None if len(w) < 2 else linear_regression(w, w[0][0])[0]


def predict_linear(w: Window, t: int, duration: float) -> float | None:
    if len(w) < 2:
        return None
    slope, intercept = linear_regression(w, t)
    return slope * duration + intercept


def changes(w: Window) -> float | None:
    if not w:
        return None
    c = 0
    for i in range(1, len(w)):
        a, b = w[i - 1][1], w[i][1]
        if b != a and not (math.isnan(a) and math.isnan(b)):
            c += 1
    return float(c)


def resets(w: Window) -> float | None:
    if not w:
        return None
    return float(sum(1 for i in range(1, len(w)) if w[i][1] < w[i - 1][1]))


def sum_over_time(w: Window) -> float | None:
    if not w:
        return None
    s = c = 0.0
    for _, v in w:
        s, c = kahan_inc(v, s, c)
    return s if math.isinf(s) else s + c


def avg_over_time(w: Window) -> float | None:
    if not w:
        return None
    total, count = w[0][1], 1.0
    mean = c = 0.0
    incremental = False
    for i, (_, v) in enumerate(w[1:]):
        count = float(i + 2)
        if not incremental:
            ns, nc = kahan_inc(v, total, c)
            if not math.isinf(ns):
                total, c = ns, nc
                continue
            incremental = True
            mean = total / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = kahan_inc(v / count, q * mean, q * c)
    if incremental:
        return mean + c
    return total / count + c / count


def _compare(w: Window, better: Callable[[float, float], bool], want_ts: bool) -> float | None:
    if not w:
        return None
    best, best_t = w[0][1], w[0][0]
    for ts, v in w:
        if better(v, best) or math.isnan(best):
            best, best_t = v, ts
    return best_t / 1000 if want_ts else best


def max_over_time(w: Window) -> float | None:
    return _compare(w, lambda a, b: a > b, False)


def min_over_time(w: Window) -> float | None:
    return _compare(w, lambda a, b: a < b, False)


def ts_of_max_over_time(w: Window) -> float | None:
    return _compare(w, lambda a, b: a >= b, True)


def ts_of_min_over_time(w: Window) -> float | None:
    return _compare(w, lambda a, b: a <= b, True)


def _variance(w: Window) -> float | None:
    if not w:
        return None
    count = mean = cm = aux = ca = 0.0
    for _, v in w:
        count += 1
        d = v - (mean + cm)
        mean, cm = kahan_inc(d / count, mean, cm)
        aux, ca = kahan_inc(d * (v - (mean + cm)), aux, ca)
    return (aux + ca) / count


def stdvar_over_time(w: Window) -> float | None:
    return _variance(w)


def stddev_over_time(w: Window) -> float | None:
    v = _variance(w)
    return None if v is None else (math.sqrt(v) if not v < 0 else math.nan)


def go_sorted(values: list[float]) -> list[float]:
    """Go ``sort.Sort(vectorByValueHeap)`` order: NaN first, then ascending."""
    return [v for v in values if math.isnan(v)] + sorted(v for v in values if not math.isnan(v))


def quantile(q: float, values: list[float]) -> float:
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    vs = go_sorted(values)
    n = float(len(vs))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return vs[int(lower)] * (1 - weight) + vs[int(upper)] * weight


def quantile_over_time(w: Window, q: float) -> float | None:
    return None if not w else quantile(q, [v for _, v in w])


def mad_over_time(w: Window) -> float | None:
    if not w:
        return None
    vals = [v for _, v in w]
    if any(math.isnan(v) for v in vals):
        return math.nan
    med = quantile(0.5, vals)
    return quantile(0.5, [abs(v - med) for v in vals])


def double_exponential_smoothing(w: Window, sf: float, tf: float) -> float | None:
    if len(w) < 2:
        return None
    s0, s1 = 0.0, w[0][1]
    b = w[1][1] - w[0][1]
    for i in range(1, len(w)):
        x = sf * w[i][1]
        if i - 1 != 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return s1


SIMPLE: dict[str, Callable[[Window], float | None]] = {
    "count_over_time": lambda w: float(len(w)) if w else None,
    "present_over_time": lambda w: 1.0 if w else None,
    "first_over_time": lambda w: w[0][1] if w else None,
    "last_over_time": lambda w: w[-1][1] if w else None,
    "ts_of_first_over_time": lambda w: w[0][0] / 1000 if w else None,
    "ts_of_last_over_time": lambda w: w[-1][0] / 1000 if w else None,
    "max_over_time": max_over_time,
    "min_over_time": min_over_time,
    "ts_of_max_over_time": ts_of_max_over_time,
    "ts_of_min_over_time": ts_of_min_over_time,
    "sum_over_time": sum_over_time,
    "avg_over_time": avg_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "mad_over_time": mad_over_time,
    "changes": changes,
    "resets": resets,
    "deriv": deriv,
    "irate": lambda w: instant_value(w, True),
    "idelta": lambda w: instant_value(w, False),
}
