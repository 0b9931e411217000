"""Compiled per-cell walks for ``histogram_quantile`` over classic buckets.

One (group, step) cell is a handful of buckets; the numpy formulation walked bucket positions
with ~15 whole-matrix passes each (~1 ms for 11 buckets over 100 steps, most of a dashboard
panel's time once its rates come from precomputed windows). Here each cell is walked once, in
the same order and with the same float operations as ``BucketQuantile`` in Prometheus
``promql/quantile.go``, so results are bit-identical to the scalar reference.

Layout as in ``udfs.histogram``: the buckets of group ``g`` are rows
``offsets[g]:offsets[g+1]`` of ``counts[n_buckets, n_steps]``, sorted by ``upper``.
"""

from __future__ import annotations

import numba
import numpy as np

SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308
_MAX_FLOAT = 1.7976931348623157e308


@numba.njit(cache=True, nogil=True, inline="always")
def _almost_equal(a: float, b: float, eps: float) -> bool:
    if (a != a and b != b) or a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < eps * _MIN_NORMAL
    return diff / min(abs_sum, _MAX_FLOAT) < eps


@numba.njit(cache=True, nogil=True, error_model="numpy")
def quantile_cells(q, upper, counts, offsets, present, out, out_present):
    """φ-quantile per (group, step) into ``out``; ``q`` per step.

    Per cell: the present buckets, equal bounds coalesced (counts summed into the last of the
    run), counts forced monotonic ignoring deltas within 1e-12 relative, then interpolation
    inside the bucket holding the rank.
    """
    n_groups = offsets.shape[0] - 1
    n_steps = counts.shape[1]
    width = 1
    for g in range(n_groups):
        width = max(width, offsets[g + 1] - offsets[g])
    ub = np.empty(width)
    cnt = np.empty(width)
    for g in range(n_groups):
        first_row, end_row = offsets[g], offsets[g + 1]
        for s in range(n_steps):
            m = 0
            for r in range(first_row, end_row):
                if present[r, s]:
                    if m > 0 and ub[m - 1] == upper[r]:
                        cnt[m - 1] = cnt[m - 1] + counts[r, s]
                    else:
                        ub[m] = upper[r]
                        cnt[m] = counts[r, s]
                        m += 1
            out_present[g, s] = m > 0
            out[g, s] = _one_quantile(q[s], ub, cnt, m) if m > 0 else np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _one_quantile(q, ub, cnt, m):
    if q != q:
        return np.nan
    if q < 0:
        return -np.inf
    if q > 1:
        return np.inf
    prev = cnt[0]
    for k in range(1, m):
        cur = cnt[k]
        if cur == prev:
            continue
        if cur < prev or _almost_equal(prev, cur, SMALL_DELTA_TOLERANCE):
            cnt[k] = prev
        else:
            prev = cur
    observations = cnt[m - 1]
    if m < 2 or ub[m - 1] != np.inf or observations == 0:
        return np.nan
    rank = q * observations
    b = m - 1
    for k in range(m - 1):
        if cnt[k] >= rank:
            b = k
            break
    if b == m - 1:
        return ub[m - 2]
    if b == 0 and ub[0] <= 0:
        return ub[0]
    start, below = (ub[b - 1], cnt[b - 1]) if b > 0 else (0.0, 0.0)
    return start + (ub[b] - start) * ((rank - below) / (cnt[b] - below))


@numba.njit(cache=True, nogil=True)
def forced_monotonicity_cells(
    upper, counts, present, offsets, forced_steps, bucket_range, max_diff
):
    """Where, per group, counts fall from one present bucket to the next beyond 1e-12 relative
    (what upstream's fix-up has to override, and reports as an info).

    Writes per group: ``forced_steps[g, s]``, ``bucket_range[g] = (lowest, highest)`` bound of a
    falling bucket and ``max_diff[g]``. Buckets are not coalesced here, as upstream checks
    before coalescing.
    """
    n_groups = offsets.shape[0] - 1
    n_steps = counts.shape[1]
    for g in range(n_groups):
        low, high, diff = np.inf, -np.inf, 0.0
        for s in range(n_steps):
            prev = np.nan
            for r in range(offsets[g], offsets[g + 1]):
                if not present[r, s]:
                    continue
                cur = counts[r, s]
                if prev != prev:
                    prev = cur
                    continue
                if cur == prev or abs(cur - prev) <= SMALL_DELTA_TOLERANCE * max(
                    abs(cur), abs(prev)
                ):
                    continue
                if cur < prev:
                    forced_steps[g, s] = True
                    low = upper[r] if upper[r] < low else low
                    high = upper[r] if upper[r] > high else high
                    diff = prev - cur if prev - cur > diff else diff
                else:
                    prev = cur
        bucket_range[g, 0], bucket_range[g, 1] = low, high
        max_diff[g] = diff


def warm_up() -> None:
    """Compile both walks (or load them from numba's cache) before the first request."""
    offsets = np.array([0, 2], np.int64)
    upper, counts = np.array([1.0, np.inf]), np.ones((2, 1))
    present = np.ones((2, 1), bool)
    quantile_cells(
        np.ones(1), upper, counts, offsets, present, np.empty((1, 1)), np.empty((1, 1), bool)
    )
    forced_monotonicity_cells(
        upper, counts, present, offsets, np.zeros((1, 1), bool), np.empty((1, 2)), np.empty(1)
    )
