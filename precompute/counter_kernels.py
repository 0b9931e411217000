"""Compiled kernels over counter state columns (``n``, ``first_t``, ``first_v``, ``last_t``,
``last_v``, ``resets``; see ``precompute/accumulators/counter_state.py``).

Per-series Increase closes a window per scrape over every series; the numpy formulation of a
pair merge or a one-scrape fold is a dozen passes of small array calls, and at 10k rows the
Python overhead per call, not the arithmetic, is the cost. Each kernel here does one such step
in one compiled pass, with exactly the same arithmetic in the same order as the numpy code it
replaces (``counter_state.merge_pair_numpy``, ``fold_sorted``'s one-sample-per-key paths), so
results are bit-identical; ``tests/precompute/test_counter_kernels.py`` checks that.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def merge_pair_kernel(e_n, e_ft, e_fv, e_lt, e_lv, e_r, l_n, l_ft, l_fv, l_lt, l_lv, l_r):
    """``merge_into_kernel`` into new arrays."""
    size = e_n.shape[0]
    n = np.empty(size, e_n.dtype)
    first_t = np.empty(size, e_ft.dtype)
    first_v = np.empty(size, e_fv.dtype)
    last_t = np.empty(size, l_lt.dtype)
    last_v = np.empty(size, l_lv.dtype)
    resets = np.empty(size, e_r.dtype)
    merge_into_kernel(
        e_n, e_ft, e_fv, e_lt, e_lv, e_r, l_n, l_ft, l_fv, l_lt, l_lv, l_r,
        n, first_t, first_v, last_t, last_v, resets,
    )  # fmt: skip
    return n, first_t, first_v, last_t, last_v, resets


@numba.njit(**_JIT)
def merge_into_kernel(
    e_n, e_ft, e_fv, e_lt, e_lv, e_r, l_n, l_ft, l_fv, l_lt, l_lv, l_r,
    n, first_t, first_v, last_t, last_v, resets,
):  # fmt: skip
    """Row-wise merge of ``early`` then ``late`` into the output arrays, which may be the early
    ones (each row is read before it is written). ``merge_pair``'s rule: a sample shared at the
    seam counts once, a drop across the seam adds the early last value to the resets, after
    ``early.resets + late.resets``. A row empty on one side takes the other side's columns; a
    row empty on both takes the late first and the early last columns."""
    for i in range(e_n.shape[0]):
        e_has = e_n[i] > 0
        l_has = l_n[i] > 0
        count = e_n[i] + l_n[i]
        r = e_r[i] + l_r[i]
        if e_has and l_has:
            if e_lt[i] == l_ft[i]:
                count -= 1  # the seam sample is in both
            elif l_fv[i] < e_lv[i]:
                r += e_lv[i]
        if e_has:
            first_t[i] = e_ft[i]
            first_v[i] = e_fv[i]
        else:
            first_t[i] = l_ft[i]
            first_v[i] = l_fv[i]
        if l_has:
            last_t[i] = l_lt[i]
            last_v[i] = l_lv[i]
        else:
            last_t[i] = e_lt[i]
            last_v[i] = e_lv[i]
        n[i] = count
        resets[i] = r


@numba.njit(**_JIT)
def take_present(n, first_t, first_v, last_t, last_v, resets, idx, rows):
    """Rows ``idx`` of the columns, keeping only those holding data (n > 0), with the matching
    entries of ``rows``: ``(rows, n, first_t, first_v, last_t, last_v, resets)``, new arrays."""
    m = idx.shape[0]
    keep = 0
    for i in range(m):
        if n[idx[i]] > 0:
            keep += 1
    o_rows = np.empty(keep, rows.dtype)
    o_n = np.empty(keep, n.dtype)
    o_ft = np.empty(keep, first_t.dtype)
    o_fv = np.empty(keep, first_v.dtype)
    o_lt = np.empty(keep, last_t.dtype)
    o_lv = np.empty(keep, last_v.dtype)
    o_r = np.empty(keep, resets.dtype)
    j = 0
    for i in range(m):
        k = idx[i]
        if n[k] > 0:
            o_rows[j] = rows[i]
            o_n[j] = n[k]
            o_ft[j] = first_t[k]
            o_fv[j] = first_v[k]
            o_lt[j] = last_t[k]
            o_lv[j] = last_v[k]
            o_r[j] = resets[k]
            j += 1
    return o_rows, o_n, o_ft, o_fv, o_lt, o_lv, o_r


@numba.njit(**_JIT)
def fold_distinct_kernel(n, first_t, first_v, last_t, last_v, resets, kid, t, v):
    """Fold samples with strictly ascending (so distinct) in-range key ids into the columns in
    place; returns how many were older than their key's folded state (skipped), or -1, changing
    nothing, when the ids are not strictly ascending or out of range (the caller sorts)."""
    size = n.shape[0]
    m = kid.shape[0]
    prev = -1
    for i in range(m):
        k = kid[i]
        if k <= prev or k >= size:
            return -1
        prev = k
    skipped = 0
    for i in range(m):
        k = kid[i]
        had = n[k] > 0
        if had and t[i] <= last_t[k]:
            skipped += 1
            continue
        if not had:
            first_t[k] = t[i]
            first_v[k] = v[i]
        elif v[i] < last_v[k]:
            resets[k] += last_v[k]
        n[k] += 1
        last_t[k] = t[i]
        last_v[k] = v[i]
    return skipped


@numba.njit(**_JIT)
def advance_newest(newest, kid, t):
    """One part of a multi-part fold: True, recording its times in ``newest``, when its ids
    strictly ascend within ``newest``'s range and each sample is newer than every earlier
    part's sample of its key; False otherwise (``newest`` is then not to be used again)."""
    size = newest.shape[0]
    prev = -1
    for i in range(kid.shape[0]):
        k = kid[i]
        if k <= prev or k >= size or t[i] <= newest[k]:
            return False
        prev = k
        newest[k] = t[i]
    return True


@numba.njit(**_JIT)
def evict_rows(n, resets, spent):
    """Empty rows ``spent`` (n = 0, resets = 0: what additions rely on; times and values are
    read only where n > 0) and return whether any row still holds data."""
    size = n.shape[0]
    for i in range(spent.shape[0]):
        k = spent[i]
        if k < size:
            n[k] = 0
            resets[k] = 0.0
    for i in range(size):  # noqa: SIM110 (a compiled loop that stops at the first row)
        if n[i] != 0:
            return True
    return False
