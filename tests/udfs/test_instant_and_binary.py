from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs import binary
from udfs import instant_functions as fn

NAN, INF = math.nan, math.inf


def _eq(a, b) -> bool:
    return (a == b) or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize(
    ("kernel", "x", "want"),
    [
        (fn.sqrt, -1.0, NAN),
        (fn.ln, 0.0, -INF),
        (fn.ln, -1.0, NAN),
        (fn.log2, 8.0, 3.0),
        (fn.log2, 0.0, -INF),
        (fn.log2, -4.0, NAN),
        (fn.log10, 10.0, 1.0),
        (fn.log10, 0.0, -INF),
        (fn.exp, -INF, 0.0),
        (fn.sgn, -3.5, -1.0),
        (fn.sgn, 0.0, 0.0),
        (fn.sgn, NAN, NAN),
        (fn.abs_, -INF, INF),
        (fn.ceil, -0.5, -0.0),
        (fn.acosh, 0.5, NAN),
        (fn.atanh, 1.0, INF),
        (fn.deg, math.pi, 180.0),
        (fn.rad, 180.0, math.pi),
    ],
)
def test_math_functions_follow_go_edge_cases(kernel, x, want):
    assert _eq(float(kernel(np.array([x]))[0]), want)


def test_round_rounds_ties_up_and_to_nearest_multiples():
    v = np.array([-2.5, -1.5, 0.5, 1.5, 2.5, 12.3456, NAN])
    assert fn.round_(v).tolist()[:5] == [-2.0, -1.0, 1.0, 2.0, 3.0]
    assert fn.round_(np.array([12.3456]), 0.01)[0] == pytest.approx(12.35)
    assert fn.round_(np.array([17.0]), 5.0)[0] == 15.0
    assert math.isnan(fn.round_(v)[-1])


def test_tanh_is_computed_the_way_go_computes_it():
    # Go: 1 - 2/(exp(2x) + 1) from 0.625 on; libm rounds tanh(19.03) to 1, Go does not.
    assert fn.tanh(np.array([19.03]))[0] == 1 - 2 / (math.exp(38.06) + 1) < 1.0
    v = np.array([0.0, -0.0, 0.3, -0.6, 0.7, 30.0, 45.0, -math.inf, math.nan])
    out = fn.tanh(v)
    assert out[:2].tolist() == [0.0, -0.0] and math.copysign(1.0, out[1]) == -1.0
    assert out[2:6] == pytest.approx(np.tanh(v[2:6]), rel=1e-15)
    assert out[6:8].tolist() == [1.0, -1.0]
    assert math.isnan(out[8])


def test_sinh_and_cosh_overflow_where_go_does():
    # Go computes exp(|x|)/2 for |x| > 21: Inf from ~709.78 on, although cosh(710) is finite.
    v = np.array([710.0, -710.0, 700.0, 0.3, -2.0])
    assert fn.cosh(v)[:2].tolist() == [math.inf, math.inf]
    assert fn.sinh(v)[:2].tolist() == [math.inf, -math.inf]
    assert fn.cosh(v)[2:] == pytest.approx(np.cosh(v[2:]), rel=1e-15)
    assert fn.sinh(v)[2:] == pytest.approx(np.sinh(v[2:]), rel=1e-15)


def test_clamp_follows_go_math_min_max_where_infinities_beat_nan():
    v = np.array([-math.inf, math.inf, math.nan, 1.0])
    low = fn.clamp_max(v, math.nan)
    assert low[0] == -math.inf and np.isnan(low[1:]).all()
    high = fn.clamp_min(v, math.nan)
    assert high[1] == math.inf and np.isnan(high[[0, 2, 3]]).all()
    assert fn.clamp_min(v, math.inf).tolist() == [math.inf] * 4
    assert fn.clamp_max(v, -math.inf).tolist() == [-math.inf] * 4
    assert math.copysign(1.0, fn.clamp_min(np.array([-0.0]), 0.0)[0]) == 1.0
    assert math.copysign(1.0, fn.clamp_max(np.array([0.0]), -0.0)[0]) == -1.0


