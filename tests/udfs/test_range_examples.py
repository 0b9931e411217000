"""Hand-checked values for the range kernels (worked out from upstream's formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.udfs.strategies import make_range_array
from udfs import range_functions as rf


def _one(fn, points, t, range_ms, *params):
    ra = make_range_array([points], [t], range_ms)
    vals, present = fn(ra, *(np.full(1, p) for p in params))
    return float(vals[0]) if present[0] else None


STEADY = [(k * 10_000, float(k * 10)) for k in range(1, 31)]  # v(t) = t seconds, t = 10..300s


def test_rate_of_a_steady_counter_extrapolates_to_the_window_start():
    assert _one(rf.increase, STEADY, 300_000, 300_000) == pytest.approx(300.0, rel=1e-15)
    assert _one(rf.rate, STEADY, 300_000, 300_000) == pytest.approx(1.0, rel=1e-15)


def test_counter_reset_adds_the_value_before_the_reset():
    pts = [(10_000, 5.0), (20_000, 10.0), (30_000, 2.0), (40_000, 4.0)]
    assert _one(rf.increase, pts, 40_000, 40_000) == pytest.approx(12.0, rel=1e-15)
    assert _one(rf.resets, pts, 40_000, 40_000) == 1.0
    assert _one(rf.delta, pts, 40_000, 40_000) == pytest.approx(-1 * 40 / 30, rel=1e-15)


def test_counter_extrapolation_stops_at_the_zero_point_but_delta_does_not():
    pts = [(30_000, 1.0), (40_000, 11.0)]
    # Gap to the window start (30s) exceeds 1.1 x the 10s interval: extrapolate only 5s,
    # and the counter's zero point (1s before the first sample) caps it further.
    assert _one(rf.increase, pts, 40_000, 40_000) == pytest.approx(11.0, rel=1e-15)
    assert _one(rf.delta, pts, 40_000, 40_000) == pytest.approx(15.0, rel=1e-15)


def test_single_sample_window_has_no_rate_but_has_over_time_values():
    pts = [(5_000, 7.0)]
    for fn in (rf.rate, rf.increase, rf.delta, rf.irate, rf.idelta, rf.deriv):
        assert _one(fn, pts, 10_000, 60_000) is None
    assert _one(rf.changes, pts, 10_000, 60_000) == 0.0
    assert _one(rf.stddev_over_time, pts, 10_000, 60_000) == 0.0
    assert _one(rf.avg_over_time, pts, 10_000, 60_000) == 7.0


def test_empty_window_produces_nothing():
    for fn in (rf.count_over_time, rf.last_over_time, rf.changes, rf.sum_over_time):
        assert _one(fn, [(5_000, 1.0)], 100_000, 10_000) is None


def test_irate_after_a_reset_uses_the_new_value():
    pts = [(0, 100.0), (10_000, 10.0), (20_000, 3.0)]
    assert _one(rf.irate, pts, 20_000, 60_000) == pytest.approx(0.3)
    assert _one(rf.idelta, pts, 20_000, 60_000) == -7.0


def test_sums_are_kahan_compensated_like_prometheus():
    pts = [(1000, 1e100), (2000, 1.0), (3000, -1e100)]
    assert _one(rf.sum_over_time, pts, 3000, 10_000) == 1.0
    assert _one(rf.avg_over_time, pts, 3000, 10_000) == pytest.approx(1 / 3, rel=1e-15)


def test_avg_over_time_survives_overflow_with_an_incremental_mean():
    pts = [(1000, 1.7e308), (2000, 1.7e308), (3000, 1.7e308)]
    assert _one(rf.avg_over_time, pts, 3000, 10_000) == pytest.approx(1.7e308, rel=1e-15)
    assert _one(rf.sum_over_time, pts, 3000, 10_000) == math.inf


def test_constant_values_have_exactly_zero_deviation():
    pts = [(1000, 0.1), (2000, 0.1), (3000, 0.1)]
    assert _one(rf.stddev_over_time, pts, 3000, 10_000) == 0.0
    assert _one(rf.stdvar_over_time, pts, 3000, 10_000) == 0.0
    assert _one(rf.deriv, pts, 3000, 10_000) == 0.0
    assert math.isnan(_one(rf.deriv, [(1000, math.inf), (2000, math.inf)], 3000, 10_000))


def test_min_max_skip_nan_unless_everything_is_nan_and_ts_of_max_takes_the_latest_tie():
    nan = math.nan
    assert _one(rf.max_over_time, [(1000, nan), (2000, 1.0), (3000, nan)], 3000, 10_000) == 1.0
    assert math.isnan(_one(rf.min_over_time, [(1000, nan), (2000, nan)], 3000, 10_000))
    pts = [(1000, 5.0), (2000, 5.0), (3000, 1.0)]
    assert _one(rf.ts_of_max_over_time, pts, 3000, 10_000) == 2.0
    assert _one(rf.ts_of_min_over_time, pts, 3000, 10_000) == 3.0


def test_quantile_over_time_interpolates_and_sorts_nan_first():
    pts = [(1000, 4.0), (2000, 1.0), (3000, 3.0), (4000, 2.0)]
    assert _one(rf.quantile_over_time, pts, 4000, 10_000, 0.5) == 2.5
    assert _one(rf.quantile_over_time, pts, 4000, 10_000, 1.5) == math.inf
    with_nan = [(1000, math.nan), (2000, 1.0), (3000, 2.0)]
    assert math.isnan(_one(rf.quantile_over_time, with_nan, 3000, 10_000, 0.0))
    assert _one(rf.quantile_over_time, with_nan, 3000, 10_000, 1.0) == 2.0
    assert math.isnan(_one(rf.mad_over_time, with_nan, 3000, 10_000))
    assert _one(rf.mad_over_time, pts, 4000, 10_000) == 1.0


def test_changes_treats_consecutive_nans_as_unchanged():
    pts = [(1000, math.nan), (2000, math.nan), (3000, 1.0), (4000, 1.0)]
    assert _one(rf.changes, pts, 4000, 10_000) == 1.0


def test_predict_linear_extrapolates_from_the_evaluation_time():
    pts = [(0, 0.0), (10_000, 10.0), (20_000, 20.0)]
    assert _one(rf.predict_linear, pts, 30_000, 60_000, 60.0) == pytest.approx(90.0)


def test_double_exponential_smoothing_rejects_factors_outside_the_open_unit_interval():
    from promql.errors import ExecutionError

    pts = [(0, 1.0), (10_000, 2.0)]
    with pytest.raises(ExecutionError, match="invalid smoothing factor"):
        _one(rf.double_exponential_smoothing, pts, 10_000, 60_000, 1.0, 0.5)


@pytest.mark.parametrize("shape", [(7, 5), (2, 1), (1, 3), (40, 33)])
def test_extrapolation_over_column_major_cells_equals_row_major(shape):
    """The sketch path hands [series, steps] states stored column-major; the kernel walks them
    in place and must give the row-major answer bit for bit."""
    from udfs.extrapolation import extrapolated_rate

    rng = np.random.default_rng(sum(shape))
    n, k = shape
    first_t = rng.integers(0, 60_000, (n, k))
    last_t = first_t + rng.integers(0, 240_000, (n, k))
    count = rng.integers(0, 30, (n, k))
    first_v = rng.random((n, k)) * 100
    result = rng.random((n, k)) * 50
    end = np.arange(k, dtype=np.int64) * 20_000 + 300_000
    start = end - 300_000
    cols = (result, first_v, first_t, last_t, count)
    want = extrapolated_rate(*cols, start, end, counter=True, range_seconds=300.0)
    fortran = [np.asfortranarray(a) for a in cols]
    got = extrapolated_rate(*fortran, start, end, counter=True, range_seconds=300.0)
    np.testing.assert_array_equal(got, want)
