"""Two-stack sliding merge of Increase panes: every window equals the stacked ordered merge."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.accumulators.increase import (
    _COLS,
    CounterColumns,
    fold_sorted,
    merge_pair,
    merge_rows,
)
from precompute.columnar import SlidingCounterMerge, merge_ordered
from tests.precompute.helpers import Harness, agg_yaml

SLIDE = 10


def random_pane(rng, end: int, n_rows: int, per_pane: int, floats: bool) -> CounterColumns:
    cols = CounterColumns.zeros(n_rows)
    k = int(rng.integers(0, per_pane))
    kid = rng.integers(0, n_rows, k)
    # Pane ``end`` covers (end − 10, end]; a sample may sit on the next pane's first instant.
    t = end - SLIDE + rng.integers(0, SLIDE + 1, k)
    v = rng.uniform(0, 10, k) if floats else rng.choice([0.0, 1.0, 5.0, 9.0], k)
    fold_sorted(cols, kid, t, v)
    return cols


def assert_same(got: CounterColumns, want: CounterColumns, exact: bool) -> None:
    has = want.n > 0
    assert np.array_equal(got.n > 0, has)
    for c in _COLS:
        a, b = getattr(got, c)[has], getattr(want, c)[has]
        if exact or c in ("n", "first_t", "last_t"):
            assert np.array_equal(a, b), c
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=c)


def assert_not_a_view_of_panes(got: CounterColumns, panes: dict[int, CounterColumns]) -> None:
    # Emitted windows outlive the panes' later updates and evictions.
    for pane in panes.values():
        for c in _COLS:
            assert not np.shares_memory(getattr(got, c), getattr(pane, c)), c


@pytest.mark.parametrize("floats", [False, True])
def test_pair_merges_folded_in_order_equal_merge_rows_pane_by_pane(floats):
    rng = np.random.default_rng(3)
    n_rows = 150
    parts = [random_pane(rng, (p + 1) * SLIDE, n_rows, 400, floats) for p in range(6)]
    want = CounterColumns.zeros(n_rows)
    rows = np.arange(n_rows)
    for part in parts:
        merge_rows(want, rows, part)
    left = parts[0]
    for part in parts[1:]:
        left = merge_pair(left, part)
    # Grouped the other way round (suffix merges, as the two-stack's back block does).
    right = parts[-1]
    for part in reversed(parts[:-1]):
        right = merge_pair(part, right)
    assert_same(left, want, exact=not floats)
    assert_same(right, want, exact=not floats)


@pytest.mark.parametrize(
    "per_pane, floats, seed",
    [(60, False, 0), (2000, False, 1), (2000, True, 2), (400, False, 5)],
)  # sparse panes (gaps, absent panes), dense panes (most rows full), float values
def test_sliding_windows_equal_the_stacked_ordered_merge(per_pane, floats, seed):
    rng = np.random.default_rng(seed)
    width, n_panes, size = 120, 6, 40
    panes: dict[int, CounterColumns] = {}
    sliding = SlidingCounterMerge()
    for step in range(size):
        w = (step + 1) * SLIDE
        if rng.random() < 0.1:
            width += 15  # new groups: the cached merges are too narrow and are rebuilt
            for cols in panes.values():
                cols.grow(width)
        if rng.random() > 0.1:  # else the pane stays absent (no samples at all)
            panes[w] = random_pane(rng, w, width, per_pane, floats)
        if step > 3 and rng.random() < 0.3:
            # Late samples in a pane already merged into the cache: it must be dropped.
            old = w - SLIDE * int(rng.integers(1, n_panes))
            more = random_pane(rng, old, width, per_pane, floats)
            if old in panes:
                merge_rows(panes[old], np.arange(width), more)
            else:
                panes[old] = more
            sliding.touch(old)
        ends = [e for e in range(w - (n_panes - 1) * SLIDE, w + 1, SLIDE)]
        present = [panes[e] for e in ends if e in panes]
        if not present:
            continue
        got = sliding.window(ends, panes.get, width)
        want = merge_ordered(present, np.arange(width))
        assert_same(got, want, exact=not floats)
        assert_not_a_view_of_panes(got, panes)
        if step % 7 == 3:  # an older window asked again (groups that lag behind)
            back = [e - SLIDE for e in ends]
            older = [panes[e] for e in back if e in panes]
            if older:
                again = sliding.window(back, panes.get, width)
                assert_same(again, merge_ordered(older, np.arange(width)), exact=not floats)
                assert_not_a_view_of_panes(again, panes)


def test_per_series_sliding_increase_windows_equal_one_accumulator_per_pane():
    """Through a worker: per-series grouping, every group due at once at each scrape (the
    two-stack path), with jittered scrapes on pane boundaries, resets and lagging groups."""
    rng = np.random.default_rng(11)
    n_series, scrapes = 40, 30
    base = rng.uniform(0, 100, n_series)
    batches = []
    for k in range(scrapes):
        jitter = rng.choice([0, 1, 500, 999], n_series)  # 0: on the pane boundary
        vals = base + k * rng.uniform(0, 5, n_series)
        vals = np.where(rng.random(n_series) < 0.05, rng.uniform(0, 3, n_series), vals)  # resets
        # Whole numbers: sums of them are exact in any order, so the two paths must agree to
        # the bit (float values are compared with a tolerance in the tests above).
        vals = np.floor(vals)
        batches.append(
            [
                (
                    {"__name__": "m", "instance": f"h{i}"},
                    int(k * 10_000 + jitter[i]),
                    float(vals[i]),
                )
                for i in range(n_series)
            ]
        )
    results = []
    for columnar in (True, False):
        h = Harness(agg_yaml("Increase", window=60, slide=10, grouping=["instance"]))
        if not columnar:
            h.worker.aggs[1].columnar = None
        for batch in batches:
            h.send(batch)
        h.close_all()
        results.append(
            sorted(
                (o.key, o.window_start, o.window_end, tuple(a.stats().values())) for o, a in h.emits
            )
        )
    assert len(results[0]) > n_series * (scrapes - 6)
    assert results[0] == results[1]


@pytest.mark.parametrize("spread", [1, 3, 40])  # one pane, adjacent panes, far apart (unique)
def test_batch_split_by_pane_keeps_every_sample_once_in_its_pane_in_order(spread):
    from precompute.columnar import _split_by_pane

    rng = np.random.default_rng(spread)
    panes = rng.integers(0, spread, 500) * SLIDE + 2 * SLIDE
    gids, ts = np.arange(500), rng.integers(0, 10**6, 500)
    parts = list(_split_by_pane(panes, SLIDE, (gids, ts)))
    assert [p for p, _ in parts] == sorted(set(panes.tolist()))
    for pane, (g, t) in parts:
        sel = panes == pane
        assert np.array_equal(g, gids[sel]) and np.array_equal(t, ts[sel])
        assert g is not gids  # buffered past the batch: never the caller's array


@pytest.mark.parametrize("order", ["time", "reversed", "shuffled"])
def test_keyed_prefix_merge_equals_the_gathering_merge_bit_for_bit(order):
    """``merge_rows`` over a shared key table: the in-order fast path (one ``merge_pair``) when
    every pane is later than the state, the general one otherwise; both equal the gathers."""
    rng = np.random.default_rng(len(order))
    n = 200
    parts = [random_pane(rng, (p + 1) * SLIDE, n, 300, floats=True) for p in range(6)]
    if order == "reversed":
        parts.reverse()
    elif order == "shuffled":
        parts = [parts[i] for i in rng.permutation(len(parts))]
    dense, shifted = CounterColumns.zeros(n), CounterColumns.zeros(n + 1)
    for src in parts:
        merge_rows(dense, np.arange(n), src)  # prefix views
        merge_rows(shifted, np.arange(1, n + 1), src)  # gathers
    for c in _COLS:
        assert np.array_equal(getattr(dense, c), getattr(shifted, c)[1:]), c
