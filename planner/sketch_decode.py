"""Stored KLL windows decoded many at a time: serialized accumulators → weighted segments.

A ``DatasketchesKLL`` window is stored as ``KLLAccumulator.to_bytes()``: the accumulator header
(``TA``, type code 9, format version; ``u32 k``, ``u8 exact``) then either the exact values
(``pack_array``: ``u8 dtype length, u64 n, "<f8"``, the values) or the DataSketches sketch
(``pack_bytes``: ``u64 length``, ``kll_doubles_sketch::serialize()``). The sketch's layout
(datasketches-cpp ``kll_sketch_impl.hpp`` serialize, library 5.x):

- empty: 8-byte preamble (preamble ints 2, serial version 1, family 15, flags bit 0, u16 k, m);
- single item: the 8-byte preamble (serial version 2, flags bit 2) then the item;
- otherwise: preamble ints 5, serial version 1, family 15, flags, u16 k, u8 m, pad, u64 n,
  u16 min k, u8 number of levels ``L``, pad, then ``L`` u32 level offsets into the full item
  buffer (the last level's end is implied by the item count), min, max (f64) and the retained
  items level by level (level 0 first); an item of level ``h`` stands for ``2^h`` values.

Decoding one window through ``datasketches`` (deserialize, serialize again, split the levels)
costs ~50 µs of Python per window; a query's first read of an hour of 1 h sketches over 1 k
series is ~18 k windows. Here every header field is gathered at the blobs' offsets in one joined
buffer, the items of all windows in one gather, and each window's items sorted by value at once
(rows of a padded matrix, one ``argsort`` per size class). Blobs the parser does not recognise
(another type, a newer format, an inconsistent header) go through the per-window
``datasketches`` path, so the result is the same either way
(``tests/sketch/test_kll_decode.py`` checks both bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from udfs.weighted_quantile import kll_items, ramp

_KLL_TYPE_CODE = 9
_KLL_FORMAT = 1  # KLLAccumulator.version
_KLL_FAMILY = 15
_FLAG_EMPTY, _FLAG_SINGLE = 1, 4
_SKETCH_AT = 17  # header (4) + k (4) + exact flag (1) + pack_bytes length (8)
_EXACT_ITEMS_AT = 21  # header (4) + k (4) + exact flag (1) + u8 + u64 + "<f8"
_FULL_HEAD = 20  # preamble … number of levels, pad
_MIN_MAX = 16
_PADS = [bytes(n) for n in range(8)]


@dataclass(frozen=True)
class KLLColumns:
    """Per window (in input order): its items sorted by value
    (``items[starts[i] : starts[i] + sizes[i]]``) with their weights, its K and whether every
    weight is 1 (``exact``). Windows' items are laid out grouped by size (``order``: the windows
    in item order), so that windows of one size sort as one matrix."""

    items: np.ndarray  # float64
    weights: np.ndarray  # int64
    sizes: np.ndarray  # int64
    starts: np.ndarray  # int64
    order: np.ndarray  # int64: ``sizes[order]`` are the runs of ``items`` in turn
    k: np.ndarray  # int64
    exact: np.ndarray  # bool
    parsed: int  # windows decoded by the array parser (the rest went through datasketches)


@dataclass(frozen=True)
class _Parsed:
    ok: np.ndarray  # bool per blob
    k: np.ndarray  # int64 per blob
    count: np.ndarray  # items per blob
    run_blob: np.ndarray  # runs of equal weight: their blob, length and level, blob-ordered
    run_len: np.ndarray
    run_level: np.ndarray


def decode_kll(
    blobs: Sequence[bytes], claim: Callable[[int], np.ndarray] | None = None
) -> KLLColumns:
    """Segments of serialized ``KLLAccumulator`` windows, as the per-window path builds them.
    ``claim(n)`` gives the array the items are written to (e.g. the caller's pool: no copy)."""
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=len(blobs))
    # Every window's items end its blob: padding each blob so that it *ends* on a multiple of
    # 8 bytes makes all items aligned float64 cells of the joined buffer, read in one gather.
    pads = -lengths % 8
    pieces = [
        x for pair in zip([_PADS[p] for p in pads.tolist()], blobs, strict=True) for x in pair
    ]
    joined = b"".join(pieces)
    buf = np.frombuffer(joined, dtype=np.uint8)
    ends = np.cumsum(lengths + pads)
    p = _parse(buf, ends - lengths, lengths)
    sizes = np.where(p.ok, p.count, 0)
    k = p.k.copy()
    cells = np.frombuffer(joined, dtype="<f8")
    src_items, item_at = cells, ends // 8 - sizes
    src_weights = np.repeat(np.left_shift(np.int64(1), p.run_level), p.run_len)
    # Exact: no item above level 0 (counted per run of equal weight, not per item).
    heavy = np.bincount(p.run_blob, weights=p.run_len * (p.run_level > 0), minlength=len(blobs))
    exact = heavy == 0
    bad = np.flatnonzero(~p.ok)
    if bad.shape[0]:
        src_items = cells[ramp(item_at[p.ok], sizes[p.ok])]
        src_items, src_weights, sizes, k = _splice_fallback(
            blobs, bad, p.ok, src_items, src_weights, sizes, k
        )
        item_at = np.cumsum(sizes) - sizes
        for i in bad.tolist():
            exact[i] = bool((src_weights[item_at[i] : item_at[i] + sizes[i]] == 1).all())
    order = np.argsort(sizes, kind="stable")
    n = sizes[order]
    total = int(n.sum())
    items = claim(total) if claim is not None else np.empty(total, dtype=np.float64)
    np.take(src_items, ramp(item_at[order], n), out=items, mode="clip")  # "raise" buffers
    weights = src_weights[ramp((np.cumsum(sizes) - sizes)[order], n)]
    starts = np.empty_like(sizes)
    starts[order] = np.cumsum(n) - n
    _sort_grouped(items, weights, n)
    return KLLColumns(items, weights, sizes, starts, order, k, exact, int(p.ok.sum()))


