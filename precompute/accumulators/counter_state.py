"""Counter state columns (``CounterColumns``: per key the sample count, first and last sample,
and the counter-reset correction) and the array kernels over them: folding samples in time
order (``fold_sorted`` and its slice fast paths for one scrape in key-table order) and merging
states of consecutive time ranges (``merge_pair``, ``merge_rows``, ``merge_stack``). Shared by the
Increase accumulators (``precompute/accumulators/increase.py``) and the columnar panes
(``precompute/columnar.py``); no Python per key or per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precompute.counter_kernels import (
    advance_newest,
    fold_distinct_kernel,
    merge_pair_kernel,
    native,
)

_COLS = ("n", "first_t", "first_v", "last_t", "last_v", "resets")
_DTYPES = (np.int64, np.int64, np.float64, np.int64, np.float64, np.float64)


@dataclass
class CounterColumns:
    """Column-wise counter state, one row per key."""

    n: np.ndarray
    first_t: np.ndarray
    first_v: np.ndarray
    last_t: np.ndarray
    last_v: np.ndarray
    resets: np.ndarray

    @classmethod
    def zeros(cls, size: int) -> CounterColumns:
        return cls(*(np.zeros(size, dtype=d) for d in _DTYPES))

    def grow(self, size: int) -> None:
        if size <= self.n.shape[0]:
            return
        for name, dtype in zip(_COLS, _DTYPES, strict=True):
            old = getattr(self, name)
            new = np.zeros(size, dtype=dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def increase(self) -> np.ndarray:
        return self.last_v - self.first_v + self.resets


def _fold_one_each(cols: CounterColumns, kid: np.ndarray, t: np.ndarray, v: np.ndarray) -> int:
    """``fold_sorted`` when every key has exactly one sample (one scrape of many series): the
    same state changes without sorting."""
    run = _as_run(kid)
    if run is not None:
        return _fold_run(cols, run, t, v)
    span = int(kid[-1]) - int(kid[0]) + 1
    if 0 < span <= kid.shape[0] * 9 // 8 and bool((kid[1:] > kid[:-1]).all()):
        return _fold_span(cols, kid, t, v)
    had = cols.n[kid] > 0
    fresh = ~had | (t > cols.last_t[kid])
    skipped = int(kid.shape[0] - np.count_nonzero(fresh))
    if skipped:
        kid, t, v, had = kid[fresh], t[fresh], v[fresh], had[fresh]
    prev = cols.last_v[kid]
    new = ~had
    cols.first_t[kid[new]] = t[new]
    cols.first_v[kid[new]] = v[new]
    cols.resets[kid] += np.where(had & (v < prev), prev, 0.0)
    cols.n[kid] += 1
    cols.last_t[kid] = t
    cols.last_v[kid] = v
    return skipped


def _as_run(kid: np.ndarray) -> slice | None:
    """``kid`` as a slice when it is consecutive ascending rows (a scrape that lists its series
    in table order — the order they were first seen in), else None."""
    n = kid.shape[0]
    lo = int(kid[0])
    if int(kid[-1]) - lo != n - 1 or not bool((kid[1:] > kid[:-1]).all()):
        return None
    return slice(lo, lo + n)


def _fold_span(cols: CounterColumns, kid: np.ndarray, t: np.ndarray, v: np.ndarray) -> int:
    """``_fold_one_each`` for ascending distinct ``kid`` with a few gaps (series that missed
    this pane): samples spread over the span ``kid[0]..kid[-1]``, then folded by slices."""
    lo, hi = int(kid[0]), int(kid[-1]) + 1
    pos = kid - lo
    absent = np.ones(hi - lo, dtype=bool)
    absent[pos] = False
    tt = np.zeros(hi - lo, dtype=np.int64)
    tt[pos] = t
    vv = np.zeros(hi - lo, dtype=np.float64)
    vv[pos] = v
    return _fold_run(cols, slice(lo, hi), tt, vv, absent)


def _fold_run(
    cols: CounterColumns,
    rows: slice,
    t: np.ndarray,
    v: np.ndarray,
    absent: np.ndarray | None = None,
) -> int:
    """``_fold_one_each`` over the rows ``rows`` (one sample each, in row order; rows marked
    ``absent`` have none): slices instead of gathers and scatters, the same state changes."""
    n, last_t, last_v = cols.n[rows], cols.last_t[rows], cols.last_v[rows]
    had = n > 0
    stale = had & (t <= last_t)  # older than the folded state: skipped
    if absent is not None:
        stale &= ~absent
    skipped = int(np.count_nonzero(stale))
    keep = stale if absent is None else stale | absent  # rows whose state stays as it is
    changed = bool(skipped) or absent is not None
    if changed:
        t, v = np.where(keep, last_t, t), np.where(keep, last_v, v)
    new = ~had
    if absent is not None:
        new &= ~absent
    if new.any():
        np.copyto(cols.first_t[rows], t, where=new)
        np.copyto(cols.first_v[rows], v, where=new)
    drop = v < last_v
    drop &= had
    if changed:
        drop &= ~keep
    resets = cols.resets[rows]
    np.add(resets, last_v, out=resets, where=drop)  # += prev where it dropped (else + 0.0)
    if changed:
        n += ~keep
    else:
        n += 1
    last_t[...] = t
    last_v[...] = v
    return skipped


def fold_sorted(cols: CounterColumns, kid: np.ndarray, t: np.ndarray, v: np.ndarray) -> int:
    """Fold samples (any order, duplicates allowed: last written wins) into ``cols``.

    Returns how many samples were older than their key's folded state and so were skipped.
    """
    if kid.shape[0] == 0:
        return 0
    # Ids strictly ascending (a scrape in key-table order, the usual batch): one compiled pass,
    # the same state changes as the scatter paths below; -1 when they do not ascend.
    skipped = fold_distinct_kernel(*_arrays(cols), kid, t, v)
    if skipped >= 0:
        return int(skipped)
    size = cols.n.shape[0]
    skipped_once = 0
    if kid.shape[0] * 8 >= size:
        # Keys are independent: those with a single sample here (most, when a batch is one
        # scrape of many series) are folded without sorting; only the rest are sorted.
        if bool((kid[1:] > kid[:-1]).all()):  # ascending ids (a scrape in table order): distinct
            return _fold_one_each(cols, kid, t, v)
        once = np.bincount(kid, minlength=size)[kid] == 1
        if once.all():
            return _fold_one_each(cols, kid, t, v)
        if once.any():
            skipped_once = _fold_one_each(cols, kid[once], t[once], v[once])
            kid, t, v = kid[~once], t[~once], v[~once]
    return skipped_once + _fold_general(cols, kid, t, v)


def fold_parts(cols: CounterColumns, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> int:
    """``fold_sorted`` of the concatenation of ``parts`` (``(kid, t, v)`` batches in arrival
    order). A pane's buffer is usually one scrape plus the few next-scrape samples that landed
    exactly on the pane's end: two batches, each in table order. Folded one after the other they
    stay on the sort-free run/span paths, and give the same state exactly when every part's ids
    ascend and each sample is newer than every earlier part's sample of its key (checked first);
    otherwise the parts are concatenated and folded as one."""
    if len(parts) == 1:
        return fold_sorted(cols, *parts[0])
    if _parts_in_time_order(parts, cols.n.shape[0]):
        return sum(fold_sorted(cols, *part) for part in parts)
    g, t, v = (np.concatenate(x) for x in zip(*parts, strict=True))
    return fold_sorted(cols, g, t, v)


def _parts_in_time_order(parts: list[tuple[np.ndarray, ...]], size: int) -> bool:
    newest = np.full(size, np.iinfo(np.int64).min, dtype=np.int64)
    return all(advance_newest(newest, kid, t) for kid, t, _ in parts)


def _arrays(cols: CounterColumns) -> tuple[np.ndarray, ...]:
    return cols.n, cols.first_t, cols.first_v, cols.last_t, cols.last_v, cols.resets


def _fold_general(cols: CounterColumns, kid: np.ndarray, t: np.ndarray, v: np.ndarray) -> int:
    arrival = np.arange(kid.shape[0])
    order = np.lexsort((arrival, t, kid))
    kid, t, v = kid[order], t[order], v[order]
    last_of_run = np.ones(kid.shape[0], dtype=bool)
    last_of_run[:-1] = (kid[1:] != kid[:-1]) | (t[1:] != t[:-1])
    kid, t, v = kid[last_of_run], t[last_of_run], v[last_of_run]
    had = cols.n[kid] > 0
    fresh = ~had | (t > cols.last_t[kid])
    skipped = int((~fresh).sum())
    kid, t, v, had = kid[fresh], t[fresh], v[fresh], had[fresh]
    if kid.shape[0] == 0:
        return skipped
    seg_start = np.ones(kid.shape[0], dtype=bool)
    seg_start[1:] = kid[1:] != kid[:-1]
    prev = np.empty_like(v)
    prev[1:] = v[:-1]
    prev[seg_start] = cols.last_v[kid[seg_start]]
    has_prev = ~seg_start | had
    contrib = np.where(has_prev & (v < prev), prev, 0.0)
    starts = np.flatnonzero(seg_start)
    ends = np.append(starts[1:], kid.shape[0]) - 1
    keys = kid[starts]
    new_keys = ~had[starts]
    cols.first_t[keys[new_keys]] = t[starts[new_keys]]
    cols.first_v[keys[new_keys]] = v[starts[new_keys]]
    cols.resets[keys] += np.add.reduceat(contrib, starts)
    cols.n[keys] += ends - starts + 1
    cols.last_t[keys] = t[ends]
    cols.last_v[keys] = v[ends]
    return skipped


def _merge_prefix_in_order(
    dst: CounterColumns, src: CounterColumns, has: np.ndarray, n: int
) -> bool:
    """``merge_rows`` onto rows ``0..n-1`` when ``dst`` comes first in every row both hold (pane
    merges into a window, in time order): one ``merge_pair``, the same additions in the same
    order. Returns False, changing nothing, when some row has ``src`` first."""
    d = CounterColumns(*(getattr(dst, c)[:n] for c in _COLS))
    if bool((has & (src.first_t < d.first_t) & (d.n > 0)).any()):
        return False
    merged = merge_pair(d, CounterColumns(*(getattr(src, c)[:n] for c in _COLS)))
    for c in _COLS:
        getattr(dst, c)[:n] = getattr(merged, c)
    return True


def _prefix(cols: CounterColumns, n: int) -> CounterColumns:
    """Rows ``0..n-1`` (views when there are that many, zero-padded copies when fewer)."""
    if cols.n.shape[0] < n:
        grown = CounterColumns.zeros(n)
        for c in _COLS:
            getattr(grown, c)[: cols.n.shape[0]] = getattr(cols, c)
        return grown
    return CounterColumns(*(getattr(cols, c)[:n] for c in _COLS))


def merge_rows(dst: CounterColumns, rows: np.ndarray, src: CounterColumns) -> None:
    """Merge ``src`` row i into ``dst`` row ``rows[i]`` (rows unique); time ranges are assumed
    disjoint, so the state that starts first is the earlier one."""
    has = src.n > 0
    n = rows.shape[0]
    keep: np.ndarray | None = None
    if n and int(rows[0]) == 0 and int(rows[-1]) == n - 1 and bool((rows[1:] > rows[:-1]).all()):
        # Same key table on both sides (pane merges in one worker): whole-prefix views instead
        # of gathers; rows that ``src`` lacks keep their state (``keep``).
        target: slice | np.ndarray = slice(0, n)
        idx: slice | np.ndarray = slice(0, n)
        if _merge_prefix_in_order(dst, src, has, n):
            return
        keep = ~has
    else:
        target, idx = rows[has], np.flatnonzero(has)
        if target.shape[0] == 0:
            return
    d = {name: getattr(dst, name)[target] for name in _COLS}
    s = {name: getattr(src, name)[idx] for name in _COLS}
    empty = d["n"] == 0
    src_first = empty | (s["first_t"] < d["first_t"])

    def pick(early: bool, name: str) -> np.ndarray:
        # early=True → the earlier state's column, else the later state's.
        a, b = (s[name], d[name]) if early else (d[name], s[name])
        return np.where(src_first, a, b)

    e_last_t, e_last_v = pick(True, "last_t"), pick(True, "last_v")
    l_first_t, l_first_v = pick(False, "first_t"), pick(False, "first_v")
    dup = ~empty & (e_last_t == l_first_t)
    bridge = np.where(~empty & ~dup & (l_first_v < e_last_v), e_last_v, 0.0)
    merged = {
        "n": d["n"] + s["n"] - dup.astype(np.int64),
        "resets": np.where(empty, s["resets"], d["resets"] + s["resets"] + bridge),
        "first_t": pick(True, "first_t"),
        "first_v": pick(True, "first_v"),
        "last_t": pick(False, "last_t"),
        "last_v": pick(False, "last_v"),
    }
    for name in _COLS:
        value = np.where(empty, s[name], merged[name])
        if keep is not None:
            value = np.where(keep, d[name], value)
        getattr(dst, name)[target] = value


def merge_pair(early: CounterColumns, late: CounterColumns) -> CounterColumns:
    """Row-wise merge of two states over the same rows, ``early`` wholly before ``late`` (either
    may be empty in a row; empty rows are all zeros). Associative, so a sliding window can
    combine cached partial merges (``precompute/columnar.py``). The inputs are not changed; the
    result is new arrays (one compiled pass, bit-identical to ``merge_pair_numpy``)."""
    return CounterColumns(*native(merge_pair_kernel(*_arrays(early), *_arrays(late))))


def merge_pair_numpy(early: CounterColumns, late: CounterColumns) -> CounterColumns:
    """``merge_pair`` in numpy passes: the reference the kernel is tested against. The result
    may share arrays with the inputs."""
    e_has, l_has = early.n > 0, late.n > 0
    e_all, l_all = bool(e_has.all()), bool(l_has.all())
    if e_all and l_all:
        return _merge_pair_full(early, late)
    # Rows present on both sides (all of them for steadily scraped series) link at the seam: a
    # shared boundary sample counts once, a drop across the seam is a counter reset.
    both = e_has if l_all else (l_has if e_all else e_has & l_has)
    dup = early.last_t == late.first_t
    dup &= both
    drop = late.first_v < early.last_v
    drop &= both
    n = early.n + late.n
    if dup.any():
        drop &= ~dup
        n -= dup
    resets = early.resets + late.resets
    np.add(resets, early.last_v, out=resets, where=drop)  # the bridge; elsewhere + 0.0
    if e_all:  # the first sample of every row is the early one's
        first_t, first_v = early.first_t, early.first_v
    else:
        first_t = np.where(e_has, early.first_t, late.first_t)
        first_v = np.where(e_has, early.first_v, late.first_v)
    if l_all:
        last_t, last_v = late.last_t, late.last_v
    else:
        last_t = np.where(l_has, late.last_t, early.last_t)
        last_v = np.where(l_has, late.last_v, early.last_v)
    return CounterColumns(
        n=n, first_t=first_t, first_v=first_v, last_t=last_t, last_v=last_v, resets=resets
    )


def _merge_pair_full(early: CounterColumns, late: CounterColumns) -> CounterColumns:
    """``merge_pair`` when every row is present on both sides (steadily scraped series): fewer
    passes, the same values — adding the bridge only where it is not zero changes nothing, as
    ``x + 0.0 == x``."""
    dup = early.last_t == late.first_t
    drop = late.first_v < early.last_v
    n = early.n + late.n
    if dup.any():  # a sample shared by both sides counts once and is no reset
        drop &= ~dup
        n -= dup
    resets = early.resets + late.resets
    np.add(resets, early.last_v, out=resets, where=drop)
    return CounterColumns(
        n=n,
        first_t=early.first_t,
        first_v=early.first_v,
        last_t=late.last_t,
        last_v=late.last_v,
        resets=resets,
    )


def merge_stack(st: dict[str, np.ndarray]) -> CounterColumns:
    """Merge a (panes × rows) stack of counter columns, panes in time order and disjoint, into
    one state per row — what folding ``merge_rows`` over the panes in order gives."""
    full = (st["n"] > 0).all(axis=0)
    gaps = np.flatnonzero(~full)
    if gaps.shape[0] * 4 > full.shape[0]:  # e.g. the first windows of a stream
        return _merge_gapped(st)
    merged = _merge_full(st)  # right for rows with data in every pane (a steadily scraped series)
    if gaps.shape[0]:
        fixed = _merge_gapped({c: x[:, gaps] for c, x in st.items()})
        for c in _COLS:
            getattr(merged, c)[gaps] = getattr(fixed, c)
    return merged


def _merge_full(st: dict[str, np.ndarray]) -> CounterColumns:
    """Every pane non-empty: pane k continues pane k − 1 directly."""
    prev_t, prev_v = st["last_t"][:-1], st["last_v"][:-1]
    dup = prev_t == st["first_t"][1:]
    bridge = np.where(~dup & (st["first_v"][1:] < prev_v), prev_v, 0.0)
    return CounterColumns(
        n=st["n"].sum(axis=0) - dup.sum(axis=0),
        first_t=st["first_t"][0].copy(),
        first_v=st["first_v"][0].copy(),
        last_t=st["last_t"][-1].copy(),
        last_v=st["last_v"][-1].copy(),
        resets=st["resets"].sum(axis=0) + bridge.sum(axis=0),
    )


def _merge_gapped(st: dict[str, np.ndarray]) -> CounterColumns:
    """Some panes empty: each non-empty pane continues the newest earlier non-empty one."""
    has = st["n"] > 0
    n_parts, width = has.shape
    lane = np.arange(width)

    def take(x: np.ndarray, at: np.ndarray) -> np.ndarray:  # x[at[i, j], j]
        return x.ravel()[at * width + lane]

    pos = np.where(has, np.arange(n_parts)[:, None], -1)
    upto = np.maximum.accumulate(pos, axis=0)
    prev = np.full_like(upto, -1)
    prev[1:] = upto[:-1]  # per (pane, row): the newest earlier non-empty pane, or -1
    linked = has & (prev >= 0)
    at = np.maximum(prev, 0)
    prev_t, prev_v = take(st["last_t"], at), take(st["last_v"], at)
    dup = linked & (prev_t == st["first_t"])
    bridge = np.where(linked & ~dup & (st["first_v"] < prev_v), prev_v, 0.0)
    first, last = np.argmax(has, axis=0), upto[-1].clip(0)
    return CounterColumns(
        n=st["n"].sum(axis=0) - dup.sum(axis=0),
        first_t=take(st["first_t"], first),
        first_v=take(st["first_v"], first),
        last_t=take(st["last_t"], last),
        last_v=take(st["last_v"], last),
        resets=st["resets"].sum(axis=0) + bridge.sum(axis=0),
    )
