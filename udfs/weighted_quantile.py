"""Quantiles over weighted item segments: KLL sketches and exact value sets as plain arrays.

A KLL sketch is a multiset of retained items, each standing for ``2^level`` input values. Laid out
as columns — all segments' items concatenated (each segment sorted by value) and their cumulative
weights (``cumw``, inclusive, restarting at each segment: int32 while a segment summarises fewer
than 2^31 values, 12 bytes per item in all) — a quantile of every (series, step) cell is one
binary search bounded to its segment instead of one Python call per cell into the sketch.

Two rules, chosen per segment:

- **exact** (every weight 1: the accumulator kept all its values): Prometheus'
  ``quantile_over_time`` — rank ``q·(n−1)``, linear interpolation between the neighbours
  (promql/quantile.go ``quantile``, v3.x), computed with the same float operations, so the answer
  is bit-for-bit the exact engine's;
- **approximate**: DataSketches' ``kll_sketch::get_quantile(q)`` with its default
  (``inclusive=False``): the first item whose cumulative weight exceeds ``q·n``. For one sketch
  this is exactly what the library answers (``tests/sketch/test_weighted_quantile.py``).

A step spanning several windows reads the *weighted union* of its windows' segments (gather,
sort by (pair, value), cumulative weights). The union keeps the rank bound: if part ``i`` (``n_i``
values) ranks every value within ``ε·n_i`` of its true rank, the union ranks it within
``Σ ε·n_i = ε·n`` — no extra compaction, unlike merging sketches.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numba
import numpy as np

_KLL_PREAMBLE = struct.Struct("<BBBBHBBQHBB")  # preamble ints … num levels, unused
_FLAG_EMPTY, _FLAG_SINGLE = 1, 4
CHUNK_ITEMS = 1 << 22  # bounds the memory of one union pass (items gathered at once)


@dataclass(frozen=True)
class Segments:
    """Weighted segments: ``items[lo[s]:hi[s]]`` sorted ascending; ``cumw`` the cumulative weight
    within each segment (so a weight is a difference inside the segment, the first its own)."""

    items: np.ndarray  # float64 [m]
    cumw: np.ndarray  # int32/int64 [m], inclusive cumulative weight, restarting per segment
    lo: np.ndarray  # int64 [s]
    hi: np.ndarray  # int64 [s]
    exact: np.ndarray  # bool [s]: every weight is 1

    @property
    def n_segments(self) -> int:
        return int(self.lo.shape[0])

    def totals(self, rows: np.ndarray) -> np.ndarray:
        """Total weight (number of values summarised) of each row's segment."""
        lo, hi = self.lo[rows], self.hi[rows]
        if self.cumw.shape[0] == 0:
            return np.zeros(rows.shape[0], dtype=np.int64)
        return np.where(hi > lo, self.cumw[np.maximum(hi - 1, 0)], 0).astype(np.int64)

    @staticmethod
    def build(parts: list[tuple[np.ndarray, np.ndarray]]) -> Segments:
        """Segments from (sorted items, weights) pairs."""
        sizes = np.array([p[0].shape[0] for p in parts], dtype=np.int64)
        hi = np.cumsum(sizes)
        items = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
        weights = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        exact = np.array([bool((p[1] == 1).all()) for p in parts], dtype=bool)
        cumw = local_cumsum(weights, sizes)
        return Segments(items.astype(np.float64, copy=False), cumw, hi - sizes, hi, exact)