def _sort_grouped(items: np.ndarray, weights: np.ndarray, n: np.ndarray) -> None:
    """Sort, in place, each run of ``n`` (ascending) items by value, stably, weights following.
    Runs of one size are one matrix sorted along rows; sizes shared by few runs go together
    through ``sort_segments``."""
    cut = np.flatnonzero(np.r_[True, n[1:] != n[:-1]]) if n.shape[0] else np.zeros(0, np.int64)
    bounds = np.append(cut, n.shape[0]).tolist()
    pos = np.cumsum(n) - n
    few: list[np.ndarray] = []
    for g in range(len(bounds) - 1):
        r0, r1 = bounds[g], bounds[g + 1]
        size = int(n[r0])
        if size <= 1:
            continue
        if r1 - r0 < 8:  # a matrix of a few rows costs more in calls than in sorting
            few.append(np.arange(r0, r1))
            continue
        a, b = int(pos[r0]), int(pos[r0]) + (r1 - r0) * size
        order = np.argsort(items[a:b].reshape(-1, size), axis=1, kind="stable")
        order += np.arange(0, b - a, size, dtype=order.dtype)[:, None]  # flat positions
        flat = order.reshape(-1)
        items[a:b] = items[a:b][flat]
        weights[a:b] = weights[a:b][flat]
    if few:
        rows = np.concatenate(few)
        at = ramp(pos[rows], n[rows])
        items[at], weights[at] = sort_segments(items[at], weights[at], n[rows])


