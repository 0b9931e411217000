from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.udfs import reference as ref
from tests.udfs.strategies import flatten, grid_st, series_st
from udfs.windows import instant_lookback, range_windows


@settings(max_examples=150, deadline=None)
@given(series=series_st(), grid=grid_st())
def test_range_windows_select_exactly_the_left_open_right_closed_samples(series, grid):
    eval_times, range_ms = grid
    offsets, ts, vals = flatten(series)
    o, s, e = range_windows(offsets, ts, np.array(eval_times), range_ms)
    want = ref.brute_windows(series, eval_times, range_ms)
    assert len(o) == len(want)
    for k, w in enumerate(want):
        got = list(
            zip(ts[o[k] : o[k] + s[k]].tolist(), vals[o[k] : o[k] + s[k]].tolist(), strict=True)
        )
        assert [p[0] for p in got] == [p[0] for p in w]
        assert e[k] == eval_times[k % len(eval_times)]


@settings(max_examples=150, deadline=None)
@given(series=series_st(), grid=grid_st())
def test_instant_lookback_finds_the_newest_sample_inside_the_lookback(series, grid):
    eval_times, lookback = grid
    offsets, ts, _ = flatten(series)
    idx, present = instant_lookback(offsets, ts, np.array(eval_times), lookback)
    assert idx.shape == present.shape == (len(series), len(eval_times))
    for si, s in enumerate(series):
        for k, t in enumerate(eval_times):
            want = ref.brute_lookback(s, t, lookback)
            assert present[si, k] == (want is not None)
            if want is not None:
                assert idx[si, k] == offsets[si] + want


def test_sample_exactly_at_window_start_is_excluded_and_at_end_included():
    offsets = np.array([0, 3])
    ts = np.array([1000, 2000, 3000])
    o, s, _ = range_windows(offsets, ts, np.array([3000]), 2000)
    assert (o[0], s[0]) == (1, 2)
    idx, present = instant_lookback(offsets, ts, np.array([4000, 6000]), 3000)
    assert present.tolist() == [[True, False]]
    assert idx[0, 0] == 2


def test_series_without_samples_get_empty_windows_and_no_lookback_sample():
    offsets = np.array([0, 0, 2, 2])
    ts = np.array([10, 20])
    _, s, _ = range_windows(offsets, ts, np.array([15, 25]), 100)
    assert s.tolist() == [0, 0, 1, 2, 0, 0]
    _, present = instant_lookback(offsets, ts, np.array([25]), 100)
    assert present[:, 0].tolist() == [False, True, False]


@settings(max_examples=200, deadline=None)
@given(
    series=st.lists(st.lists(st.integers(-40, 40), max_size=15), min_size=1, max_size=5),
    queries=st.lists(st.integers(-50, 50), min_size=1, max_size=12),
    regular=st.booleans(),
)
def test_histogram_and_search_window_counts_agree_with_brute_force(series, queries, regular):
    from udfs.windows import _count_le

    runs = [sorted(set(s)) for s in series]
    ts = np.array([t for r in runs for t in r], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum([len(r) for r in runs]))).astype(np.int64)
    q = np.array(queries, dtype=np.int64)
    if regular:  # an evaluation grid, once shifted by a range (as range windows query it)
        q = np.concatenate([np.arange(len(queries)) * 7 - 20, np.arange(len(queries)) * 7 - 41])
    got = _count_le(offsets, ts, q)
    for si, r in enumerate(runs):
        for k, t in enumerate(q.tolist()):
            assert got[si, k] == offsets[si] + sum(x <= t for x in r)
