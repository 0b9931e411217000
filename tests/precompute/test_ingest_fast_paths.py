"""Ingest fast paths of issue 5's second round: pane buffers folded part by part, the last
all-groups window reused for groups that close it one scrape late, count-min updates without a
per-batch ``unique``. Each must give what the general path gives."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from precompute.accumulators.cms import (
    CountMinSketchAccumulator,
    CountMinSketchWithHeapAccumulator,
)
from precompute.accumulators.counter_state import fold_parts
from precompute.accumulators.increase import _COLS, CounterColumns, fold_sorted
from precompute.columnar import ColumnarCounters, merge_ordered
from precompute.windows import WindowSpec


def _assert_columns_equal(got: CounterColumns, want: CounterColumns) -> None:
    for c in _COLS:
        assert np.array_equal(getattr(got, c), getattr(want, c)), c


def _scrape(rng, n: int, t0: int, keep: float) -> tuple[np.ndarray, ...]:
    kid = np.flatnonzero(rng.random(n) < keep).astype(np.int64)
    t = t0 + rng.integers(0, 1000, kid.shape[0])
    v = np.floor(rng.uniform(0, 50, kid.shape[0]))  # whole numbers: any grouping is exact
    return kid, t.astype(np.int64), v


@pytest.mark.parametrize(
    "layout", ["in_time_order", "later_part_older", "equal_times", "unsorted_ids"]
)
def test_folding_buffered_parts_equals_folding_their_concatenation(layout):
    rng = np.random.default_rng(7)
    n = 300
    parts = [_scrape(rng, n, 10_000 * k, keep=0.9) for k in range(3)]
    if layout == "later_part_older":  # a late batch: the sequential fold would skip samples
        kid, t, v = parts[2]
        parts[2] = (kid, t - 25_000, v)
    elif layout == "equal_times":  # same (key, time) twice: the last written wins
        kid, t, v = parts[0]
        parts[1] = (kid[:50], t[:50], v[:50] + 1)
    elif layout == "unsorted_ids":
        kid, t, v = parts[1]
        order = rng.permutation(kid.shape[0])
        parts[1] = (kid[order], t[order], v[order])
    # Some state folded before the buffer, newer than part of it for a few keys.
    before = CounterColumns.zeros(n)
    fold_sorted(before, *_scrape(rng, n, 5_000, keep=0.3))
    got, want = (CounterColumns(*(getattr(before, c).copy() for c in _COLS)) for _ in range(2))
    skipped = fold_parts(got, parts)
    cat = [np.concatenate(x) for x in zip(*parts, strict=True)]
    assert skipped == fold_sorted(want, *cat)
    _assert_columns_equal(got, want)


def _counters_with_lagging_group(late_sample: bool) -> tuple[CounterColumns, CounterColumns]:
    """Groups 0..n-1 close window 60 000 together except ``lag``, which closes it at the next
    close, after (optionally) a sample newer than its folded state landed in one of that
    window's panes. Returns (what the columnar close emitted for ``lag``, a fresh stacked
    merge of the panes for ``lag``)."""
    rng = np.random.default_rng(3)
    spec = WindowSpec(60_000, 10_000)
    n, lag = 64, 5
    cc = ColumnarCounters(spec, max_buffer=8)
    for k in range(7):
        kid, t, v = _scrape(rng, n, 10_000 * k + 1, keep=1.0)
        cc.update(kid, spec.pane_ends(t), t, np.floor(v + 60 * k), n)
    every = np.arange(n, dtype=np.int64)
    # Windows up to 50 000 closed for every group; now all but ``lag`` close 60 000.
    cc.close(every, np.full(n, 0, np.int64), np.full(n, 50_000, np.int64), n)
    others = every[every != lag]
    cc.close(others, np.full(n - 1, 50_000, np.int64), np.full(n - 1, 60_000, np.int64), n)
    if late_sample:  # at the very end of pane 30 000, after the group's sample there
        t = np.array([30_000], np.int64)
        cc.update(np.array([lag], np.int64), spec.pane_ends(t), t, np.array([999.0]), n)
    twin = copy.deepcopy(cc)  # the reference: folded and merged afresh, before any eviction
    panes = [twin._fold(p, n) for p in spec.pane_ends_of_window(60_000) if p in twin.panes]
    want = merge_ordered(panes, np.array([lag], np.int64))
    out = cc.close(np.array([lag], np.int64), np.array([50_000], np.int64),
                   np.array([60_000], np.int64), n)  # fmt: skip
    (rows, w, cols) = out[0]
    assert w == 60_000 and rows.tolist() == [lag]
    return CounterColumns(*(cols[c] for c in _COLS)), want


@pytest.mark.parametrize("late_sample", [False, True])
def test_a_group_closing_a_window_one_close_late_gets_the_freshly_merged_state(late_sample):
    got, want = _counters_with_lagging_group(late_sample)
    _assert_columns_equal(got, want)
    if late_sample:  # the reused window would miss it: the reset at 999 → next scrape's value
        assert got.n[0] == want.n[0] and got.resets[0] >= 999.0


@pytest.mark.parametrize("heap", [False, True])
@pytest.mark.parametrize("count_only", [False, True])
def test_count_min_update_with_repeated_keys_equals_one_update_per_sample(heap, count_only):
    rng = np.random.default_rng(5)
    keys = [(f"k{i}",) for i in range(400)]

    def make():
        if heap:
            return CountMinSketchWithHeapAccumulator(4, 97, 8, count_only=count_only)
        return CountMinSketchAccumulator(4, 97, count_only=count_only)

    batched, single = make(), make()
    for _ in range(5):
        ids = rng.integers(0, 400, 250)  # repeats, any order
        vals = np.floor(rng.uniform(0, 20, 250))
        batched.update(vals, None, keys, ids)
        for i in range(250):
            single.update(vals[i : i + 1], None, keys, ids[i : i + 1])
    assert np.array_equal(batched.table, single.table)
    assert batched.total == single.total
    if heap:  # candidates are retained per batch; each batch's keys counted once, in id order
        assert len(batched.candidates) == 8 and len(set(batched.candidates)) == 8
