from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.udfs import reference as ref
from tests.udfs.strategies import assert_same, grid_st, make_range_array, series_st
from udfs import range_functions as rf

EXACT = sorted(ref.SIMPLE)


def _windows(series, eval_times, range_ms):
    return ref.brute_windows(series, eval_times, range_ms)


@pytest.mark.parametrize("name", EXACT)
@settings(max_examples=60, deadline=None)
@given(series=series_st(), grid=grid_st())
def test_window_kernel_matches_reference_bit_for_bit(name, series, grid):
    eval_times, range_ms = grid
    ra = make_range_array(series, eval_times, range_ms)
    got, present = getattr(rf, name)(ra)
    want = [ref.SIMPLE[name](w) for w in _windows(series, eval_times, range_ms)]
    assert_same(got, want, present)


@pytest.mark.parametrize(
    ("name", "is_counter", "is_rate"),
    [("rate", True, True), ("increase", True, False), ("delta", False, False)],
)
@settings(max_examples=80, deadline=None)
@given(series=series_st(), grid=grid_st())
def test_extrapolated_rate_matches_reference(name, is_counter, is_rate, series, grid):
    eval_times, range_ms = grid
    ra = make_range_array(series, eval_times, range_ms)
    got, present = getattr(rf, name)(ra)
    want = [
        ref.extrapolated_rate(w, eval_times[k % len(eval_times)], range_ms, is_counter, is_rate)
        for k, w in enumerate(_windows(series, eval_times, range_ms))
    ]
    assert_same(got, want, present)


@settings(max_examples=60, deadline=None)
@given(series=series_st(), grid=grid_st(), phi=st.sampled_from([-0.5, 0, 0.25, 0.5, 0.9, 1, 2]))
def test_quantile_over_time_matches_reference(series, grid, phi):
    eval_times, range_ms = grid
    ra = make_range_array(series, eval_times, range_ms)
    got, present = rf.quantile_over_time(ra, np.full(ra.n_windows, phi))
    want = [ref.quantile_over_time(w, phi) for w in _windows(series, eval_times, range_ms)]
    assert_same(got, want, present)


@settings(max_examples=60, deadline=None)
@given(series=series_st(), grid=grid_st(), dur=st.sampled_from([0.0, 60.0, -3600.0]))
def test_predict_linear_matches_reference_with_intercept_at_eval_time(series, grid, dur):
    eval_times, range_ms = grid
    ra = make_range_array(series, eval_times, range_ms)
    got, present = rf.predict_linear(ra, np.full(ra.n_windows, dur))
    want = [
        ref.predict_linear(w, eval_times[k % len(eval_times)], dur)
        for k, w in enumerate(_windows(series, eval_times, range_ms))
    ]
    assert_same(got, want, present)


@settings(max_examples=60, deadline=None)
@given(
    series=series_st(),
    grid=grid_st(),
    sf=st.sampled_from([0.1, 0.5, 0.9]),
    tf=st.sampled_from([0.1, 0.3, 0.99]),
)
def test_double_exponential_smoothing_matches_reference(series, grid, sf, tf):
    eval_times, range_ms = grid
    ra = make_range_array(series, eval_times, range_ms)
    n = ra.n_windows
    got, present = rf.double_exponential_smoothing(ra, np.full(n, sf), np.full(n, tf))
    want = [
        ref.double_exponential_smoothing(w, sf, tf) for w in _windows(series, eval_times, range_ms)
    ]
    assert_same(got, want, present)