def test_clamp_limits_values_and_reports_empty_when_max_below_min():
    v = np.array([-5.0, 0.5, 5.0, NAN])
    assert fn.clamp(v, 0.0, 1.0).tolist()[:3] == [0.0, 0.5, 1.0]
    assert math.isnan(fn.clamp(v, 0.0, 1.0)[3])
    assert fn.clamp_min(v, 1.0).tolist()[:3] == [1.0, 1.0, 5.0]
    assert fn.clamp_max(v, 1.0).tolist()[:3] == [-5.0, 0.5, 1.0]
    assert not fn.clamp_present(2.0, 1.0)
    assert fn.clamp_present(1.0, 1.0)


def test_date_functions_match_the_upstream_test_values():
    t = np.array([1136239445.0])  # 2006-01-02 22:04:05 UTC, a Monday
    assert fn.year(t)[0] == 2006 and fn.month(t)[0] == 1 and fn.day_of_month(t)[0] == 2
    assert fn.day_of_year(t)[0] == 2 and fn.day_of_week(t)[0] == 1
    assert fn.hour(t)[0] == 22 and fn.minute(t)[0] == 4
    assert fn.days_in_month(np.array([1454284800.0]))[0] == 29  # February 2016
    assert fn.year(np.array([1230767999.0, 1230768000.0])).tolist() == [2008.0, 2009.0]
    assert math.isnan(fn.year(np.array([NAN]))[0])


@settings(max_examples=200, deadline=None)
@given(st.floats(-4e10, 4e10, allow_nan=False))
def test_date_functions_agree_with_python_datetime(x):
    d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=int(x))  # trunc to 0
    v = np.array([x])
    assert fn.year(v)[0] == d.year
    assert fn.month(v)[0] == d.month
    assert fn.day_of_month(v)[0] == d.day
    assert fn.day_of_year(v)[0] == d.timetuple().tm_yday
    assert fn.day_of_week(v)[0] == (d.weekday() + 1) % 7
    assert fn.hour(v)[0] == d.hour
    assert fn.minute(v)[0] == d.minute
    nxt = (d.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    assert fn.days_in_month(v)[0] == (nxt - d.replace(day=1)).days


def test_time_and_scalar():
    assert fn.time_(np.array([1500])).tolist() == [1.5]
    vals = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    present = np.array([[True, True, False], [False, True, False]])
    out = fn.scalar(vals, present)
    assert out[0] == 1.0 and math.isnan(out[1]) and math.isnan(out[2])


@pytest.mark.parametrize(
    ("op", "a", "b", "want"),
    [
        ("%", 5.0, 3.0, 2.0),
        ("%", -5.0, 3.0, -2.0),
        ("%", 5.0, -3.0, 2.0),
        ("%", 5.0, 0.0, NAN),
        ("%", INF, 2.0, NAN),
        ("%", 5.0, INF, 5.0),
        ("^", NAN, 0.0, 1.0),
        ("^", 1.0, NAN, 1.0),
        ("^", -1.0, INF, 1.0),
        ("^", 0.0, -1.0, INF),
        ("^", -8.0, 1 / 3, NAN),
        ("^", 2.0, 10.0, 1024.0),
        ("/", 1.0, 0.0, INF),
        ("/", -1.0, 0.0, -INF),
        ("/", 0.0, 0.0, NAN),
        ("atan2", 1.0, -INF, math.pi),
        ("-", INF, INF, NAN),
    ],
)
def test_arithmetic_matches_go_math(op, a, b, want):
    assert _eq(float(binary.arith(op, np.array([a]), np.array([b]))[0]), want)


def test_comparisons_filter_and_bool_with_nan_semantics():
    a = np.array([1.0, NAN, 2.0])
    b = np.array([1.0, NAN, 3.0])
    assert binary.compare("==", a, b).tolist() == [True, False, False]
    assert binary.compare("!=", a, b).tolist() == [False, True, True]
    assert binary.compare_bool("<", a, b).tolist() == [0.0, 0.0, 1.0]
    assert binary.compare(">=", a, 1.0).tolist() == [True, False, True]
