"""Go-compatible sorting and ``quantile`` (Prometheus ``promql/quantile.go``) on padded rows."""

from __future__ import annotations

import numpy as np


def mixed_zero_rows(mat: np.ndarray) -> np.ndarray:
    """Rows holding both -0.0 and +0.0, the only equal values whose order can show."""
    zero = mat == 0
    neg = zero & np.signbit(mat)
    return neg.any(axis=1) & (zero & ~neg).any(axis=1)


def go_sort_rows(mat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sort each row's first ``sizes[r]`` entries as Go's ``vectorByValueHeap`` does.

    ``mat`` holds NaN in padding positions. Go sorts NaN first; numpy sorts NaN last, so rows
    are sorted by numpy and then shifted right by their count of real NaNs. Equal values keep
    their input order (Go's insertion sort does so for up to 12 values; its pdqsort above that
    has no order we could reproduce): numpy's default sort is not stable, so rows where that
    could show (-0.0 next to +0.0) are sorted again with a stable sort.
    """
    width = mat.shape[1]
    col = np.arange(width)
    nan_count = np.isnan(mat).sum(axis=1) - (width - sizes)
    ordered = np.sort(mat, axis=1)
    mixed = mixed_zero_rows(mat)
    if mixed.any():
        ordered[mixed] = np.sort(mat[mixed], axis=1, kind="stable")
    src = col[None, :] - nan_count[:, None]
    picked = np.take_along_axis(ordered, np.clip(src, 0, max(width - 1, 0)), 1)
    return np.where(src >= 0, picked, np.nan)


def quantile_ranks(q: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``quantile``'s ``(lowerIndex, upperIndex, weight)`` per row of ``sizes`` values.

    Rows whose ``q`` is NaN or outside [0, 1] (answered without looking at values, see
    :func:`quantile_combine`) and empty rows get indices 0.
    """
    n = sizes.astype(np.float64)
    qs = np.where(np.isnan(q) | (q < 0) | (q > 1), 0.0, q)  # out-of-range q handled later
    with np.errstate(invalid="ignore"):
        rank = qs * (n - 1)
        lower = np.maximum(0, np.floor(rank))
        upper = np.minimum(n - 1, lower + 1)
        weight = rank - np.floor(rank)
    li = np.maximum(lower, 0).astype(np.int64)
    ui = np.maximum(upper, 0).astype(np.int64)
    return li, ui, weight


def quantile_combine(
    q: np.ndarray, lower: np.ndarray, upper: np.ndarray, weight: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """``quantile``'s result from the values at its lower and upper index."""
    with np.errstate(invalid="ignore"):
        out = lower * (1 - weight) + upper * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q) | (sizes == 0), np.nan, out)


def quantile_rows(q: np.ndarray, mat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``quantile`` (quantile.go) on each sorted row."""
    li, ui, weight = quantile_ranks(q, sizes)
    last = max(mat.shape[1] - 1, 0)
    lo_v = np.take_along_axis(mat, np.minimum(li, last)[:, None], 1)[:, 0]
    up_v = np.take_along_axis(mat, np.minimum(ui, last)[:, None], 1)[:, 0]
    return quantile_combine(q, lo_v, up_v, weight, sizes)
