"""Shared helpers for window kernels: column scans, Kahan summation, window reductions.

Prometheus folds each window sample by sample (Kahan sums, Welford variance, exponential
smoothing). To reproduce its rounding exactly without a Python loop per window, ``ColumnScan``
walks *positions within a window*: step ``j`` processes the ``j``-th sample of every window that
has one, as one numpy operation. Windows are sorted by size, longest first, so the windows still
active at step ``j`` are a prefix and state arrays are simply sliced. The number of numpy calls is
the longest window's length, never the number of windows or samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from udfs.range_array import RangeArray


def kahan_inc(
    inc: np.ndarray, total: np.ndarray, comp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``util/kahansum.Inc`` (Kahan–Neumaier step; compensation reset on overflow)."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = total + inc
        big = np.abs(total) >= np.abs(inc)
        c = np.where(big, comp + ((total - t) + inc), comp + ((inc - t) + total))
        c = np.where(np.isinf(t), 0.0, c)
    return t, c


@dataclass(frozen=True)
class ColumnScan:
    """Windows reordered longest first, for position-by-position scans."""

    order: np.ndarray  # window ids, longest first
    starts: np.ndarray  # first sample index of each window, in ``order``
    sizes: np.ndarray  # window sizes, in ``order`` (non-increasing)

    @staticmethod
    def of(ra: RangeArray, min_size: int = 1) -> ColumnScan:
        """Only windows with at least ``min_size`` samples take part."""
        keep = np.flatnonzero(ra.sizes >= min_size)
        order = keep[np.argsort(-ra.sizes[keep], kind="stable")]
        return ColumnScan(order, ra.offsets[order], ra.sizes[order])

    @property
    def max_size(self) -> int:
        return int(self.sizes[0]) if self.sizes.shape[0] else 0

    def columns(self, first: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(j, n_active, sample_index[:n_active])`` for positions ``j >= first``."""
        # Active count at position j = number of windows with size > j (sizes are descending).
        neg = -self.sizes
        for j in range(first, self.max_size):
            n = int(np.searchsorted(neg, -j, side="left"))
            yield j, n, self.starts[:n] + j

    def scatter(self, n_windows: int, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Put per-scanned-window results back in window order."""
        out = np.full(n_windows, fill, dtype=np.float64)
        out[self.order] = values
        return out


def window_reduce(ufunc: np.ufunc, data: np.ndarray, ra: RangeArray) -> np.ndarray:
    """``ufunc.reduce`` over each non-empty window, overlapping windows allowed.

    Uses ``reduceat`` on interleaved ``[start, end)`` pairs (every other result is discarded);
    empty windows get NaN. Cost is the total window length, in C.
    """
    n = ra.n_windows
    out = np.full(n, np.nan, dtype=np.float64)
    nz = np.flatnonzero(ra.sizes > 0)
    if nz.shape[0] == 0:
        return out
    padded = np.concatenate([data, np.zeros(1, dtype=data.dtype)])
    starts = ra.offsets[nz]
    pairs = np.empty(2 * nz.shape[0], dtype=np.int64)
    pairs[0::2] = starts
    pairs[1::2] = starts + ra.sizes[nz]
    out[nz] = ufunc.reduceat(padded, pairs)[0::2]
    return out


def window_prefix_sum(data: np.ndarray, ra: RangeArray, skip_first: bool = False) -> np.ndarray:
    """Exact-for-integers window sums via one cumulative sum (callers ensure exactness)."""
    csum = np.concatenate([[0], np.cumsum(data)])
    end = ra.offsets + ra.sizes
    start = np.minimum(ra.offsets + (1 if skip_first else 0), end)
    return csum[end] - csum[start]


def exact_integer_sums_possible(values: np.ndarray) -> bool:
    """True when every partial sum of ``values`` in any order is exact in float64."""
    if values.shape[0] == 0:
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        if not np.all(np.isfinite(values)):
            return False
        if not np.all(values == np.trunc(values)):
            return False
        return float(np.abs(values).sum()) < 2.0**52
