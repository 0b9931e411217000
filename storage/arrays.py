"""Vectorized array helpers shared by the head, blocks and the read path.

Everything here works on whole numpy arrays: no Python loop per sample. Samples are always carried
as three parallel arrays ``(group, ts, values)`` where ``group`` is a series id or an output
position; "sorted" means sorted by ``(group, ts)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

_I64 = np.int64


def ranges_index(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(starts[i], ends[i])`` for all ``i``, built without a Python loop."""
    starts = np.asarray(starts, dtype=_I64)
    lengths = np.asarray(ends, dtype=_I64) - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=_I64)
    # Each output element is its range's start plus its rank inside the range.
    run_starts = np.cumsum(lengths) - lengths
    shift = np.repeat(starts - run_starts, lengths)
    return shift + np.arange(total, dtype=_I64)


def clip_ranges(
    ts: np.ndarray, starts: np.ndarray, ends: np.ndarray, mint: int, maxt: int
) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], ends[i])`` of ``ts``, each ascending: the sub-ranges holding the
    timestamps in ``[mint, maxt]``.

    Two bisections per range in a compiled loop, so a read of a short time range never touches
    a series' other samples.
    """
    starts = np.ascontiguousarray(starts, dtype=_I64)
    ends = np.ascontiguousarray(ends, dtype=_I64)
    first = np.empty_like(starts)
    last = np.empty_like(starts)
    if starts.shape[0]:
        _clip_kernel(ts, starts, ends, mint, maxt, first, last)
    return first, last


@numba.njit(cache=True, nogil=True)
def _clip_kernel(ts, starts, ends, mint, maxt, first, last):
    for k in range(starts.shape[0]):
        lo, hi = starts[k], ends[k]
        while lo < hi:  # first index with ts >= mint
            mid = (lo + hi) >> 1
            if ts[mid] < mint:
                lo = mid + 1
            else:
                hi = mid
        first[k] = lo
        hi = ends[k]
        while lo < hi:  # first index with ts > maxt
            mid = (lo + hi) >> 1
            if ts[mid] <= maxt:
                lo = mid + 1
            else:
                hi = mid
        last[k] = lo


@numba.njit(cache=True, nogil=True)
def find_runs(keys, starts, ts, wanted, mint, maxt, clip):
    """For each ``wanted[i]`` present in the ascending ``keys`` (rows ``starts[j]:starts[j+1]``
    of the ascending-in-each-range ``ts``): ``(i, lo, hi)`` of its rows in ``[mint, maxt]``
    (all its rows unless ``clip``), non-empty ones only. One compiled pass for a head segment's
    read: the numpy version was a dozen calls, most of a small query's storage time."""
    n = wanted.shape[0]
    index = np.empty(n, dtype=np.int64)
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        j = np.searchsorted(keys, wanted[i])
        if j >= keys.shape[0] or keys[j] != wanted[i]:
            continue
        a, b = starts[j], starts[j + 1]
        if clip:
            a = a + np.searchsorted(ts[a:b], mint)
            b = a + np.searchsorted(ts[a:b], maxt, side="right")
        if a < b:
            index[m] = i
            lo[m] = a
            hi[m] = b
            m += 1
    return index[:m], lo[:m], hi[:m]


@numba.njit(cache=True, nogil=True)
def mark_overlapping(keys, first, last, wanted, lo, hi, out):
    """``out[i] = True`` where ascending ``keys`` holds ``wanted[i]`` (ascending) with
    ``first <= hi`` and ``last >= lo``. Touches only the wanted keys' neighbourhood: over whole
    arrays, a few hundred series of a million-series segment cost memory traffic for all."""
    n, m = keys.shape[0], wanted.shape[0]
    j = 0
    for i in range(m):
        w = wanted[i]
        if j < n and keys[j] < w:
            j += np.searchsorted(keys[j:], w)
        if j >= n:
            return
        if keys[j] == w and first[j] <= hi and last[j] >= lo:
            out[i] = True


