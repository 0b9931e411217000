from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.udfs.reference_aggregation import aggregate, select_k
from tests.udfs.strategies import assert_same, value_st
from udfs import aggregation as agg

OPS = {
    "sum": agg.sum_,
    "avg": agg.avg,
    "count": agg.count,
    "group": agg.group,
    "min": agg.min_,
    "max": agg.max_,
    "stddev": agg.stddev,
    "stdvar": agg.stdvar,
}


@st.composite
def matrix_st(draw, values=value_st):
    n_series = draw(st.integers(0, 7))
    n_steps = draw(st.integers(1, 4))
    n_groups = draw(st.integers(1, 3))
    vals = draw(hnp.arrays(np.float64, (n_series, n_steps), elements=values))
    present = draw(hnp.arrays(np.bool_, (n_series, n_steps)))
    gids = draw(hnp.arrays(np.int64, (n_series,), elements=st.integers(0, n_groups - 1)))
    return vals, present, gids, n_groups


def _check(got, want):
    (g, gp), (w, wp) = got, want
    np.testing.assert_array_equal(gp, wp)
    assert_same(g[gp], list(w[wp]), np.ones(int(wp.sum()), dtype=bool))


@pytest.mark.parametrize("path", ["prefix", "fold"])
@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=80, deadline=None)
@given(m=matrix_st())
def test_aggregation_matches_upstream_fold_bit_for_bit(op, path, m):
    vals, present, gids, n_groups = m
    original = agg._kahan_by_prefix
    if path == "fold":  # force the rank-by-rank fold instead of the cumsum formulation
        agg._kahan_by_prefix = lambda *a: None
    try:
        got = OPS[op](vals, present, gids, n_groups)
    finally:
        agg._kahan_by_prefix = original
    _check(got, aggregate(op, vals, present, gids, n_groups))


@settings(max_examples=80, deadline=None)
@given(m=matrix_st(), phi=st.sampled_from([-1.0, 0.0, 0.3, 0.5, 0.99, 1.0, 2.0, math.nan]))
def test_quantile_aggregation_matches_reference(m, phi):
    vals, present, gids, n_groups = m
    q = np.full(vals.shape[1], phi)
    want = aggregate("quantile", vals, present, gids, n_groups, q)
    _check(agg.quantile(vals, present, gids, n_groups, q), want)


@pytest.mark.parametrize("op", ["topk", "bottomk", "limitk"])
@settings(max_examples=80, deadline=None)
@given(m=matrix_st(values=st.one_of(value_st, st.integers(0, 3).map(float))), data=st.data())
def test_k_selection_matches_reference(op, m, data):
    vals, present, gids, n_groups = m
    ks = data.draw(
        hnp.arrays(
            np.float64,
            (vals.shape[1],),
            elements=st.sampled_from([0.0, 1.0, 2.0, 2.7, 5.0, 100.0, -1.0, math.nan]),
        )
    )
    got = getattr(agg, op)(vals, present, gids, n_groups, ks)
    np.testing.assert_array_equal(got, select_k(op, vals, present, gids, ks))


def test_sum_is_kahan_compensated_and_avg_survives_overflow():
    vals = np.array([[1e100], [1.0], [-1e100]])
    present = np.ones((3, 1), dtype=bool)
    gids = np.zeros(3, dtype=np.int64)
    assert agg.sum_(vals, present, gids, 1)[0][0, 0] == 1.0
    big = np.full((3, 1), 1.7e308)
    assert agg.avg(big, present, gids, 1)[0][0, 0] == pytest.approx(1.7e308, rel=1e-15)


def test_absent_series_do_not_count_and_empty_groups_are_absent():
    vals = np.array([[1.0, 2.0], [3.0, np.nan]])
    present = np.array([[True, False], [True, True]])
    out, seen = agg.count(vals, present, np.array([0, 0]), 2)
    assert out[0].tolist() == [2.0, 1.0]
    assert seen[1].tolist() == [False, False]
    mx, _ = agg.max_(vals, present, np.array([0, 0]), 2)
    assert mx[0, 0] == 3.0 and math.isnan(mx[0, 1])


def test_stddev_of_one_infinite_sample_is_nan():
    out, _ = agg.stddev(np.array([[math.inf], [1.0]]), np.ones((2, 1), bool), np.array([0, 1]), 2)
    assert math.isnan(out[0, 0]) and out[1, 0] == 0.0


def test_topk_prefers_numbers_over_nan_and_bottomk_too():
    vals = np.array([[math.nan], [1.0], [2.0]])
    present = np.ones((3, 1), dtype=bool)
    gids = np.zeros(3, dtype=np.int64)
    assert agg.topk(vals, present, gids, 1, np.array([2.0]))[:, 0].tolist() == [False, True, True]
    assert agg.bottomk(vals, present, gids, 1, np.array([1.0]))[:, 0].tolist() == [
        False,
        True,
        False,
    ]


def test_limit_ratio_splits_series_by_hash_offset():
    hashes = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)
    vals = np.zeros((3, 1))
    present = np.ones((3, 1), dtype=bool)
    gids = np.zeros(3, dtype=np.int64)
    low = agg.limit_ratio(vals, present, gids, 1, np.array([0.5]), hashes)[:, 0]
    high = agg.limit_ratio(vals, present, gids, 1, np.array([-0.5]), hashes)[:, 0]
    assert low.tolist() == [True, False, False]
    assert high.tolist() == [False, True, True]
    assert (low ^ high).all()


def test_count_values_counts_each_distinct_value_per_group_and_step():
    vals = np.array([[1.0, 2.0], [1.0, math.nan], [-0.0, math.nan]])
    present = np.ones((3, 2), dtype=bool)
    g, v, counts, _ = agg.count_values(vals, present, np.array([0, 0, 0]), 1)
    labels = [agg.format_value_label(x) for x in v]
    table = {lab: counts[i].tolist() for i, lab in enumerate(labels)}
    assert table == {"1": [2.0, 0.0], "2": [0.0, 1.0], "NaN": [0.0, 2.0], "-0": [1.0, 0.0]}
    assert (g == 0).all()


def test_format_value_label_matches_go_formatfloat_f_minus_one():
    assert agg.format_value_label(1e21) == "1000000000000000000000"
    assert agg.format_value_label(0.1) == "0.1"
    assert agg.format_value_label(-math.inf) == "-Inf"
    assert agg.format_value_label(5.0) == "5"


def test_format_value_label_pads_the_shortest_digits_of_large_values_with_zeros():
    # Go prints the shortest round-trip digits, not the float's exact decimal expansion.
    assert agg.format_value_label(4.006582132000296e46) == "4006582132000296" + "0" * 31
    assert agg.format_value_label(2.0**60) == "1152921504606847000"
    assert agg.format_value_label(-0.0) == "-0"
    assert agg.format_value_label(1e-7) == "0.0000001"
