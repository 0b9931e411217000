"""Stored window rows → ``[series, window]`` cells in one compiled pass (moments and counters).

Why: a 1,000-step range query over 1,000 series reads ~1 M stored windows. Laying them out with
numpy took ~10 array passes (key → series row, masks, one gather per column from the table's row
pool, flat cell ids, a per-cell count, one scatter per column into zero-filled grids): ~45 ms.
Here each row is read once and written to its cell, so the pass costs what its memory traffic
costs.

Semantics are the numpy formulation's, bit for bit: several rows of one cell (late entries,
several workers, restarts) are merged in row order — sums and counts added from zero, minimum and
maximum as ``np.fmin``/``np.fmax`` from NaN — for moments; for counters the last row wins and
the cell's hit count (> 1) tells the caller its states overlap (``dirty``).
"""

from __future__ import annotations

import numba
import numpy as np

from planner.sketch_table import COUNTER_COLS as COUNTERS
from planner.sketch_table import MOMENT_COLS as MOMENTS

_INTS = frozenset({"count", "n", "first_t", "last_t"})


def empty_cells(names: tuple[str, ...], size: int) -> dict[str, np.ndarray]:
    """Flat cells before any row: zero sums/counts/states, NaN minimum and maximum."""
    out = {}
    for k in names:
        if k in _INTS:
            out[k] = np.zeros(size, dtype=np.int64)
        elif k in ("min", "max"):
            out[k] = np.full(size, np.nan)
        else:
            out[k] = np.zeros(size)
    return out


@numba.njit(cache=True, nogil=True)
def _moments(prow, kid, col, key_row, col_ok, n, s_sum, s_count, s_min, s_max, o_sum, o_count,
             o_min, o_max, hits):  # fmt: skip
    for i in range(prow.shape[0]):
        r = key_row[kid[i]]
        c = col[i]
        if r < 0 or not col_ok[c]:
            continue
        cell = c * n + r
        p = prow[i]
        o_sum[cell] += s_sum[p]
        o_count[cell] += s_count[p]
        a, b = o_min[cell], s_min[p]
        o_min[cell] = a if (a <= b or b != b) else b  # np.fmin
        a, b = o_max[cell], s_max[p]
        o_max[cell] = a if (a >= b or b != b) else b  # np.fmax
        hits[cell] += 1


@numba.njit(cache=True, nogil=True)
def _counters(prow, kid, col, key_row, col_ok, n, s_n, s_ft, s_fv, s_lt, s_lv, s_rs, o_n, o_ft,
              o_fv, o_lt, o_lv, o_rs, hits):  # fmt: skip
    for i in range(prow.shape[0]):
        r = key_row[kid[i]]
        c = col[i]
        if r < 0 or not col_ok[c]:
            continue
        cell = c * n + r
        p = prow[i]
        o_n[cell] = s_n[p]
        o_ft[cell] = s_ft[p]
        o_fv[cell] = s_fv[p]
        o_lt[cell] = s_lt[p]
        o_lv[cell] = s_lv[p]
        o_rs[cell] = s_rs[p]
        hits[cell] += 1


def gather_cells(
    family: str,
    source: dict[str, np.ndarray],
    prow: np.ndarray,
    kid: np.ndarray,
    col: np.ndarray,
    key_row: np.ndarray,
    col_ok: np.ndarray,
    n: int,
    out: dict[str, np.ndarray],
    hits: np.ndarray,
) -> None:
    """Add rows to column-major flat cells ``out`` (from ``empty_cells``; cell of series row
    ``r`` at window column ``c`` is ``c·n + r``), in row order: row ``i`` is
    ``source[·][prow[i]]`` for key ``kid[i]`` at column ``col[i]``; its series row is
    ``key_row[kid[i]]`` (-1: not asked for) and it is skipped unless ``col_ok[col[i]]``.
    ``hits`` counts the rows each cell took.

    Column-major because stored rows come grouped by window end: consecutive rows then write
    neighbouring cells. Writing them row-major ([series, window]) strides a page per row and
    was 4-8x slower (TLB misses); ``to_rows`` transposes in cache-sized tiles afterwards."""
    names = MOMENTS if family == "moments" else COUNTERS
    kernel = _moments if family == "moments" else _counters
    srcs = [_typed(source[k], k) for k in names]
    kernel(
        _i64(prow), _i64(kid), _i64(col), _i64(key_row), np.ascontiguousarray(col_ok, bool), n,
        *srcs, *(out[k] for k in names), hits,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _transpose(src, w, n, dst):
    tile = 32
    for c0 in range(0, w, tile):
        c1 = min(c0 + tile, w)
        for r0 in range(0, n, tile):
            r1 = min(r0 + tile, n)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    dst[r * w + c] = src[c * n + r]


def to_rows(cells: np.ndarray, n: int, w: int) -> np.ndarray:
    """Column-major flat cells as a C-ordered ``[n, w]`` array."""
    out = np.empty(n * w, dtype=cells.dtype)
    _transpose(cells, w, n, out)
    return out.reshape(n, w)


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _typed(a: np.ndarray, name: str) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64 if name in _INTS else np.float64)


def warm_up() -> None:
    """Compile both kernels (or load them from numba's cache) before the first request."""
    one = np.zeros(1, np.int64)
    ok = np.ones(1, bool)
    kept = one.copy()
    kept.flags.writeable = False  # ``WindowTable.rows_for`` hands out read-only rows
    for fam, names in (("moments", MOMENTS), ("counter", COUNTERS)):
        src = empty_cells(names, 1)
        hits = np.zeros(1, np.int32)
        for key_row in (one, kept):
            gather_cells(fam, src, one, one, one, key_row, ok, 1, empty_cells(names, 1), hits)
        for v in src.values():
            to_rows(v, 1, 1)
    to_rows(np.zeros(1, np.int32), 1, 1)
    to_rows(np.zeros(1, bool), 1, 1)
