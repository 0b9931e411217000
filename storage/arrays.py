"""Vectorized array helpers shared by the head, blocks and the read path.

Everything here works on whole numpy arrays: no Python loop per sample. Samples are always carried
as three parallel arrays ``(group, ts, values)`` where ``group`` is a series id or an output
position; "sorted" means sorted by ``(group, ts)``.
"""

from __future__ import annotations

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


# Reads of up to this many rows are cut to their time range by counting, longer ones by bisection.
_SCAN_ROWS = 1 << 16


def clip_ranges(
    ts: np.ndarray, starts: np.ndarray, ends: np.ndarray, mint: int, maxt: int
) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], ends[i])`` of ``ts``, each ascending: the sub-ranges holding the
    timestamps in ``[mint, maxt]``.

    A batched bisection (one numpy pass over all ranges per halving step, ~log2 of the longest
    range), so a read of a short time range never touches a series' other samples.
    """
    starts = np.asarray(starts, dtype=_I64)
    ends = np.asarray(ends, dtype=_I64)
    lengths = ends - starts
    total = int(lengths.sum())
    if total <= _SCAN_ROWS or total <= 16 * lengths.shape[0]:
        # Few rows (or short ranges): counting inside the rows takes fewer numpy calls than
        # ~2 x log2(length) bisection steps, whose fixed cost dominates small reads.
        t = ts[ranges_index(starts, ends)]
        bounds = np.zeros(lengths.shape[0] + 1, dtype=_I64)
        np.cumsum(lengths, out=bounds[1:])
        below = np.zeros(total + 1, dtype=_I64)
        np.cumsum(t < mint, out=below[1:])
        upto = np.zeros(total + 1, dtype=_I64)
        np.cumsum(t <= maxt, out=upto[1:])
        first = starts + (below[bounds[1:]] - below[bounds[:-1]])
        last = starts + (upto[bounds[1:]] - upto[bounds[:-1]])
        return first, np.maximum(last, first)
    first = _bisect(ts, starts, ends, mint, right=False)
    return first, _bisect(ts, first, ends, maxt, right=True)


def _bisect(ts: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: int, *, right: bool) -> np.ndarray:
    """Per range: the first index whose timestamp is ``>= x`` (``> x`` when ``right``)."""
    lo = np.asarray(lo, dtype=_I64)
    hi = np.asarray(hi, dtype=_I64)
    if ts.shape[0] == 0 or lo.shape[0] == 0:
        return lo
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) >> 1
        probe = ts[np.where(active, mid, 0)]
        up = active & ((probe <= x) if right else (probe < x))
        lo = np.where(up, mid + 1, lo)
        hi = np.where(active & ~up, mid, hi)


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
    newest row of each duplicate ``(group, ts)``.

    The common case, each group's time ranges following one another part after part (in-order
    ingest, adjacent blocks), is a counting scatter without any sort; otherwise one stable sort.
    """
    if len(parts) == 1:
        return parts[0]
    seen_max = np.full(ngroups, np.iinfo(_I64).min, dtype=_I64)
    ordered = True
    for g, t, _ in parts:
        if g.shape[0] == 0:
            continue
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], g.shape[0]] - 1
        keys = g[starts]
        if (t[starts] <= seen_max[keys]).any():
            ordered = False
            break
        seen_max[keys] = t[ends]
    if not ordered:
        return sort_dedupe(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
    counts = [np.bincount(p[0], minlength=ngroups) for p in parts]
    total = np.sum(counts, axis=0)
    group_start = np.zeros(ngroups, dtype=_I64)
    np.cumsum(total[:-1], out=group_start[1:])
    n = int(total.sum())
    out_g = np.empty(n, dtype=_I64)
    out_t = np.empty(n, dtype=_I64)
    out_v = np.empty(n, dtype=np.float64)
    before = np.zeros(ngroups, dtype=_I64)  # rows of each group placed by earlier parts
    for (g, t, v), cnt in zip(parts, counts, strict=True):
        if g.shape[0]:
            first_in_part = np.cumsum(cnt) - cnt  # row where each group starts inside the part
            dest = (group_start + before - first_in_part)[g] + np.arange(g.shape[0], dtype=_I64)
            out_g[dest], out_t[dest], out_v[dest] = g, t, v
        before += cnt
    return out_g, out_t, out_v
