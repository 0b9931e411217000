"""k-th smallest value of many overlapping windows at once: a wavelet matrix over ranks.

``quantile_over_time`` over a range query with a short step and a long range reads every sample
in many windows (a 1 h range at a 20 s step puts each sample in 180 windows). Sorting each window
costs the *sum of the window sizes*; this structure is built once over the samples the windows
cover and then answers "the k-th smallest value in positions [lo, hi)" for every window in one
vectorized descent, costing ``O(levels)`` numpy passes over all windows together.

Why it works. Replace every value by its rank ``r`` (an integer in ``[0, 2**L)``). A wavelet
matrix keeps, for each bit level ``b = L-1 .. 0``, the sequence of ranks stably partitioned by
the higher bits seen so far, and for each level the prefix count of zeros of bit ``b``. A window
``[l, r)`` at level ``b`` holds ``zeros = Z[r] - Z[l]`` ranks with bit ``b`` clear; if ``k <
zeros`` the answer's bit is 0 and the window maps to ``[Z[l], Z[r])`` of the next level,
otherwise its bit is 1, ``k -= zeros`` and the window maps to ``[nz + l - Z[l], nz + r - Z[r])``
(``nz``: zeros of the whole level). After ``L`` levels the bits read off are the k-th smallest
rank. Every step is an array operation over all windows, so there is no Python per window.

Order (what "smallest" means) is exactly ``promql/quantile.go``'s ``sort.Sort`` as this package
sorts (``udfs/quantile.go_sort_rows``): NaN first, then ascending, and values that compare
equal but differ in bits (only -0.0 vs +0.0; NaN payloads are not told apart) keep their sample
order (a stable sort, which is what Go's insertion sort does on windows of up to 12 samples).
Ranks are *dense per group of bitwise-identical neighbours in that order*, so equal values share
a rank (fewer levels) and the answer's value is read back bit for bit from a per-row table.

Rows. Windows never cross series, so ranks only need to be consistent within a *component* (a
maximal run of samples joined by overlapping windows; one series for a range query). Components
are packed into rows of a padded matrix, each row sorted on its own (``np.argsort(axis=1)``), so
``L`` is the bit length of the largest row's distinct count (12 for 2,160 samples) rather than of
all samples (22 for 2.6 M). Padding is at most about the covered sample count.

Cost model (``worth_it``; constants measured with ``bench/kernels.py`` on random values, the
slower case for both paths): sorting every window costs about ``18 ns * sum(sizes)``; the index
costs about ``cells * (30 ns + 9 ns * L)`` to build (row sort, ranks, one stable partition and
prefix count per level) plus ``2 * windows * L * 10 ns`` to ask for the two order statistics of
a quantile (cells ≈ 1.25 * covered samples). So it pays once the average sample sits in more
than about ``1.25 * (30 + 9 L) / 18`` windows (10 for ``L = 12``) plus the query term: a 1 h
range at a 20 s step (180 windows a sample) by far, a 200 s step (18) still, an instant query
or step >= range (1) never.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from udfs.quantile import mixed_zero_rows

# Per-element costs (ns) measured with bench/kernels.py on random (gauge) data, the slower
# case for both paths; only their ratios matter.
_SORT_NS_PER_VALUE = 18.0  # gather + sort + pick, per sample of every window (sort path)
_BUILD_NS_PER_CELL = 30.0  # per padded cell: row sort, ranks, and table
_LEVEL_NS_PER_CELL = 9.0  # per padded cell and bit level: partition + prefix count
_QUERY_NS_PER_LEVEL = 10.0  # per query and bit level: two gathers and the branch-free update
_PAD_FACTOR = 1.25  # padded cells per covered sample (1.0 when series have equal lengths)
CHUNK_CELLS = 1 << 18  # cells per independently indexed group of rows


@dataclass(frozen=True)
class _Rows:
    """Where each covered sample and each window lives in the padded row matrix."""

    width: int
    n_rows: int
    src: np.ndarray  # per covered sample: its index in the input values
    dst: np.ndarray  # per covered sample: its flat cell in the (n_rows, width) matrix
    shift: np.ndarray  # per window: add to an input position to get its flat cell
    row: np.ndarray  # per window: its row


def _components(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(component per window, component starts, component ends)`` for non-empty windows."""
    order = np.argsort(lo, kind="stable") if np.any(lo[1:] < lo[:-1]) else None
    slo = lo if order is None else lo[order]
    shi = hi if order is None else hi[order]
    run_hi = np.maximum.accumulate(shi)
    new = np.empty(slo.shape[0], dtype=bool)
    new[:1] = True
    new[1:] = slo[1:] >= run_hi[:-1]
    comp_sorted = np.cumsum(new) - 1
    starts = slo[new]
    ends = run_hi[np.append(np.flatnonzero(new)[1:] - 1, slo.shape[0] - 1)]
    comp = np.empty_like(comp_sorted)
    if order is None:
        comp = comp_sorted
    else:
        comp[order] = comp_sorted
    return comp, starts, ends


