"""Compiled column coding for window batch records (formats 4-6, ``precompute/window_batch.py``).

A per-series window close codes six state columns of ~10k rows. The numpy formulation
(``window_batch._code_column``) is a dozen small array calls per column plus a temporary per
coded column; here one compiled call codes every state column of a record: per column it picks
the same code from one pass of statistics and writes it straight into the caller's output buffer
(typed views of it, possibly unaligned: fine on the little-endian hosts this runs on), so a record
is assembled in one reused buffer and written with one ``write``. The bytes are exactly those of ``_code_column``'s pieces joined:
``tests/precompute/test_batch_codec.py`` checks that on edge cases and random columns.

Kernels write little-endian bytes; ``ENABLED`` is false on big-endian hosts, where the numpy
path is used instead.
"""

from __future__ import annotations

import sys

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
ENABLED = sys.byteorder == "little"

# Column codes, as in ``window_batch`` (kept equal by the byte-identity tests).
_RAW, _CONST, _SPARSE, _OFFSET, _DELTA = 0, 1, 2, 3, 4


def column_bound(n: int) -> int:
    """Most bytes any code takes for an ``n``-row column (raw: a code byte and 8 per row; every
    other code is chosen only when smaller, or is at most 10 bytes of header more than 4 per row)."""
    return 10 + 8 * n


@numba.njit(**_JIT)
def _put_u64(out, pos, value):
    for b in range(8):
        out[pos + b] = (value >> np.uint64(8 * b)) & np.uint64(0xFF)
    return pos + 8


@numba.njit(**_JIT)
def _put_uint(out, pos, value, width):
    for b in range(width):
        out[pos + b] = (value >> np.uint64(8 * b)) & np.uint64(0xFF)
    return pos + width


@numba.njit(**_JIT)
def _raw(out, pos, words):
    """The column's 8-byte rows as they are, through a typed view of the output (a byte loop
    or a slice assignment does not compile to a wide copy)."""
    out[pos] = _RAW
    pos += 1
    n = words.shape[0]
    dst = out[pos : pos + 8 * n].view(np.uint64)
    for i in range(n):
        dst[i] = words[i]
    return pos + 8 * n


@numba.njit(**_JIT)
def _offsets(out, pos, col, base, width):
    """``col - base`` as unsigned ``width``-byte rows, through a typed view of the output so the
    loop is a plain vectorizable store."""
    n = col.shape[0]
    if width == 1:
        d1 = out[pos : pos + n]
        for i in range(n):
            d1[i] = np.uint8(np.uint64(col[i]) - base)
    elif width == 2:
        d2 = out[pos : pos + 2 * n].view(np.uint16)
        for i in range(n):
            d2[i] = np.uint16(np.uint64(col[i]) - base)
    else:
        d4 = out[pos : pos + 4 * n].view(np.uint32)
        for i in range(n):
            d4[i] = np.uint32(np.uint64(col[i]) - base)
    return pos + width * n


@numba.njit(**_JIT)
def _steps(out, pos, col, width):
    """Steps ``col[i] - col[i - 1]`` as unsigned ``width``-byte rows."""
    n = col.shape[0] - 1
    if width == 1:
        d1 = out[pos : pos + n]
        for i in range(n):
            d1[i] = np.uint8(np.uint64(col[i + 1]) - np.uint64(col[i]))
    else:
        d2 = out[pos : pos + 2 * n].view(np.uint16)
        for i in range(n):
            d2[i] = np.uint16(np.uint64(col[i + 1]) - np.uint64(col[i]))
    return pos + width * n


@numba.njit(**_JIT)
def _width(span):
    """Bytes per row (1, 2, 4) for unsigned values up to ``span``; 0 if 4 are not enough."""
    if span < np.uint64(1 << 8):
        return 1
    if span < np.uint64(1 << 16):
        return 2
    if span < np.uint64(1 << 32):
        return 4
    return 0