def local_cumsum(weights: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sums of ``weights`` restarting at each run of ``sizes`` items; int32
    when every run's total fits (it always does for real windows), else int64."""
    total = np.cumsum(weights, dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    if total.shape[0] == 0:
        return np.zeros(0, dtype=np.int32)
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
    local = total - np.repeat(before, sizes)
    fits = local.shape[0] == 0 or int(local.max()) < 2**31
    return local.astype(np.int32) if fits else local


def kll_items(serialized: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(items sorted by value, weights) of a serialized DataSketches ``kll_doubles_sketch``.

    Layout (DataSketches ``kll_sketch::serialize``, format 1): an 8-byte preamble with flags and
    k, then ``n``, ``min_k``, the number of levels, the levels' start offsets (the last level's
    end is implied by the item count), min and max, and the retained items level by level; an
    item of level ``h`` stands for ``2^h`` values. Empty and single-item sketches are short."""
    view = memoryview(serialized)
    flags = view[3]
    if flags & _FLAG_EMPTY:
        return np.zeros(0), np.zeros(0, np.int64)
    if flags & _FLAG_SINGLE:
        item = np.frombuffer(view, dtype="<f8", count=1, offset=8)
        return item.astype(np.float64), np.ones(1, np.int64)
    num_levels = _KLL_PREAMBLE.unpack_from(view, 0)[9]
    start = _KLL_PREAMBLE.size
    levels = np.frombuffer(view, dtype="<u4", count=num_levels, offset=start).astype(np.int64)
    items = np.frombuffer(view, dtype="<f8", offset=start + 4 * num_levels + 16)
    bounds = np.append(levels, levels[0] + items.shape[0]) - levels[0]
    weights = np.repeat(np.left_shift(1, np.arange(num_levels, dtype=np.int64)), np.diff(bounds))
    order = np.argsort(items, kind="stable")
    return items[order], weights[order]


def segment_quantiles(seg: Segments, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The ``q`` quantile of each segment ``rows`` (NaN for an empty one), all at once."""
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), rows.shape)
    out = np.full(rows.shape[0], np.nan)
    if rows.shape[0] == 0:
        return out
    lo, hi = seg.lo[rows], seg.hi[rows]
    total = seg.totals(rows)
    has = (hi > lo) & ~np.isnan(q)
    inside = has & (q >= 0) & (q <= 1)
    out[has & (q < 0)] = -math.inf
    out[has & (q > 1)] = math.inf
    exact = inside & seg.exact[rows]
    if exact.any():
        out[exact] = _interpolated(seg.items, lo[exact], total[exact], q[exact])
    approx = inside & ~exact
    if approx.any():
        # First item whose cumulative weight exceeds q·n (integer form: exceeds floor(q·n)).
        target = np.floor(q[approx] * total[approx]).astype(np.int64)
        idx = search_right(seg.cumw, target, lo[approx], hi[approx])
        out[approx] = seg.items[np.minimum(idx, hi[approx] - 1)]
    return out


