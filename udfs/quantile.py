"""Go-compatible sorting and ``quantile`` (Prometheus ``promql/quantile.go``) on padded rows."""

from __future__ import annotations

import numpy as np


def go_sort_rows(mat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sort each row's first ``sizes[r]`` entries as Go's ``vectorByValueHeap`` does.

    ``mat`` holds NaN in padding positions. Go sorts NaN first; numpy sorts NaN last, so rows
    are sorted by numpy and then shifted right by their count of real NaNs.
    """
    width = mat.shape[1]
    col = np.arange(width)
    nan_count = np.isnan(mat).sum(axis=1) - (width - sizes)
    ordered = np.sort(mat, axis=1)
    src = col[None, :] - nan_count[:, None]
    picked = np.take_along_axis(ordered, np.clip(src, 0, max(width - 1, 0)), 1)
    return np.where(src >= 0, picked, np.nan)


def quantile_rows(q: np.ndarray, mat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``quantile`` (quantile.go) on each sorted row."""
    n = sizes.astype(np.float64)
    qs = np.where(np.isnan(q) | (q < 0) | (q > 1), 0.0, q)  # out-of-range q handled below
    with np.errstate(invalid="ignore"):
        rank = qs * (n - 1)
        lower = np.maximum(0, np.floor(rank))
        upper = np.minimum(n - 1, lower + 1)
        weight = rank - np.floor(rank)
        li = np.clip(lower, 0, max(mat.shape[1] - 1, 0)).astype(np.int64)
        ui = np.clip(upper, 0, max(mat.shape[1] - 1, 0)).astype(np.int64)
        lo_v = np.take_along_axis(mat, li[:, None], 1)[:, 0]
        up_v = np.take_along_axis(mat, ui[:, None], 1)[:, 0]
        out = lo_v * (1 - weight) + up_v * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q) | (sizes == 0), np.nan, out)