def _pack(lo: np.ndarray, hi: np.ndarray) -> _Rows:
    """Pack components into rows of about the longest component's length (no gaps kept)."""
    comp, c_lo, c_hi = _components(lo, hi)
    c_len = c_hi - c_lo
    cum = np.concatenate(([0], np.cumsum(c_len)))
    covered = int(cum[-1])
    target = int(c_len.max())
    c_row = cum[:-1] // target  # a row holds the components starting in its slice of `cum`
    row_first = np.searchsorted(c_row, np.arange(int(c_row[-1]) + 1))
    c_off = cum[:-1] - cum[row_first[c_row]]  # offset of the component inside its row
    width = int((c_off + c_len).max())
    n_rows = int(c_row[-1]) + 1
    c_shift = c_row * width + c_off - c_lo  # input position + shift = flat cell
    rep_shift = np.repeat(c_shift, c_len)
    src = np.arange(covered, dtype=np.int64) + np.repeat(c_lo - cum[:-1], c_len)
    return _Rows(width, n_rows, src, src + rep_shift, c_shift[comp], c_row[comp])


def _row_ranks(mat: np.ndarray, row_len: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense ranks of each row's cells in Go order and the value of each rank.

    Returns ``(ranks, table, levels)``: ``ranks`` has ``mat``'s shape; ``table[row, d]`` is the
    value of rank ``d`` in ``row``. ``mat`` holds NaN padding after each row's ``row_len`` real
    samples; padding is never inside a window, so its rank does not matter.
    """
    n_rows, width = mat.shape
    perm = np.argsort(mat, axis=1)
    mixed = mixed_zero_rows(mat)  # as go_sort_rows: ties in sample order where they can show
    if mixed.any():
        perm[mixed] = np.argsort(mat[mixed], axis=1, kind="stable")
    ordered = np.take_along_axis(mat, perm, axis=1)
    finite = ~np.isnan(ordered)  # numpy sorts NaN last: a prefix of each row is non-NaN
    bits = ordered.view(np.int64)
    step = np.empty((n_rows, width), dtype=np.int32)
    step[:, 0] = 0
    np.not_equal(bits[:, 1:], bits[:, :-1], out=step[:, 1:], casting="unsafe")
    dense = np.cumsum(step, axis=1, dtype=np.int32)
    # Real NaNs take rank 0 (Go sorts NaN first); the row's numbers then count from 1.
    has_nan = finite.sum(axis=1) < row_len
    dense += has_nan[:, None]
    dense[~finite] = 0
    table = np.full(n_rows * width, np.nan)
    cells = (np.arange(n_rows, dtype=np.int64) * width)[:, None] + dense
    table[cells[finite]] = ordered[finite]
    ranks = np.empty((n_rows, width), dtype=np.int32)
    np.put_along_axis(ranks, perm, dense, axis=1)
    levels = max(1, int(dense.max(initial=0)).bit_length())
    return ranks.ravel(), table, levels


@dataclass(frozen=True)
class RangeKth:
    """Wavelet matrix over a group of rows of the packed matrix (one memory-bounded chunk).

    ``zeros[i]`` (top bit first) holds the prefix counts of zero bits of level ``i`` over the
    chunk's cells; ``table`` the value of each (row, dense rank) at ``row * width + rank``.
    """

    width: int
    levels: int
    zeros: tuple[np.ndarray, ...]
    table: np.ndarray

    @classmethod
    def build(cls, values: np.ndarray, rows: _Rows, row0: int, row1: int) -> RangeKth:
        first, last = row0 * rows.width, row1 * rows.width
        a, b = np.searchsorted(rows.dst, (first, last))  # dst is increasing
        mat = np.full((row1 - row0) * rows.width, np.nan)
        mat[rows.dst[a:b] - first] = values[rows.src[a:b]]
        row_len = np.bincount((rows.dst[a:b] - first) // rows.width, minlength=row1 - row0)
        ranks, table, levels = _row_ranks(mat.reshape(row1 - row0, rows.width), row_len)
        return cls(rows.width, levels, _levels(ranks, levels), table)

    def kth(
        self, left: np.ndarray, right: np.ndarray, row: np.ndarray, k: np.ndarray
    ) -> np.ndarray:
        """Value of the ``k``-th smallest (0-based) cell in ``[left, right)`` (chunk cells).

        ``row`` is each query's row in the chunk; ``0 <= k < right - left`` is the caller's.
        """
        n = self.zeros[0].shape[0]
        idx = np.int32 if n < 2**30 else np.int64  # headroom: lr - 2 * z stays in range
        q = left.shape[0]
        lr = np.empty((2, q), dtype=idx)
        lr[0], lr[1] = left, right
        kk = k.astype(idx)
        rank = np.zeros(q, dtype=idx)
        zlr = np.empty_like(lr)
        tmp = np.empty_like(lr)
        n_zero = np.empty(q, dtype=idx)
        one = np.empty(q, dtype=idx)
        for z in self.zeros:
            np.take(z, lr, out=zlr, mode="clip")  # in range by construction; no checks
            np.subtract(zlr[1], zlr[0], out=n_zero)
            np.greater_equal(kk, n_zero, out=one, casting="unsafe")  # the answer's bit
            n_zero *= one
            kk -= n_zero
            # Branch-free: bit 0 -> Z[p]; bit 1 -> zeros_of_level + (p - Z[p]).
            np.subtract(lr, zlr, out=tmp)
            tmp -= zlr
            tmp += z[-1]
            tmp *= one
            np.add(zlr, tmp, out=lr)
            rank <<= 1
            rank |= one
        return self.table[row * self.width + rank]


def _levels(ranks: np.ndarray, levels: int) -> tuple[np.ndarray, ...]:
    """Prefix zero counts per bit level, top bit first (a stable partition per level)."""
    n = ranks.shape[0]
    idx = np.int32 if n < 2**30 else np.int64
    cur = ranks.astype(np.uint16) if levels <= 16 else ranks
    nxt = np.empty_like(cur)
    out = []
    for b in range(levels - 1, -1, -1):
        zero = ((cur >> b) & 1) == 0
        z = np.empty(n + 1, dtype=idx)
        z[0] = 0
        np.cumsum(zero, out=z[1:], dtype=idx)
        out.append(z)
        if b:
            # np.compress into a buffer is ~4x faster than boolean indexing (no result sizing).
            n_zero = int(z[-1])
            np.compress(zero, cur, out=nxt[:n_zero])
            np.compress(~zero, cur, out=nxt[n_zero:])
            cur, nxt = nxt, cur
    return tuple(out)


def kth_smallest(
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    ks: Sequence[np.ndarray],
    chunk_cells: int = CHUNK_CELLS,
) -> list[np.ndarray]:
    """For each ``k`` array, the ``k[i]``-th smallest value (0-based, Go order) of window ``i``.

    Windows are ``values[lo[i]:hi[i]]`` and must be non-empty; ``0 <= k[i] < hi[i] - lo[i]``.
    Rows are indexed in chunks of about ``chunk_cells`` cells so memory stays bounded (``levels``
    int32 prefix arrays per chunk) and each chunk's prefix arrays stay cache-friendly.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    out = [np.empty(lo.shape[0]) for _ in ks]
    if lo.shape[0] == 0 or not out:
        return out
    if np.any(hi <= lo):
        raise ValueError("kth_smallest needs non-empty windows")
    rows = _pack(lo, hi)
    per = max(1, chunk_cells // rows.width)
    order = np.argsort(rows.row, kind="stable") if np.any(np.diff(rows.row) < 0) else None
    srow = rows.row if order is None else rows.row[order]
    bounds = np.searchsorted(srow, np.arange(0, rows.n_rows + per, per))

    def one(c: int, row0: int) -> None:
        sel = np.arange(bounds[c], bounds[c + 1])
        if order is not None:
            sel = order[sel]
        if sel.shape[0] == 0:
            return
        chunk = RangeKth.build(values, rows, row0, min(row0 + per, rows.n_rows))
        base = row0 * rows.width
        left = lo[sel] + rows.shift[sel] - base
        right = hi[sel] + rows.shift[sel] - base
        row = rows.row[sel] - row0
        m = len(ks)  # one descent for all k arrays: each level's prefix array is read once
        got = chunk.kth(
            np.tile(left, m), np.tile(right, m), np.tile(row, m),
            np.concatenate([np.asarray(k)[sel] for k in ks]),
        )  # fmt: skip
        for i, dst in enumerate(out):
            dst[sel] = got[i * sel.shape[0] : (i + 1) * sel.shape[0]]

    starts = list(enumerate(range(0, rows.n_rows, per)))
    if len(starts) == 1:
        one(*starts[0])
        return out
    # Chunks write disjoint windows: run them on the kernel threads (numpy's take, compress,
    # cumsum and argsort release the GIL, so a second core does real work).
    for f in [kernel_pool().submit(one, c, row0) for c, row0 in starts]:
        f.result()
    return out


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def kernel_pool() -> ThreadPoolExecutor:
    """Threads for independent chunks of one big kernel (one per core, at most 4). Submit from
    query threads only: a chunk that waited on this pool from inside it could deadlock it."""
    with _POOL_LOCK:
        if not _POOL:
            workers = max(1, min(4, os.cpu_count() or 1))
            _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="kernel"))
        return _POOL[0]


def worth_it(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Cost model: is indexing the covered samples cheaper than sorting every window?

    ``[lo, hi)`` are the non-empty windows. Sorting reads the sum of the window sizes; the
    index reads each covered sample once per bit level (the bits of the longest component,
    where rows usually need no more) plus two descents per window.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    if lo.shape[0] == 0:
        return False
    _, c_lo, c_hi = _components(lo, hi)
    c_len = c_hi - c_lo
    levels = max(1, int(c_len.max()).bit_length())
    sort_ns = float((hi - lo).sum()) * _SORT_NS_PER_VALUE
    cells = _PAD_FACTOR * float(c_len.sum())
    build_ns = cells * (_BUILD_NS_PER_CELL + levels * _LEVEL_NS_PER_CELL)
    query_ns = 2.0 * lo.shape[0] * levels * _QUERY_NS_PER_LEVEL
    return build_ns + query_ns < sort_ns