def search_right(a: np.ndarray, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per element, ``np.searchsorted(a[lo:hi], x, "right") + lo``: a binary search bounded to
    each segment (a few hundred items), compiled — one ``np.searchsorted`` over the whole
    (large) array would start every search at the top and miss the cache on each level, and the
    lock-step numpy form cost ~10 gathers per level."""
    lo = np.ascontiguousarray(lo, dtype=np.int64)
    hi = np.ascontiguousarray(hi, dtype=np.int64)
    x = np.ascontiguousarray(x)
    out = np.empty(lo.shape[0], dtype=np.int64)
    _search_right(a, x, lo, hi, out)
    return out


@numba.njit(cache=True, nogil=True)
def _search_right(a, x, lo, hi, out):
    for i in range(lo.shape[0]):
        left, right, v = lo[i], hi[i], x[i]
        while left < right:
            mid = (left + right) // 2
            if a[mid] <= v:
                left = mid + 1
            else:
                right = mid
        out[i] = left


def _interpolated(items: np.ndarray, lo: np.ndarray, n: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Prometheus' ``quantile`` (promql/quantile.go, v3.x) of sorted runs ``items[lo:lo+n]``,
    with its float operations in its order (so results are bit-for-bit the same)."""
    rank = q * (n - 1).astype(np.float64)
    floor = np.floor(rank)
    lower = np.maximum(0, floor.astype(np.int64))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - floor
    return items[lo + lower] * (1 - weight) + items[lo + upper] * weight


def union_quantiles(
    seg: Segments, starts: np.ndarray, members: np.ndarray, q: np.ndarray, chunk: int = CHUNK_ITEMS
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair ``p``, the ``q[p]`` quantile of the weighted union of segments
    ``members[starts[p]:starts[p+1]]``; also whether that union is exact (all weights 1).

    Pairs are processed in chunks of about ``chunk`` gathered items to bound memory."""
    n_pairs = starts.shape[0] - 1
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (n_pairs,))
    sizes = seg.hi[members] - seg.lo[members]
    item_ends = np.concatenate([[0], np.cumsum(sizes)])[starts]  # items before each pair
    values = np.full(n_pairs, np.nan)
    exact = np.ones(n_pairs, dtype=bool)
    a = 0
    while a < n_pairs:
        b = int(np.searchsorted(item_ends, item_ends[a] + chunk, side="right")) - 1
        b = min(max(b, a + 1), n_pairs)
        part = members[starts[a] : starts[b]]
        local = (starts[a : b + 1] - starts[a]).astype(np.int64)
        union = _union(seg, part, local)
        values[a:b] = segment_quantiles(union, np.arange(b - a), q[a:b])
        exact[a:b] = union.exact
        a = b
    return values, exact


def ramp(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, sizes)])`` without the loop."""
    offsets = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - offsets, sizes)


def _gather(seg: Segments, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, weights, sizes) of the members' segments, concatenated in member order."""
    lo = seg.lo[members]
    sizes = seg.hi[members] - lo
    idx = ramp(lo, sizes)
    cumw = seg.cumw[idx].astype(np.int64)
    first = idx == np.repeat(lo, sizes)  # a segment's first weight is its cumulative weight
    prev = np.where(first, 0, seg.cumw[np.maximum(idx - 1, 0)])
    return seg.items[idx], cumw - prev, sizes


def take(seg: Segments, rows: np.ndarray) -> Segments:
    """The segments ``rows`` as a compact ``Segments`` (row ``i`` of the result is ``rows[i]``)."""
    lo = seg.lo[rows]
    sizes = seg.hi[rows] - lo
    idx = ramp(lo, sizes)
    hi = np.cumsum(sizes)
    return Segments(seg.items[idx], seg.cumw[idx], hi - sizes, hi, seg.exact[rows])


def concat(a: Segments, b: Segments) -> Segments:
    """``a``'s segments followed by ``b``'s."""
    shift = a.items.shape[0]
    cumw = np.concatenate([a.cumw.astype(np.int64), b.cumw.astype(np.int64)])
    return Segments(
        np.concatenate([a.items, b.items]),
        cumw,
        np.concatenate([a.lo, b.lo + shift]),
        np.concatenate([a.hi, b.hi + shift]),
        np.concatenate([a.exact, b.exact]),
    )


def _union(seg: Segments, members: np.ndarray, starts: np.ndarray) -> Segments:
    """One segment per pair: its members' items gathered, sorted by (pair, value), re-weighted."""
    values, weights, sizes = _gather(seg, members)
    n_pairs = starts.shape[0] - 1
    pair = np.repeat(np.repeat(np.arange(n_pairs), np.diff(starts)), sizes)
    order = np.lexsort((values, pair))
    per_pair = np.bincount(pair, minlength=n_pairs)
    hi_out = np.cumsum(per_pair)
    inexact = np.bincount(pair, weights=(weights != 1), minlength=n_pairs) > 0
    return Segments(
        values[order],
        local_cumsum(weights[order], per_pair),
        hi_out - per_pair,
        hi_out,
        ~inexact,
    )


def warm_up() -> None:
    """Compile the bounded search (or load it from numba's cache) for both weight widths."""
    for dtype in (np.int32, np.int64):
        search_right(np.arange(4, dtype=dtype), np.ones(1, np.int64), np.zeros(1), np.ones(1) * 4)
