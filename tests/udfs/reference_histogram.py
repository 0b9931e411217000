"""Reference ``BucketQuantile`` / ``BucketFraction`` (quantile.go), one bucket list at a time."""

from __future__ import annotations

import math

import numpy as np

Bucket = tuple[float, float]  # (upper bound, count)


def almost_equal(a: float, b: float, eps: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    min_normal = 2.2250738585072014e-308
    if a == 0 or b == 0 or abs_sum < min_normal:
        return diff < eps * min_normal
    return diff / min(abs_sum, 1.7976931348623157e308) < eps


def _coalesce(buckets: list[Bucket]) -> list[list[float]]:
    out = [list(buckets[0])]
    for ub, c in buckets[1:]:
        if ub == out[-1][0]:
            out[-1][1] += c
        else:
            out.append([ub, c])
    return out


def bucket_quantile(q: float, buckets: list[Bucket]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    buckets = sorted(buckets, key=lambda b: b[0])
    if buckets[-1][0] != math.inf:
        return math.nan
    bs = _coalesce(buckets)
    prev = bs[0][1]
    for i in range(1, len(bs)):
        cur = bs[i][1]
        if cur == prev:
            continue
        if almost_equal(prev, cur, 1e-12) or cur < prev:
            bs[i][1] = prev
            continue
        prev = cur
    if len(bs) < 2:
        return math.nan
    obs = bs[-1][1]
    if obs == 0:
        return math.nan
    rank = q * obs
    b = next((i for i in range(len(bs) - 1) if bs[i][1] >= rank), len(bs) - 1)
    if b == len(bs) - 1:
        return bs[-2][0]
    if b == 0 and bs[0][0] <= 0:
        return bs[0][0]
    start, end, count = 0.0, bs[b][0], bs[b][1]
    if b > 0:
        start = bs[b - 1][0]
        count -= bs[b - 1][1]
        rank -= bs[b - 1][1]
    return start + (end - start) * _div(rank, count)


def _div(a: float, b: float) -> float:
    """Go float division: never raises."""
    with np.errstate(all="ignore"):
        return float(np.divide(np.float64(a), np.float64(b)))


def bucket_fraction(lower: float, upper: float, buckets: list[Bucket]) -> float:
    buckets = sorted(buckets, key=lambda b: b[0])
    if buckets[-1][0] != math.inf:
        return math.nan
    bs = _coalesce(buckets)
    count = bs[-1][1]
    if count == 0 or math.isnan(lower) or math.isnan(upper):
        return math.nan
    if lower >= upper:
        return 0.0
    rank = lo_rank = up_rank = 0.0
    lo_set = up_set = False
    lb = 0.0 if bs[0][0] > 0 else -math.inf
    for i, (ub, c) in enumerate(bs):
        if i > 0:
            lb = bs[i - 1][0]

        def interp(v: float, lb=lb, ub=ub, c=c, rank=rank) -> float:
            if lb == -math.inf:
                return c
            return rank + _div((c - rank) * (v - lb), ub - lb)

        if not lo_set and lb >= lower:
            lo_rank, lo_set = rank, True
        if not up_set and lb >= upper:
            up_rank, up_set = rank, True
        if lo_set and up_set:
            break
        if not lo_set and lb < lower and ub > lower:
            lo_rank, lo_set = interp(lower), True
        if not up_set and lb < upper and ub > upper:
            up_rank, up_set = interp(upper), True
        if lo_set and up_set:
            break
        rank = c
    if not lo_set or lo_rank > count:
        lo_rank = count
    if not up_set or up_rank > count:
        up_rank = count
    return _div(up_rank - lo_rank, count)
