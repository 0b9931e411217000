"""The compiled counter kernels (``precompute/counter_kernels.py``) give bit-identical states to
the numpy code they replace, on random data with counter resets, NaN values, equal timestamps
(at the seam and against the folded state), samples older than the state, and empty rows."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.accumulators.counter_state import (
    _COLS,
    CounterColumns,
    _fold_general,
    _fold_one_each,
    fold_parts,
    fold_sorted,
    merge_pair,
    merge_pair_numpy,
)
from precompute.columnar import ColumnarCounters, merge_ordered
from precompute.counter_kernels import (
    due_rows,
    evict_rows,
    fold_distinct_kernel,
    merge_into_kernel,
    merge_panes_take,
    take_present,
)
from precompute.windows import WindowSpec


def _bits(x: np.ndarray) -> np.ndarray:
    """The exact bit patterns (NaN == NaN, 0.0 != -0.0)."""
    return x.view(np.int64) if x.dtype == np.float64 else x


def assert_same_state(a: CounterColumns, b: CounterColumns, rows: np.ndarray | None = None):
    for c in _COLS:
        x, y = getattr(a, c), getattr(b, c)
        if rows is not None:
            x, y = x[rows], y[rows]
        assert x.dtype == y.dtype, c
        np.testing.assert_array_equal(_bits(x), _bits(y), err_msg=c)


def _copy(cols: CounterColumns) -> CounterColumns:
    return CounterColumns(*(getattr(cols, c).copy() for c in _COLS))


def _values(rng: np.random.Generator, size: int, nan_share: float) -> np.ndarray:
    v = np.round(rng.uniform(0, 50, size), 1)  # coarse: ties and drops both common
    v[rng.random(size) < nan_share] = np.nan
    return v


def random_state(rng: np.random.Generator, size: int, t0: int, nan_share=0.05) -> CounterColumns:
    """A state over ``size`` rows built by the numpy fold: some rows empty, some with resets."""
    cols = CounterColumns.zeros(size)
    m = size * 3
    kid = rng.integers(0, size, m)
    t = t0 + rng.integers(0, 20, m)
    keep = rng.random(m) < 0.8
    _fold_general(cols, kid[keep], t[keep], _values(rng, m, nan_share)[keep])
    return cols


def random_pair(rng: np.random.Generator, size: int) -> tuple[CounterColumns, CounterColumns]:
    """An early and a late state; the late one may start on the early one's last timestamp."""
    early = random_state(rng, size, 0)
    late = random_state(rng, size, 19)  # t in 19..38: seams share timestamp 19 often
    if rng.random() < 0.5:  # also the steadily scraped case: every row on both sides
        early.n[early.n == 0] = 1
        late.n[late.n == 0] = 1
    return early, late


@pytest.mark.parametrize("seed", range(12))
def test_merge_pair_kernel_equals_the_numpy_merge(seed: int) -> None:
    rng = np.random.default_rng(seed)
    early, late = random_pair(rng, int(rng.integers(1, 300)))
    before = (_copy(early), _copy(late))
    assert_same_state(merge_pair(early, late), merge_pair_numpy(early, late))
    assert_same_state(early, before[0])  # inputs untouched
    assert_same_state(late, before[1])


def test_merge_pair_kernel_on_empty_columns_gives_empty_columns() -> None:
    merged = merge_pair(CounterColumns.zeros(0), CounterColumns.zeros(0))
    assert all(getattr(merged, c).shape == (0,) for c in _COLS)