def sort_key(group: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """An int64 key ordering rows by ``(group, ts)``, or None when it could overflow."""
    if ts.size == 0:
        return np.zeros(0, dtype=_I64)
    tmin = int(ts.min())
    span = int(ts.max()) - tmin + 1
    gmax = int(group.max()) + 1
    if gmax * span >= (1 << 62) or int(group.min()) < 0:
        return None
    return group.astype(_I64) * span + (ts - tmin)


def sort_dedupe(
    group: np.ndarray, ts: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort rows by ``(group, ts)``; of duplicate ``(group, ts)`` rows keep the last one given.

    Callers pass rows in write order (oldest first), so "last" is "last written". The sort is
    stable, and numpy's stable sort (timsort) merges already-sorted runs in near-linear time.
    """
    n = ts.shape[0]
    if n == 0:
        return group, ts, values
    key = sort_key(group, ts)
    if key is not None:
        order = np.argsort(key, kind="stable")
        key = key[order]
        keep = np.empty(n, dtype=bool)
        np.not_equal(key[1:], key[:-1], out=keep[:-1])
    else:
        # The tie-breaker keeps write order explicit because lexsort is only stable per key.
        order = np.lexsort((np.arange(n), ts, group))
        g, t = group[order], ts[order]
        keep = np.empty(n, dtype=bool)
        keep[:-1] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    keep[-1] = True
    if keep.all():
        return group[order], ts[order], values[order]
    order = order[keep]
    return group[order], ts[order], values[order]


def is_sorted_unique(group: np.ndarray, ts: np.ndarray) -> bool:
    """True when rows are strictly increasing by ``(group, ts)``."""
    if ts.shape[0] < 2:
        return True
    dg = np.diff(group)
    if (dg < 0).any():
        return False
    return bool(((dg > 0) | (np.diff(ts) > 0)).all())


def group_offsets(group: np.ndarray, ngroups: int) -> np.ndarray:
    """Offsets (length ``ngroups + 1``) of each group's rows in an array sorted by group."""
    return np.searchsorted(group, np.arange(ngroups + 1, dtype=_I64), side="left").astype(_I64)


def delta_encode(ts: np.ndarray) -> np.ndarray:
    """First element absolute, then differences (int64 wraps, so decoding is exact)."""
    out = np.empty_like(ts)
    if ts.size:
        out[0] = ts[0]
        np.subtract(ts[1:], ts[:-1], out=out[1:])
    return out


def delta_decode(deltas: np.ndarray) -> np.ndarray:
    return np.cumsum(deltas, dtype=_I64)


def xor_encode(values: np.ndarray) -> np.ndarray:
    """Gorilla-style: each value's bits XOR the previous value's bits (first one raw)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    out = np.empty_like(bits)
    if bits.size:
        out[0] = bits[0]
        np.bitwise_xor(bits[1:], bits[:-1], out=out[1:])
    return out


def xor_decode(xored: np.ndarray) -> np.ndarray:
    return np.bitwise_xor.accumulate(xored.astype(np.uint64, copy=False)).view(np.float64)


def merge_sorted_parts(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], ngroups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge parts (each sorted and unique by ``(group, ts)``, given oldest first) keeping the
    newest row of each duplicate ``(group, ts)``. See ``merge_runs``."""
    if len(parts) == 1:
        return parts[0]
    offsets, ts, values = merge_runs([Runs.of_sorted(*p) for p in parts], ngroups)
    group = np.repeat(np.arange(ngroups, dtype=_I64), np.diff(offsets))
    return group, ts, values


@dataclass(frozen=True)
class Runs:
    """One source's rows of some groups, without copying them: group ``group[k]``'s rows are
    ``ts[lo[k]:hi[k]]`` (ascending, unique timestamps). A group appears at most once, and
    ``lo < hi`` for every run."""

    ts: np.ndarray
    values: np.ndarray
    group: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def of_ranges(
        ts: np.ndarray, values: np.ndarray, group: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> Runs:
        """Runs from ranges of ``ts``; empty ranges are dropped."""
        keep = hi > lo
        if not keep.all():
            group, lo, hi = group[keep], lo[keep], hi[keep]
        return Runs(ts, values, group.astype(_I64, copy=False), lo, hi)

    @staticmethod
    def of_sorted(group: np.ndarray, ts: np.ndarray, values: np.ndarray) -> Runs:
        """Runs of rows sorted and unique by ``(group, ts)``."""
        if group.shape[0] == 0:
            z = np.zeros(0, dtype=_I64)
            return Runs(ts, values, z, z, z)
        lo = np.concatenate((np.zeros(1, dtype=_I64), np.flatnonzero(group[1:] != group[:-1]) + 1))
        hi = np.append(lo[1:], group.shape[0])
        return Runs(ts, values, group[lo].astype(_I64), lo, hi)

    def __len__(self) -> int:
        return int((self.hi - self.lo).sum())


def merge_runs(sources: list[Runs], ngroups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge sources (given oldest first) into ``(offsets, ts, values)``: group ``g``'s rows are
    ``offsets[g]:offsets[g+1]``, sorted by time; of duplicate ``(group, ts)`` rows the newest
    source's is kept.

    Every row is copied once, straight from its source to its place (compiled loop; values
    copied as bits, so stale markers and NaN payloads survive). A group whose runs follow one
    another in time source after source (in-order ingest, adjacent blocks) needs nothing more;
    only groups whose runs overlap are then sorted and deduplicated in place, one by one.
    """
    if len(sources) == 1:  # one block or head segment: nothing can overlap
        s = sources[0]
        src_v = np.ascontiguousarray(s.values, dtype=np.float64).view(np.int64)
        offsets, out_t, bits = _gather_runs(s.ts, src_v, s.group, s.lo, s.hi, ngroups)
        return offsets, out_t, bits.view(np.float64)
    counts = np.zeros(ngroups, dtype=_I64)
    last = np.full(ngroups, np.iinfo(_I64).min, dtype=_I64)
    overlap = np.zeros(ngroups, dtype=bool)
    for s in sources:
        if s.group.shape[0] == 0:
            continue
        counts[s.group] += s.hi - s.lo
        overlap[s.group] |= s.ts[s.lo] <= last[s.group]
        last[s.group] = np.maximum(last[s.group], s.ts[s.hi - 1])
    offsets = np.zeros(ngroups + 1, dtype=_I64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1])
    out_t = np.empty(total, dtype=_I64)
    out_v = np.empty(total, dtype=np.float64)
    fill = offsets[:-1].copy()
    bits = out_v.view(np.int64)
    for s in sources:
        if s.group.shape[0]:
            src_v = np.ascontiguousarray(s.values, dtype=np.float64).view(np.int64)
            _copy_runs(s.ts, src_v, s.group, s.lo, s.hi, fill, out_t, bits)
    bad = np.flatnonzero(overlap)
    if bad.shape[0] == 0:
        return offsets, out_t, out_v
    lengths = _sort_dedupe_groups(offsets, bad, out_t, bits)
    if int(lengths.sum()) == total:
        return offsets, out_t, out_v
    new_offsets = np.zeros(ngroups + 1, dtype=_I64)
    np.cumsum(lengths, out=new_offsets[1:])
    _compact(offsets, new_offsets, out_t, bits)
    n = int(new_offsets[-1])
    return new_offsets, out_t[:n].copy(), out_v[:n].copy()


@numba.njit(cache=True, nogil=True)
def _copy_runs(src_t, src_v, group, lo, hi, fill, out_t, out_v):
    for k in range(group.shape[0]):
        g = group[k]
        d = fill[g]
        a = lo[k]
        n = hi[k] - a
        for j in range(n):
            out_t[d + j] = src_t[a + j]
            out_v[d + j] = src_v[a + j]
        fill[g] = d + n


@numba.njit(cache=True, nogil=True)
def _gather_runs(src_t, src_v, group, lo, hi, ngroups):
    """One source's runs (one per group at most) packed by group: ``merge_runs`` in one pass
    when there is nothing to merge (~20 numpy calls fewer on a small read)."""
    offsets = np.zeros(ngroups + 1, dtype=np.int64)
    for k in range(group.shape[0]):
        offsets[group[k] + 1] = hi[k] - lo[k]
    for g in range(ngroups):
        offsets[g + 1] += offsets[g]
    out_t = np.empty(offsets[ngroups], dtype=np.int64)
    out_v = np.empty(offsets[ngroups], dtype=np.int64)
    for k in range(group.shape[0]):
        d = offsets[group[k]]
        a = lo[k]
        for j in range(hi[k] - a):
            out_t[d + j] = src_t[a + j]
            out_v[d + j] = src_v[a + j]
    return offsets, out_t, out_v


@numba.njit(cache=True, nogil=True)
def _sort_dedupe_groups(offsets, groups, ts, vals):
    """Sort each listed group's rows by time in place, keeping the last written of equal
    timestamps (rows are in write order); returns every group's new length."""
    lengths = offsets[1:] - offsets[:-1]
    for g in groups:
        a = offsets[g]
        seg_t = ts[a : offsets[g + 1]].copy()
        seg_v = vals[a : offsets[g + 1]].copy()
        order = np.argsort(seg_t, kind="mergesort")  # stable: equal times stay in write order
        n = 0
        for k in range(order.shape[0]):
            i = order[k]
            if k + 1 < order.shape[0] and seg_t[order[k + 1]] == seg_t[i]:
                continue
            ts[a + n] = seg_t[i]
            vals[a + n] = seg_v[i]
            n += 1
        lengths[g] = n
    return lengths


@numba.njit(cache=True, nogil=True)
def _compact(old_offsets, new_offsets, ts, vals):
    """Move each group's first ``new length`` rows left to the new offsets (in place)."""
    for g in range(new_offsets.shape[0] - 1):
        src = old_offsets[g]
        dst = new_offsets[g]
        for j in range(new_offsets[g + 1] - dst):
            ts[dst + j] = ts[src + j]
            vals[dst + j] = vals[src + j]


def warm_up() -> None:
    """Compile the merge kernels (or load them from numba's cache)."""
    g = np.array([0, 0], dtype=_I64)
    part = (g, np.array([1, 2], dtype=_I64), np.zeros(2))
    merge_sorted_parts([part, part], 1)
    merge_runs([Runs.of_sorted(*part)], 1)
    one = np.zeros(1, dtype=_I64)
    find_runs(one, np.array([0, 2], dtype=_I64), part[1], one, 0, 1, True)
