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


def native(arrays) -> list[np.ndarray]:
    """Kernel-allocated arrays with numpy's own dtype objects. Arrays numba allocates carry an
    equal but non-builtin dtype instance, which sends some numpy calls down slow generic paths
    (``np.maximum.at`` with such values is ~30× slower); a view with the builtin dtype is free."""
    return [x.view(x.dtype.type) for x in arrays]


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
def _merge_row(e_n, e_ft, e_fv, e_lt, e_lv, e_r, l_n, l_ft, l_fv, l_lt, l_lv, l_r):
    """One row of ``merge_pair``. Selects, not branches: a counter that drops across the seam
    about as often as not (random test data) would otherwise mispredict every other row."""
    e_has = e_n > 0
    l_has = l_n > 0
    both = e_has & l_has
    dup = both & (e_lt == l_ft)  # the seam sample is in both: counted once, no reset
    drop = both & (e_lt != l_ft) & (l_fv < e_lv)
    r = e_r + l_r
    r = r + e_lv if drop else r  # the same single addition as numpy's add(..., where=drop)
    n = e_n + l_n - np.int64(dup)
    first_t = e_ft if e_has else l_ft
    first_v = e_fv if e_has else l_fv
    last_t = l_lt if l_has else e_lt
    last_v = l_lv if l_has else e_lv
    return n, first_t, first_v, last_t, last_v, r


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
        n[i], first_t[i], first_v[i], last_t[i], last_v[i], resets[i] = _merge_row(
            e_n[i], e_ft[i], e_fv[i], e_lt[i], e_lv[i], e_r[i],
            l_n[i], l_ft[i], l_fv[i], l_lt[i], l_lv[i], l_r[i],
        )  # fmt: skip


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
def merge_take_kernel(
    e_n, e_ft, e_fv, e_lt, e_lv, e_r, l_n, l_ft, l_fv, l_lt, l_lv, l_r, idx, rows
):
    """``take_present`` of ``merge_pair(early, late)`` without the full merge: only rows
    ``idx`` are merged (the same arithmetic as ``merge_into_kernel``), straight into the
    compacted output ``(rows, n, first_t, first_v, last_t, last_v, resets)``."""
    m = idx.shape[0]
    keep = 0
    for i in range(m):
        if e_n[idx[i]] > 0 or l_n[idx[i]] > 0:  # merged n > 0 (a seam duplicate needs both)
            keep += 1
    o_rows = np.empty(keep, rows.dtype)
    n = np.empty(keep, e_n.dtype)
    first_t = np.empty(keep, e_ft.dtype)
    first_v = np.empty(keep, e_fv.dtype)
    last_t = np.empty(keep, l_lt.dtype)
    last_v = np.empty(keep, l_lv.dtype)
    resets = np.empty(keep, e_r.dtype)
    j = 0
    for i in range(m):
        k = idx[i]
        if e_n[k] > 0 or l_n[k] > 0:
            n[j], first_t[j], first_v[j], last_t[j], last_v[j], resets[j] = _merge_row(
                e_n[k], e_ft[k], e_fv[k], e_lt[k], e_lv[k], e_r[k],
                l_n[k], l_ft[k], l_fv[k], l_lt[k], l_lv[k], l_r[k],
            )  # fmt: skip
            o_rows[j] = rows[i]
            j += 1
    return o_rows, n, first_t, first_v, last_t, last_v, resets


@numba.njit(**_JIT)
def merge_panes_take(ns, fts, fvs, lts, lvs, rs, rows):
    """Rows ``rows`` of time-ordered, disjoint panes (tuples of each pane's columns, in pane
    order) merged per row, only rows holding data: ``(rows, n, first_t, first_v, last_t,
    last_v, resets)``. The arithmetic of ``columnar.merge_ordered`` (``merge_stack``) in the
    same order — resets are the panes' resets summed in pane order, plus the seam bridges
    summed in pane order — without stacking (panes × rows) copies first."""
    w = len(ns)
    m = rows.shape[0]
    keep = 0
    for i in range(m):
        for p in range(w):
            if ns[p][rows[i]] > 0:
                keep += 1
                break
    o_rows = np.empty(keep, rows.dtype)
    n = np.empty(keep, ns[0].dtype)
    first_t = np.empty(keep, fts[0].dtype)
    first_v = np.empty(keep, fvs[0].dtype)
    last_t = np.empty(keep, lts[0].dtype)
    last_v = np.empty(keep, lvs[0].dtype)
    resets = np.empty(keep, rs[0].dtype)
    j = 0
    for i in range(m):
        k = rows[i]
        count = ns[0][k]
        total = rs[0][k]
        bridges = 0.0
        first = 0 if count > 0 else -1
        prev = first  # the newest non-empty pane so far
        for p in range(1, w):
            count += ns[p][k]
            total += rs[p][k]
            bridge = 0.0
            if ns[p][k] > 0:
                if prev >= 0:  # continues pane prev: a shared seam sample counts once
                    if lts[prev][k] == fts[p][k]:
                        count -= 1
                    elif fvs[p][k] < lvs[prev][k]:
                        bridge = lvs[prev][k]
                else:
                    first = p
                prev = p
            bridges = bridge if p == 1 else bridges + bridge
        if prev < 0:
            continue
        o_rows[j] = rows[i]
        n[j] = count
        first_t[j] = fts[first][k]
        first_v[j] = fvs[first][k]
        last_t[j] = lts[prev][k]
        last_v[j] = lvs[prev][k]
        resets[j] = total + bridges if w > 1 else total
        j += 1
    return o_rows, n, first_t, first_v, last_t, last_v, resets


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
        r = resets[k]
        resets[k] = r + last_v[k] if had & (v[i] < last_v[k]) else r  # a select: drops are random
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


@numba.njit(**_JIT)
def due_rows(gids, old, target, window_end):
    """``gids[(old < window_end) & (window_end <= target)]``: the groups of a close that close
    the window ending at ``window_end`` (one pass instead of five)."""
    count = 0
    for i in range(gids.shape[0]):
        if old[i] < window_end <= target[i]:
            count += 1
    rows = np.empty(count, gids.dtype)
    j = 0
    for i in range(gids.shape[0]):
        if old[i] < window_end <= target[i]:
            rows[j] = gids[i]
            j += 1
    return rows


_warm = False


def warm() -> None:
    """Compile (or load from numba's cache) every kernel for the dtypes the columnar counters
    use, once per process: otherwise each loads on its first call, inside the first window
    closes of a fresh worker (~0.2 s in all, holding the GIL)."""
    global _warm
    if _warm:
        return
    i, f = np.zeros(2, np.int64), np.zeros(2, np.float64)
    cols = (i, i, f, i, f, f)
    rows = np.arange(2, dtype=np.int64)
    merge_pair_kernel(*cols, *cols)
    merge_into_kernel(*cols, *cols, *(x.copy() for x in cols))
    merge_take_kernel(*cols, *cols, rows, rows)
    take_present(*cols, rows, rows)
    for w in range(1, 7):  # a window's panes present: one to six here (a tuple per count)
        merge_panes_take(*((x,) * w for x in cols), rows)
    fold_distinct_kernel(*(x.copy() for x in cols), rows, i, f)
    advance_newest(np.zeros(2, np.int64), rows, i)
    evict_rows(i.copy(), f.copy(), rows)
    due_rows(rows, i, i, 0)
    _warm = True