@pytest.mark.parametrize("seed", range(6))
def test_merging_in_place_into_the_early_state_equals_a_fresh_merge(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    early, late = random_pair(rng, 200)
    expected = merge_pair_numpy(_copy(early), late)
    arrays = tuple(getattr(early, c) for c in _COLS)
    merge_into_kernel(*arrays, *(getattr(late, c) for c in _COLS), *arrays)
    assert_same_state(early, expected)


def _distinct_batch(rng: np.random.Generator, size: int, t0: int):
    kid = np.sort(rng.choice(size, int(rng.integers(1, size + 1)), replace=False))
    t = t0 + rng.integers(0, 25, kid.shape[0])  # some at or before the folded last_t
    return kid.astype(np.int64), t.astype(np.int64), _values(rng, kid.shape[0], 0.05)


@pytest.mark.parametrize("seed", range(12))
def test_folding_ascending_ids_equals_the_numpy_folds(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    size = int(rng.integers(1, 300))
    state = random_state(rng, size, 0)
    kid, t, v = _distinct_batch(rng, size, 10)
    by_kernel, by_sort, by_scatter = _copy(state), _copy(state), _copy(state)
    skipped = fold_sorted(by_kernel, kid, t, v)
    assert skipped == _fold_general(by_sort, kid, t, v)
    assert skipped == _fold_one_each(by_scatter, kid, t, v)
    assert_same_state(by_kernel, by_sort)
    assert_same_state(by_kernel, by_scatter)


def test_the_fold_kernel_refuses_unsorted_repeated_or_out_of_range_ids_unchanged() -> None:
    rng = np.random.default_rng(7)
    state = random_state(rng, 50, 0)
    before = _copy(state)
    t, v = np.array([30, 31], np.int64), np.array([1.0, 2.0])
    arrays = tuple(getattr(state, c) for c in _COLS)
    for kid in ([3, 3], [4, 2], [10, 50]):
        assert fold_distinct_kernel(*arrays, np.array(kid, np.int64), t, v) == -1
    assert_same_state(state, before)


@pytest.mark.parametrize("seed", range(10))
def test_fold_sorted_with_repeated_keys_still_equals_the_sorting_fold(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    state = random_state(rng, 80, 0)
    kid = rng.integers(0, 80, 200)
    t, v = 10 + rng.integers(0, 25, 200), _values(rng, 200, 0.05)
    a, b = _copy(state), _copy(state)
    assert fold_sorted(a, kid, t, v) == _fold_general(b, kid, t, v)
    assert_same_state(a, b)


@pytest.mark.parametrize("seed", range(10))
def test_fold_parts_equals_the_numpy_folds_it_replaces(seed: int) -> None:
    """Parts in time order (one scrape, then the next scrape's few samples): the numpy scatter
    fold of each part in turn (a key dropping in both parts adds its resets in two steps). A
    later part with an older or equal sample of a key: one sorting fold of the concatenation."""
    rng = np.random.default_rng(400 + seed)
    size = 120
    state = random_state(rng, size, 0)
    in_order = seed % 2 == 1
    first = _distinct_batch(rng, size, 10)
    second = _distinct_batch(rng, size, 36 if in_order else 20)
    a, b = _copy(state), _copy(state)
    skipped = fold_parts(a, [first, second])
    if in_order:
        expected = _fold_one_each(b, *first) + _fold_one_each(b, *second)
    else:
        expected = _fold_general(b, *(np.concatenate(x) for x in zip(first, second, strict=True)))
    assert skipped == expected
    assert_same_state(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_take_present_gathers_the_asked_rows_that_hold_data(seed: int) -> None:
    rng = np.random.default_rng(500 + seed)
    cols = random_state(rng, 100, 0)
    idx = rng.choice(100, int(rng.integers(0, 100)), replace=False).astype(np.int64)
    rows = idx * 7 + 3
    kept, *arrays = take_present(*(getattr(cols, c) for c in _COLS), idx, rows)
    has = cols.n[idx] > 0
    np.testing.assert_array_equal(kept, rows[has])
    expected = CounterColumns(*(getattr(cols, c)[idx][has] for c in _COLS))
    assert_same_state(CounterColumns(*arrays), expected)


def test_evict_rows_empties_rows_and_says_whether_any_data_is_left() -> None:
    rng = np.random.default_rng(9)
    cols = random_state(rng, 40, 0)
    held = np.flatnonzero(cols.n > 0)
    assert evict_rows(cols.n, cols.resets, held[:-1])
    assert np.count_nonzero(cols.n) == 1 and np.count_nonzero(cols.resets[held[:-1]]) == 0
    assert not evict_rows(cols.n, cols.resets, held[-1:])
    assert not cols.n.any()


@pytest.mark.parametrize("n_panes", [1, 2, 3, 6])
@pytest.mark.parametrize("seed", range(4))
def test_merging_asked_rows_of_panes_equals_the_stacked_merge(n_panes: int, seed: int) -> None:
    """Panes with empty rows (gaps), seams sharing a timestamp, drops across seams, NaNs;
    dense, sparse and unsorted asked rows; rows without data are left out."""
    rng = np.random.default_rng(600 + seed * 10 + n_panes)
    size = 200
    panes = [random_state(rng, size, 19 * p) for p in range(n_panes)]
    if seed % 2:  # mostly steady series: every pane holds most rows
        for pane in panes:
            pane.n[(pane.n == 0) & (rng.random(size) < 0.9)] = 1
    for rows in (np.arange(size), rng.permutation(size)[:30], np.sort(rng.choice(size, 150))):
        rows = np.unique(rows) if rows.shape[0] == 150 else rows
        columns = (tuple(getattr(p, c) for p in panes) for c in _COLS)
        kept, *arrays = merge_panes_take(*columns, rows.astype(np.int64))
        merged = merge_ordered(panes, rows)
        has = merged.n > 0
        np.testing.assert_array_equal(kept, rows[has])
        expected = CounterColumns(*(getattr(merged, c)[has] for c in _COLS))
        assert_same_state(CounterColumns(*arrays), expected)


def test_due_rows_are_the_groups_whose_close_passes_the_window_end() -> None:
    rng = np.random.default_rng(13)
    gids = rng.permutation(500).astype(np.int64)
    old = rng.integers(0, 6, 500) * 10
    target = old + rng.integers(0, 4, 500) * 10
    for w in range(0, 100, 10):
        expected = gids[(old < w) & (w <= target)]
        np.testing.assert_array_equal(due_rows(gids, old, target, w), expected)


def test_per_series_windows_with_the_kernels_equal_stacked_merges() -> None:
    """End to end through ``ColumnarCounters``: one scrape per pane over 300 series, some
    samples exactly on pane ends (those groups close one scrape later), resets and NaNs; every
    emitted window equals the numpy merge chain of its panes' folded states. Values are whole
    numbers: the two-stack merge associates the reset sums differently from a left-to-right
    chain, exact for whole numbers (the kernels' own bit-equality is tested above)."""
    spec = WindowSpec(size_ms=60_000, slide_ms=10_000)
    rng = np.random.default_rng(11)
    size = 300
    counters = ColumnarCounters(spec, max_buffer=1000)
    reference: dict[int, CounterColumns] = {}
    gids = np.arange(size, dtype=np.int64)
    closed = np.zeros(size, dtype=np.int64)
    emitted = 0
    for k in range(1, 30):
        ts = k * 10_000 + rng.integers(0, 1000, size)
        ts[rng.random(size) < 0.05] = k * 10_000  # on the pane end of pane k
        vals = np.round(_values(rng, size, 0.02))
        panes = -(-ts // 10_000) * 10_000
        counters.update(gids, panes, ts, vals, size)
        for p in np.unique(panes).tolist():
            sel = panes == p
            ref = reference.setdefault(p, CounterColumns.zeros(size))
            _fold_general(ref, gids[sel], ts[sel], vals[sel])
        target = (ts - 1) // 10_000 * 10_000  # a group's windows up to its newest pane's start
        for rows, w, cols in counters.close(gids, closed, target, size):
            ends = [p for p in range(w - 50_000, w + 1, 10_000) if p in reference]
            merged = reference[ends[0]]
            for p in ends[1:]:
                merged = merge_pair_numpy(merged, reference[p])
            assert (merged.n[rows] > 0).all()
            expected = CounterColumns(*(getattr(merged, c)[rows] for c in _COLS))
            assert_same_state(CounterColumns(*(cols[c] for c in _COLS)), expected)
            emitted += rows.shape[0]
        closed = np.maximum(closed, target)
    assert emitted > 20 * size  # most (group, window) pairs were emitted and checked