def _parse(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> _Parsed:
    """Header fields of every blob; ``ok`` marks the ones laid out as documented above."""
    n = starts.shape[0]
    ok = lengths >= _SKETCH_AT
    o = np.where(ok, starts, 0)
    ok &= (_u(buf, o, 1) == ord("T")) & (_u(buf, o + 1, 1) == ord("A"))
    ok &= (_u(buf, o + 2, 1) == _KLL_TYPE_CODE) & (_u(buf, o + 3, 1) == _KLL_FORMAT)
    k = _u(buf, o + 4, 4)
    exact = ok & (_u(buf, o + 8, 1) == 1)
    sketch = ok & (_u(buf, o + 8, 1) == 0)
    ok = exact | sketch
    # Exact values: pack_array with dtype "<f8".
    n_exact = _u(buf, o + 10, 8)
    exact &= (_u(buf, o + 9, 1) == 3) & (lengths >= _EXACT_ITEMS_AT)
    exact &= _is_f8_dtype(buf, np.where(exact, o + 18, 0))
    exact &= lengths == _EXACT_ITEMS_AT + 8 * n_exact
    # The sketch: one of the three forms.
    raw = _u(buf, o + 9, 8)
    sketch &= lengths == _SKETCH_AT + raw
    s = np.where(sketch & (raw >= 8), o + _SKETCH_AT, 0)
    sketch &= (raw >= 8) & (_u(buf, s + 2, 1) == _KLL_FAMILY)
    flags = _u(buf, s + 3, 1)
    empty = sketch & (flags & _FLAG_EMPTY > 0) & (raw == 8)
    single = sketch & (flags & _FLAG_EMPTY == 0) & (flags & _FLAG_SINGLE > 0) & (raw == 16)
    single &= _u(buf, s + 1, 1) == 2
    full = sketch & (flags & (_FLAG_EMPTY | _FLAG_SINGLE) == 0) & (raw >= _FULL_HEAD)
    full &= (_u(buf, s, 1) == 5) & (_u(buf, s + 1, 1) == 1)
    levels = np.where(full, _u(buf, np.where(full, s + 18, 0), 1), 0)
    body = _FULL_HEAD + 4 * levels + _MIN_MAX
    full &= (levels >= 1) & (raw >= body) & ((raw - body) % 8 == 0)
    levels = np.where(full, levels, 0)
    count = np.select([exact, single, full], [n_exact, np.ones(n, np.int64), (raw - body) // 8], 0)
    run = _level_runs(buf, s, levels, count, _u(buf, np.where(full, s + 8, 0), 8))
    full &= run[3]
    ok = exact | empty | single | full
    # Runs of equal weight in item order: one per exact / single window, one per level.
    flat = ok & ~full
    blob = np.concatenate([np.flatnonzero(flat), run[0]])
    length = np.concatenate([count[flat], run[1]])
    level = np.concatenate([np.zeros(int(flat.sum()), np.int64), run[2]])
    keep = ok[blob]
    order = np.lexsort((level[keep], blob[keep]))
    return _Parsed(ok, k, count, blob[keep][order], length[keep][order],
                   level[keep][order])  # fmt: skip


def _level_runs(buf, s, levels, count, n_field):
    """(blob, items, level) of every level of the multi-level sketches, and per blob whether its
    level offsets are consistent: non-decreasing, within the items, weights summing to ``n``."""
    blobs = np.flatnonzero(levels > 0)
    per = levels[blobs]
    blob = np.repeat(blobs, per)
    h = np.arange(blob.shape[0], dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    offset = _u(buf, s[blob] + _FULL_HEAD + 4 * h, 4)
    rel = offset - np.repeat(offset[np.cumsum(per) - per], per)
    last = h == np.repeat(per - 1, per)
    nxt = np.where(last, count[blob], np.append(rel[1:], 0))
    size = nxt - rel
    good = np.ones(levels.shape[0], dtype=bool)
    bad_level = (size < 0) | (nxt > count[blob])
    good[blob[bad_level]] = False
    # Float sums are exact below 2^53 values per window; beyond, a mismatch only means fallback.
    weight = (np.where(bad_level, 0, size) << np.minimum(h, 62)).astype(np.float64)
    total = np.bincount(blob, weights=weight, minlength=levels.shape[0])
    good &= (levels == 0) | (total == n_field.astype(np.float64))
    return blob, size, h, good


def _u(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Little-endian unsigned ints of ``width`` bytes at byte offsets ``at`` (as int64; offsets
    past the buffer read as 0, callers mask those blobs out)."""
    at = np.asarray(at, dtype=np.int64)
    if width == 1:
        inside = at < buf.shape[0]
        return np.where(inside, buf[np.where(inside, at, 0)], 0).astype(np.int64)
    idx = at[:, None] + np.arange(width)
    inside = (idx < buf.shape[0]).all(axis=1)
    raw = buf[np.where(inside[:, None], idx, 0)]
    out = np.ascontiguousarray(raw).view(f"<u{width}").reshape(-1).astype(np.int64)
    return np.where(inside, out, 0)


def _is_f8_dtype(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    ok = np.ones(at.shape[0], dtype=bool)
    for i, ch in enumerate(b"<f8"):
        ok &= _u(buf, at + i, 1) == ch
    return ok


def _splice_fallback(blobs, bad, ok, items, weights, sizes, k):
    """Insert the datasketches decode of blobs ``bad`` into the parsed columns (input order)."""
    from precompute.accumulators.base import Accumulator

    extra_items, extra_w = [], []
    for i in bad.tolist():
        acc = Accumulator.from_bytes(blobs[i])
        k[i] = acc.k  # type: ignore[attr-defined]
        exact = getattr(acc, "exact", None)
        if exact is not None:
            got = np.sort(np.asarray(exact, dtype=np.float64))
            extra_items.append(got)
            extra_w.append(np.ones(got.shape[0], np.int64))
        else:
            it, w = kll_items(acc.sketch.serialize())  # type: ignore[attr-defined]
            extra_items.append(it)
            extra_w.append(w.astype(np.int64))
        sizes[i] = extra_items[-1].shape[0]
    pos = np.cumsum(sizes) - sizes
    out_i = np.empty(int(sizes.sum()), dtype=np.float64)
    out_w = np.empty(out_i.shape[0], dtype=np.int64)
    good = np.flatnonzero(ok)
    at_good = ramp(pos[good], sizes[good])
    out_i[at_good], out_w[at_good] = items, weights
    at_bad = ramp(pos[bad], sizes[bad])
    out_i[at_bad] = np.concatenate(extra_items)
    out_w[at_bad] = np.concatenate(extra_w)
    return out_i, out_w, sizes, k


def sort_segments(
    items: np.ndarray, weights: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each run of ``sizes`` items sorted by value, stably (as ``np.argsort(kind="stable")`` per
    run: NaN last, ties in input order), weights following. Runs of similar size share one
    padded matrix sorted along rows (NaN padding sorts after every real item, a real NaN
    included, as it comes first): no Python per run, and the padding is under 2× the items."""
    out_i = np.empty_like(items)
    out_w = np.empty_like(weights)
    pos = np.cumsum(sizes) - sizes
    size_class = np.where(sizes > 0, np.ceil(np.log2(np.maximum(sizes, 1))), -1).astype(np.int64)
    for c in np.unique(size_class[sizes > 0]).tolist():
        runs = np.flatnonzero(size_class == c)
        n, start = sizes[runs], pos[runs]
        width = int(n.max())
        # Item i of run r sits at cell r·width + (i − start[r]) of the padded matrix.
        shift = np.repeat(np.arange(runs.shape[0], dtype=np.int64) * width - start, n)
        whole = int(n.sum()) == items.shape[0]  # the usual case: one class holds every run
        src = np.arange(items.shape[0], dtype=np.int64) if whole else ramp(start, n)
        cell = src + shift
        pad = np.full(runs.shape[0] * width, np.nan)
        pad[cell] = items if whole else items[src]
        order = np.argsort(pad.reshape(-1, width), axis=1, kind="stable")
        take = (order + start[:, None]).reshape(-1)[cell]
        if whole:
            return items[take], weights[take]
        out_i[src] = items[take]
        out_w[src] = weights[take]
    return out_i, out_w