@numba.njit(**_JIT)
def code_int_into(col, words, deltas, max_delta_width, out, pos):
    """An int64 column (``words``: the same as uint64) coded at ``out[pos:]``; returns the end. Ascending
    columns with ``deltas`` take step widths up to ``max_delta_width``."""
    n = col.shape[0]
    if n == 0:
        out[pos] = _RAW
        return pos + 1
    lo = col[0]
    hi = col[0]
    for i in range(1, n):
        v = col[i]
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    if lo == hi:
        out[pos] = _CONST
        return _put_u64(out, pos + 1, np.uint64(lo))
    if deltas:
        ascending = True
        high = np.uint64(0)
        for i in range(1, n):
            if col[i] < col[i - 1]:
                ascending = False
                break
            step = np.uint64(col[i]) - np.uint64(col[i - 1])
            if step > high:
                high = step
        width = _width(high) if ascending else 0
        if width != 0 and width <= max_delta_width:
            out[pos] = _DELTA
            out[pos + 1] = width
            p = _put_u64(out, pos + 2, np.uint64(col[0]))
            return _steps(out, p, col, width)
    # hi >= lo, so the unsigned difference is the true span even where int64 would overflow.
    width = _width(np.uint64(hi) - np.uint64(lo))
    if width == 0:
        return _raw(out, pos, words)
    out[pos] = _OFFSET
    out[pos + 1] = width
    p = _put_u64(out, pos + 2, np.uint64(lo))
    return _offsets(out, p, col, np.uint64(lo), width)


@numba.njit(**_JIT)
def code_float_into(bits, zeros, out, pos):
    """A float64 column (``bits``: its bit patterns as uint64) coded at
    ``out[pos:]``; with ``zeros`` an all-zero or sparse column takes the smaller code."""
    n = bits.shape[0]
    if n == 0:
        out[pos] = _RAW
        return pos + 1
    if not zeros:
        return _raw(out, pos, bits)
    nonzero = 0
    for i in range(n):
        if bits[i] != 0:
            nonzero += 1
    if nonzero == 0:
        out[pos] = _CONST
        return _put_u64(out, pos + 1, np.uint64(0))
    if nonzero * 12 >= n * 8:
        return _raw(out, pos, bits)
    out[pos] = _SPARSE
    p = _put_u64(out, pos + 1, np.uint64(nonzero))
    v = p + 4 * nonzero  # row numbers first, then the values
    for i in range(n):
        if bits[i] != 0:
            p = _put_uint(out, p, np.uint64(i), 4)
            v = _put_u64(out, v, bits[i])
    return v


@numba.njit(**_JIT)
def code_columns_into(words, kinds, out, pos):
    """Every state column of a record (``words``: the columns as uint64 views; ``kinds``: per
    column 0 float, 1 float worth a zero check, 2 int64) coded one after another at
    ``out[pos:]``, in one call; returns the end."""
    for c in range(len(words)):
        col = words[c]
        if kinds[c] == 2:
            pos = code_int_into(col.view(np.int64), col, False, 0, out, pos)
        else:
            pos = code_float_into(col, kinds[c] == 1, out, pos)
    return pos


@numba.njit(**_JIT)
def map_ids(mapping, rows):
    """Store ids of a batch's worker rows through ``mapping`` (-1: not named yet; rows past its
    end are not named either): ``(ids, all named, one ascending run)``."""
    n = rows.shape[0]
    ids = np.empty(n, np.int64)
    known = True
    run = n > 0
    size = mapping.shape[0]
    for i in range(n):
        r = rows[i]
        s = mapping[r] if 0 <= r < size else -1
        ids[i] = s
        if s < 0:
            known = False
        if i and s != ids[i - 1] + 1:
            run = False
    return ids, known, run


def warm() -> None:
    """Compile (or load from numba's cache) every kernel, outside any measured path."""
    out = np.zeros(1024, np.uint8)
    ints = np.arange(3, dtype=np.int64)
    code_int_into(ints, ints.view(np.uint64), True, 2, out, 0)
    floats = np.zeros(3, np.float64)
    code_float_into(floats.view(np.uint64), True, out, 0)
    map_ids(ints, ints)
    for arity in (3, 4, 6):
        code_columns_into((ints.view(np.uint64),) * arity, np.zeros(arity, np.uint8), out, 0)
