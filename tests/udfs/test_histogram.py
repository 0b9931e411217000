from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.udfs.reference_histogram import bucket_fraction, bucket_quantile
from tests.udfs.strategies import assert_same
from udfs.histogram import histogram_fraction, histogram_quantile

INF, NAN = math.inf, math.nan
BOUNDS = [-INF, -1.0, 0.0, 0.5, 1.0, 1.0, 2.5, 10.0, INF]
count_st = st.one_of(
    st.integers(0, 20).map(float), st.floats(0, 100, allow_nan=False), st.just(NAN)
)


@st.composite
def histograms_st(draw):
    """Groups of buckets (sorted by bound, duplicates allowed), counts per step, presence."""
    n_groups = draw(st.integers(1, 3))
    n_steps = draw(st.integers(1, 3))
    bounds, offsets = [], [0]
    for _ in range(n_groups):
        bs = sorted(draw(st.lists(st.sampled_from(BOUNDS), min_size=0, max_size=6)))
        bounds += bs
        offsets.append(len(bounds))
    n = len(bounds)
    counts = np.array(
        draw(
            st.lists(st.lists(count_st, min_size=n_steps, max_size=n_steps), min_size=n, max_size=n)
        )
    ).reshape(n, n_steps)
    present = (
        np.array(
            draw(
                st.lists(
                    st.lists(st.booleans(), min_size=n_steps, max_size=n_steps),
                    min_size=n,
                    max_size=n,
                )
            )
        )
        .reshape(n, n_steps)
        .astype(bool)
    )
    if draw(st.booleans()):
        present[:] = True
        counts = np.maximum.accumulate(np.nan_to_num(counts), axis=0)  # mostly monotonic
    return np.array(bounds), counts, np.array(offsets), present


def _cells(bounds, counts, offsets, present):
    for g in range(len(offsets) - 1):
        for k in range(counts.shape[1]):
            rows = [r for r in range(offsets[g], offsets[g + 1]) if present[r, k]]
            yield g, k, [(float(bounds[r]), float(counts[r, k])) for r in rows]


@settings(max_examples=200, deadline=None)
@given(h=histograms_st(), q=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0, -0.1, 1.1, NAN]))
def test_histogram_quantile_matches_reference(h, q):
    bounds, counts, offsets, present = h
    out, seen = histogram_quantile(np.full(counts.shape[1], q), bounds, counts, offsets, present)
    want = np.full(out.shape, None, dtype=object)
    for g, k, buckets in _cells(bounds, counts, offsets, present):
        if buckets:
            want[g, k] = bucket_quantile(q, buckets)
    assert_same(out.ravel(), list(want.ravel()), seen.ravel())


@settings(max_examples=200, deadline=None)
@given(
    h=histograms_st(),
    lo=st.sampled_from([-INF, -2.0, 0.0, 0.25, 1.0, 3.0, NAN]),
    hi=st.sampled_from([INF, -0.5, 0.0, 0.75, 1.0, 5.0, 20.0]),
)
def test_histogram_fraction_matches_reference(h, lo, hi):
    bounds, counts, offsets, present = h
    n_steps = counts.shape[1]
    out, seen = histogram_fraction(
        np.full(n_steps, lo), np.full(n_steps, hi), bounds, counts, offsets, present
    )
    want = np.full(out.shape, None, dtype=object)
    for g, k, buckets in _cells(bounds, counts, offsets, present):
        if buckets:
            want[g, k] = bucket_fraction(lo, hi, buckets)
    assert_same(out.ravel(), list(want.ravel()), seen.ravel())


def _one_quantile(q, bounds, counts):
    out, _ = histogram_quantile(
        np.array([q]),
        np.array(bounds),
        np.array(counts, float)[:, None],
        np.array([0, len(bounds)]),
    )
    return float(out[0, 0])


def test_quantile_interpolates_within_the_bucket_holding_the_rank():
    # 10 observations: 2 in (0, 1], 6 in (1, 2], 2 in (2, +Inf].
    assert _one_quantile(0.5, [1, 2, INF], [2, 8, 10]) == pytest.approx(1.5)
    assert _one_quantile(0.1, [1, 2, INF], [2, 8, 10]) == pytest.approx(0.5)
    # Rank in the +Inf bucket: the highest finite bound.
    assert _one_quantile(0.95, [1, 2, INF], [2, 8, 10]) == 2.0


def test_quantile_needs_an_inf_bucket_and_observations():
    assert math.isnan(_one_quantile(0.5, [1, 2], [2, 8]))
    assert math.isnan(_one_quantile(0.5, [1, INF], [0, 0]))
    assert math.isnan(_one_quantile(0.5, [INF], [5]))
    assert _one_quantile(-1, [1, INF], [1, 2]) == -INF
    assert _one_quantile(2, [1, INF], [1, 2]) == INF


def test_quantile_forces_monotonic_counts():
    # The dip at le=2 is removed before searching.
    assert _one_quantile(0.75, [1, 2, 3, INF], [4, 3, 8, 8]) == pytest.approx(2.5)  # not 2.6


def test_first_bucket_with_non_positive_bound_returns_that_bound():
    assert _one_quantile(0.1, [-1, 1, INF], [5, 10, 10]) == -1.0


def test_fraction_of_observations_below_a_bound():
    out, _ = histogram_fraction(
        np.array([0.0]),
        np.array([1.5]),
        np.array([1.0, 2.0, INF]),
        np.array([[2.0], [8.0], [10.0]]),
        np.array([0, 3]),
    )
    assert out[0, 0] == pytest.approx(0.5)
