"""The wavelet-matrix k-th smallest kernel and the ``quantile_over_time`` path built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.udfs import reference as ref
from tests.udfs.strategies import NASTY, make_range_array, series_st
from udfs import over_time
from udfs import range_functions as rf
from udfs.range_array import RangeArray
from udfs.range_kth import kth_smallest, worth_it
from udfs.windows import range_windows

kth_value_st = st.one_of(st.sampled_from(NASTY), st.integers(-3, 3).map(float))


def _go_sorted(window: np.ndarray) -> np.ndarray:
    """Go's order with ties in sample order (what Go's insertion sort does)."""
    return np.concatenate(
        (window[np.isnan(window)], np.sort(window[~np.isnan(window)], kind="stable"))
    )


def _bits(a: np.ndarray) -> np.ndarray:
    """Bit patterns with every NaN made the same NaN, so -0.0 and +0.0 differ."""
    return np.where(np.isnan(a), np.nan, a).view(np.int64)


@st.composite
def windows_st(draw):
    values = np.array(draw(st.lists(kth_value_st, min_size=1, max_size=80)))
    n = values.shape[0]
    n_win = draw(st.integers(1, 12))
    lo = np.array(draw(st.lists(st.integers(0, n - 1), min_size=n_win, max_size=n_win)))
    size = np.array(draw(st.lists(st.integers(1, n), min_size=n_win, max_size=n_win)))
    hi = np.minimum(lo + size, n)
    if draw(st.booleans()):  # a full window, the union of all the others
        lo, hi = np.append(lo, 0), np.append(hi, n)
    return values, lo, hi


@settings(max_examples=150, deadline=None)
@given(case=windows_st(), chunk=st.sampled_from([1, 7, 64, 1 << 18]))
def test_kth_smallest_is_every_order_statistic_of_the_go_sorted_window(case, chunk):
    values, lo, hi = case
    sizes = hi - lo
    window = np.repeat(np.arange(lo.shape[0]), sizes)
    k = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    (got,) = kth_smallest(values, lo[window], hi[window], [k], chunk_cells=chunk)
    want = np.concatenate([_go_sorted(values[a:b]) for a, b in zip(lo, hi, strict=True)])
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_kth_smallest_answers_several_k_arrays_from_one_index():
    values = np.array([5.0, np.nan, 1.0, -np.inf, 3.0, 3.0, np.inf, -0.0, 0.0])
    lo, hi = np.array([0, 2, 6]), np.array([5, 9, 9])
    first, last = kth_smallest(values, lo, hi, [np.zeros(3, np.int64), hi - lo - 1])
    assert math.isnan(first[0]) and first[1] == -np.inf and first[2] == 0.0
    assert np.signbit(first[2])  # -0.0 comes first: it is the earlier sample
    np.testing.assert_array_equal(last, [5.0, np.inf, np.inf])


def test_kth_smallest_rejects_empty_windows_and_accepts_none():
    with pytest.raises(ValueError, match="non-empty"):
        kth_smallest(np.ones(3), np.array([1]), np.array([1]), [np.zeros(1, np.int64)])
    (out,) = kth_smallest(np.ones(3), np.zeros(0, np.int64), np.zeros(0, np.int64), [np.zeros(0)])
    assert out.shape == (0,)


@st.composite
def overlapping_st(draw):
    """Series and a step shorter than the range, so windows share most samples."""
    series = draw(series_st(max_series=3, max_len=40, values=kth_value_st))
    range_ms = draw(st.sampled_from([30_000, 60_000, 200_000]))
    step = draw(st.integers(1_000, 40_000))
    start = draw(st.integers(-20_000, 100_000))
    n_steps = draw(st.integers(1, 12))
    return series, [start + i * step for i in range(n_steps)], range_ms


phi_st = st.one_of(st.floats(0, 1), st.sampled_from([-0.5, 0.0, 0.5, 1.0, 1.5, math.nan]))


@settings(max_examples=120, deadline=None)
@given(case=overlapping_st(), phis=st.lists(phi_st, min_size=1, max_size=4))
def test_quantile_over_time_by_rank_equals_sorting_and_the_reference_bit_for_bit(case, phis):
    series, eval_times, range_ms = case
    ra = make_range_array(series, eval_times, range_ms)
    q = np.resize(np.array(phis), ra.n_windows)  # phi varies by step, as a scalar expression can
    by_rank, present_r = rf.quantile_over_time(ra, q, path="wavelet")
    by_sort, present_s = rf.quantile_over_time(ra, q, path="sort")
    np.testing.assert_array_equal(present_r, present_s)
    np.testing.assert_array_equal(_bits(by_rank[present_r]), _bits(by_sort[present_s]))
    windows = ref.brute_windows(series, eval_times, range_ms)
    want = [ref.quantile_over_time(w, float(p)) for w, p in zip(windows, q, strict=True)]
    got = [float(v) if p else None for v, p in zip(by_rank, present_r, strict=True)]
    assert [w is None for w in want] == [g is None for g in got]
    for g, w in zip(got, want, strict=True):
        if w is not None:
            assert _bits(np.array([g])) == _bits(np.array([w])), (g, w)


def _one_window(values: list[float], phi: float, path: str) -> float:
    ts = np.arange(1, len(values) + 1, dtype=np.int64) * 1000
    ra = RangeArray(np.array(values), ts, np.array([0]), np.array([len(values)]),
                    np.array([ts[-1]]), 10**9)  # fmt: skip
    out, present = rf.quantile_over_time(ra, np.array([phi]), path=path)
    assert present[0]
    return float(out[0])


@pytest.mark.parametrize("path", ["sort", "wavelet"])
@pytest.mark.parametrize("pad", [0, 40])  # 40: past Go's insertion sort, numpy's small sorts
def test_signed_zeros_keep_sample_order_on_both_paths(path, pad):
    ones = [1.0] * pad
    # Sorted in sample order: [+0, -0, -0, 1...]: the middle pair is (-0, -0) -> -0.0.
    vals = [0.0, -0.0, -0.0, *ones]
    phi = 1.5 / (len(vals) - 1)  # rank 1.5: between positions 1 and 2
    assert math.copysign(1, _one_window(vals, phi, path)) == -1
    assert math.copysign(1, _one_window(vals, 0.0, path)) == 1  # (+0, -0) -> +0.0


@pytest.mark.parametrize("path", ["sort", "wavelet"])
def test_many_mixed_signed_zeros_pick_what_a_stable_sort_picks(path):
    # numpy's default (SIMD) sort reorders -0.0/+0.0 on windows this long; Go's order for
    # ties is sample order, which the Python reference's stable sort reproduces.
    rng = np.random.default_rng(7)
    vals = np.where(rng.random(500) < 0.5, -0.0, 0.0)
    vals[rng.random(500) < 0.2] = 1.0
    for phi in np.linspace(0, 1, 37):
        got = _one_window(vals.tolist(), float(phi), path)
        want = ref.quantile(float(phi), vals.tolist())
        assert _bits(np.array([got])) == _bits(np.array([want])), phi


@pytest.mark.parametrize("path", ["sort", "wavelet"])
def test_out_of_range_and_nan_phi_need_no_values(path):
    vals = [3.0, math.nan, 1.0]
    assert _one_window(vals, -0.1, path) == -math.inf
    assert _one_window(vals, 1.1, path) == math.inf
    assert math.isnan(_one_window(vals, math.nan, path))
    assert math.isnan(_one_window(vals, 0.0, path))  # NaN sorts first
    assert _one_window(vals, 1.0, path) == 3.0


def test_quantile_over_time_skips_empty_windows_on_the_rank_path():
    ts = np.array([10_000, 20_000], dtype=np.int64)
    o, s, e = range_windows(np.array([0, 2]), ts, np.array([5_000, 20_000, 90_000]), 30_000)
    ra = RangeArray(np.array([1.0, 2.0]), ts, o, s, e, 30_000)
    out, present = rf.quantile_over_time(ra, np.full(3, 0.5), path="wavelet")
    np.testing.assert_array_equal(present, [False, True, False])
    assert out[1] == 1.5


def _sliding(n_series: int, per: int, size: int, steps: int, step: int):
    """Windows of ``size`` samples every ``step`` samples, ``steps`` per series."""
    starts = np.arange(steps) * step
    lo = (np.arange(n_series)[:, None] * per + starts[None, :]).ravel()
    return lo, lo + size


def test_cost_model_prefers_ranks_for_sliding_windows_and_sorting_for_disjoint_ones():
    # bench/sketch.py: 1220 series x 2160 samples, 1 h windows (360 samples).
    assert worth_it(*_sliding(1220, 2160, 360, 1000, 2))  # 20 s step: ~180 windows a sample
    assert worth_it(*_sliding(1220, 2160, 360, 100, 18))  # 200 s step: 20 windows a sample
    assert not worth_it(*_sliding(1220, 2160, 360, 6, 360))  # step == range: disjoint
    assert not worth_it(*_sliding(1220, 360, 360, 1, 0))  # an instant query
    assert not worth_it(np.zeros(0, np.int64), np.zeros(0, np.int64))


def test_default_path_follows_the_cost_model_and_agrees_with_sorting():
    rng = np.random.default_rng(3)
    n_series, per = 4, 2000
    ts = np.tile(np.arange(per, dtype=np.int64) * 10_000, n_series)
    vals = rng.normal(size=n_series * per).round(2)
    offsets = np.arange(n_series + 1, dtype=np.int64) * per
    eval_times = 3_600_000 + np.arange(0, 16_000_000, 20_000, dtype=np.int64)
    o, s, e = range_windows(offsets, ts, eval_times, 3_600_000)
    ra = RangeArray(vals, ts, o, s, e, 3_600_000)
    q = np.full(ra.n_windows, 0.99)
    assert over_time._overlap_pays(ra)
    default, _ = rf.quantile_over_time(ra, q)
    by_sort, _ = rf.quantile_over_time(ra, q, path="sort")
    np.testing.assert_array_equal(default, by_sort)
    with pytest.raises(ValueError, match="unknown"):
        rf.quantile_over_time(ra, q, path="fast")
