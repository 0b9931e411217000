"""Shared helpers for window kernels: column scans, Kahan summation, window reductions.

Prometheus folds each window sample by sample (Kahan sums, Welford variance, exponential
smoothing). To reproduce its rounding exactly without a Python loop per window, ``ColumnScan``
walks *positions within a window*: step ``j`` processes the ``j``-th sample of every window that
has one, as one numpy operation. Windows are sorted by size, longest first, so the windows still
active at step ``j`` are a prefix and state arrays are simply sliced. The number of numpy calls is
the longest window's length, never the number of windows or samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from udfs.range_array import RangeArray


def kahan_inc(
    inc: np.ndarray, total: np.ndarray, comp: np.ndarray, may_overflow: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``util/kahansum.Inc`` (Kahan–Neumaier step; compensation reset on overflow).

    Neumaier's branch computes the exact rounding error of ``total + inc``; Knuth's branch-free
    TwoSum yields the same exact error with fewer operations, so results are bit-identical
    (on overflow upstream zeroes the compensation, as here; NaN propagates in both).
    ``may_overflow=False`` skips that check when the caller knows all terms and sums are finite.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        t = total + inc
        bp = t - total
        c = comp + ((total - (t - bp)) + (inc - bp))
        if may_overflow:
            c[np.isinf(t)] = 0.0
    return t, c


@dataclass(frozen=True)
class ColumnScan:
    """Windows reordered longest first, for position-by-position scans."""

    order: np.ndarray  # window ids, longest first
    starts: np.ndarray  # first sample index of each window, in ``order``
    sizes: np.ndarray  # window sizes, in ``order`` (non-increasing)

    @staticmethod
    def of(ra: RangeArray, min_size: int = 1, only: np.ndarray | None = None) -> ColumnScan:
        """Windows with at least ``min_size`` samples (and in the ``only`` mask) take part."""
        sel = ra.sizes >= min_size
        keep = np.flatnonzero(sel if only is None else sel & only)
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


WINDOW_CHUNK = 65_536
"""Windows per chunk for column scans: keeps the scan's state arrays cache-resident
(measured 2-4x faster than whole-array scans at 2.4M windows)."""

Kernel = Callable[..., tuple[np.ndarray, ...]]


def by_window_chunks(kernel: Kernel) -> Kernel:
    """Run a per-window kernel on chunks of ``WINDOW_CHUNK`` windows; concatenate each output.

    Only for kernels without whole-array preprocessing; positional parameters and keyword
    arrays are per window and are sliced along (``None`` keywords pass through).
    """

    @functools.wraps(kernel)
    def run(ra: RangeArray, *params: np.ndarray, **kw: np.ndarray | None) -> tuple[np.ndarray, ...]:
        n = ra.n_windows
        if n <= WINDOW_CHUNK:
            return kernel(ra, *params, **kw)
        full = [np.broadcast_to(np.asarray(p, dtype=np.float64), (n,)) for p in params]
        kw_full = {k: None if v is None else np.broadcast_to(v, (n,)) for k, v in kw.items()}
        parts: list[tuple[np.ndarray, ...]] = []
        for i in range(0, n, WINDOW_CHUNK):
            sl = slice(i, i + WINDOW_CHUNK)
            sub = RangeArray(
                ra.values,
                ra.timestamps,
                ra.offsets[sl],
                ra.sizes[sl],
                ra.window_ends[sl],
                ra.range_ms,
            )
            kw_sub = {k: None if v is None else v[sl] for k, v in kw_full.items()}
            parts.append(kernel(sub, *(p[sl] for p in full), **kw_sub))
        return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))

    return run


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
    # int64 cumulative sums may wrap; the difference of two is still exact (mod 2^64).
    with np.errstate(over="ignore"):
        csum = np.concatenate([np.zeros(1, dtype=data.dtype), np.cumsum(data)])
    end = ra.offsets + ra.sizes
    start = np.minimum(ra.offsets + (1 if skip_first else 0), end)
    with np.errstate(over="ignore"):
        return csum[end] - csum[start]


def integer_exact_windows(ra: RangeArray) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose samples are all integers with absolute sum below 2^53, and their sums.

    In such windows every partial sum is exact in float64, so Kahan summation's compensation
    stays 0 and the plain sum is upstream's result bit for bit. Sums come from int64 prefix
    sums: wrap-around cancels in the difference, so they are exact whatever other windows hold.
    """
    v = ra.values
    with np.errstate(invalid="ignore", over="ignore"):
        small = np.abs(v) < 2.0**53  # False for NaN/Inf
        ints = np.where(small, v, 0.0)
        is_int = small & (ints == np.trunc(ints))
        iv = np.where(is_int, ints, 0.0).astype(np.int64)
    non_int = window_prefix_sum((~is_int).astype(np.int64), ra)
    abs_sum = window_prefix_sum(np.abs(iv), ra)
    exact = (non_int == 0) & (abs_sum >= 0) & (abs_sum < 2**53)
    return exact, window_prefix_sum(iv, ra).astype(np.float64)


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
