"""Weighted-segment quantile kernels against references: the sketch library itself, Prometheus'
interpolated quantile over sorted numpy values, and exact ranks of the raw values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from precompute.accumulators.kll import prometheus_quantile
from udfs.weighted_quantile import Segments, kll_items, segment_quantiles, union_quantiles

QS = np.r_[np.linspace(0, 1, 101), 0.99, 0.999, 0.001]


def _sketch(values: np.ndarray, k: int = 200) -> kll_doubles_sketch:
    s = kll_doubles_sketch(k)
    s.update(values)
    return s


def _exact_part(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(values), np.ones(values.shape[0], np.int64)


@pytest.mark.parametrize("size", [1, 150, 201, 360, 5000, 100_000])
def test_decoded_kll_items_answer_what_the_sketch_answers(size):
    rng = np.random.default_rng(size)
    sketch = _sketch(rng.lognormal(size=size))
    items, weights = kll_items(sketch.serialize())
    assert int(weights.sum()) == sketch.n and items.shape[0] == sketch.num_retained
    seg = Segments.build([(items, weights)])
    got = segment_quantiles(seg, np.zeros(QS.shape[0], np.int64), QS)
    want = np.array([sketch.get_quantile(q) for q in QS])
    if size <= 200:  # not in estimation mode: all weights 1, so the exact rule applies
        assert seg.exact[0]
        want = np.array([prometheus_quantile(q, np.sort(items)) for q in QS])
    np.testing.assert_array_equal(got, want)


def test_empty_sketch_decodes_to_no_items():
    items, weights = kll_items(kll_doubles_sketch(200).serialize())
    assert items.shape == (0,) and weights.shape == (0,)


def test_exact_segments_equal_prometheus_quantile_bit_for_bit():
    rng = np.random.default_rng(3)
    parts = [_exact_part(rng.normal(size=int(n))) for n in rng.integers(1, 60, size=40)]
    seg = Segments.build(parts)
    rows = np.repeat(np.arange(40), QS.shape[0])
    q = np.tile(QS, 40)
    got = segment_quantiles(seg, rows, q)
    want = [prometheus_quantile(float(x), parts[r][0]) for r, x in zip(rows, q, strict=True)]
    assert got.tolist() == want  # bit-for-bit, not approximately


def test_out_of_range_and_nan_quantiles_follow_prometheus():
    seg = Segments.build([_exact_part(np.array([1.0, 2.0])), _exact_part(np.zeros(0))])
    got = segment_quantiles(seg, np.array([0, 0, 0, 1]), np.array([-0.5, 1.5, np.nan, 0.5]))
    assert got[0] == -math.inf and got[1] == math.inf
    assert math.isnan(got[2]) and math.isnan(got[3])


def test_union_of_exact_segments_is_prometheus_over_all_their_values():
    rng = np.random.default_rng(5)
    raw = [rng.normal(size=int(n)) for n in rng.integers(0, 30, size=60)]
    seg = Segments.build([_exact_part(v) for v in raw])
    groups = [rng.choice(60, size=int(rng.integers(1, 6)), replace=False) for _ in range(50)]
    starts = np.concatenate([[0], np.cumsum([g.shape[0] for g in groups])])
    members = np.concatenate(groups)
    q = rng.uniform(0, 1, size=50)
    got, exact = union_quantiles(seg, starts, members, q, chunk=37)
    assert exact.all()
    for p, g in enumerate(groups):
        want = prometheus_quantile(float(q[p]), np.sort(np.concatenate([raw[i] for i in g])))
        assert (math.isnan(want) and math.isnan(got[p])) or got[p] == want


def test_union_answers_do_not_depend_on_the_chunk_size():
    rng = np.random.default_rng(8)
    parts = [kll_items(_sketch(rng.normal(size=2000), k=50).serialize()) for _ in range(30)]
    seg = Segments.build(parts)
    starts = np.arange(0, 31, 3)
    members = rng.permutation(30)
    one, _ = union_quantiles(seg, starts, members, 0.9)
    many, _ = union_quantiles(seg, starts, members, 0.9, chunk=100)
    np.testing.assert_array_equal(one, many)


def _rank_off(sorted_values: np.ndarray, v: float, q: float) -> float:
    """Normalized distance of ``v``'s rank range from ``q`` among the raw values."""
    n = sorted_values.shape[0]
    lo = np.searchsorted(sorted_values, v, "left") / n
    hi = np.searchsorted(sorted_values, v, "right") / n
    return 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))


def test_weighted_union_of_approximate_sketches_stays_within_the_rank_bound():
    # Six windows of different sizes and distributions per pair, some exact, some sketched:
    # the union's rank error against the exact ranks of all raw values stays within ε.
    rng = np.random.default_rng(13)
    k = 100
    eps = kll_doubles_sketch.get_normalized_rank_error(k, True)
    raw, parts = [], []
    for i in range(24):
        v = rng.lognormal(i % 3, 1, size=int(rng.integers(50, 4000)))
        raw.append(v)
        parts.append(kll_items(_sketch(v, k).serialize()) if v.shape[0] > k else _exact_part(v))
    seg = Segments.build(parts)
    starts = np.arange(0, 25, 6)
    members = np.arange(24)
    worst = 0.0
    for q in (0.01, 0.25, 0.5, 0.9, 0.99):
        got, exact = union_quantiles(seg, starts, members, q)
        assert not exact.any()
        for p in range(4):
            all_values = np.sort(np.concatenate(raw[6 * p : 6 * p + 6]))
            worst = max(worst, _rank_off(all_values, float(got[p]), q))
    assert worst <= eps


def test_bounded_search_equals_searchsorted_within_each_segment():
    from udfs.weighted_quantile import search_right

    rng = np.random.default_rng(21)
    sizes = rng.integers(0, 50, size=300)
    hi = np.cumsum(sizes)
    lo = hi - sizes
    a = np.cumsum(rng.integers(1, 5, size=int(hi[-1])))
    rows = rng.integers(0, 300, size=2000)
    x = rng.integers(-5, int(a[-1]) + 5, size=2000)
    got = search_right(a, x, lo[rows], hi[rows])
    want = [
        lo[r] + np.searchsorted(a[lo[r] : hi[r]], v, "right") for r, v in zip(rows, x, strict=True)
    ]
    np.testing.assert_array_equal(got, want)


def test_taking_and_concatenating_segments_keeps_their_answers():
    from udfs.weighted_quantile import concat, take

    rng = np.random.default_rng(17)
    parts = [kll_items(_sketch(rng.normal(size=int(n)), k=20).serialize()) for n in (5, 90, 400)]
    parts += [_exact_part(rng.normal(size=7)), _exact_part(np.zeros(0))]
    seg = Segments.build(parts)
    rows = np.array([4, 2, 0, 2, 3, 1])
    both = concat(take(seg, rows), seg)
    for q in QS:
        want = segment_quantiles(seg, rows, q)
        np.testing.assert_array_equal(segment_quantiles(both, np.arange(6), q), want)
        np.testing.assert_array_equal(segment_quantiles(both, rows + 6, q), want)


def test_segment_cumulative_weights_restart_per_segment_and_widen_past_int32():
    from udfs.weighted_quantile import local_cumsum

    got = local_cumsum(np.array([1, 2, 4, 1, 1, 8]), np.array([2, 0, 3, 1]))
    assert got.dtype == np.int32 and got.tolist() == [1, 3, 4, 5, 6, 8]
    big = local_cumsum(np.array([2**30, 2**30, 1]), np.array([3]))
    assert big.dtype == np.int64 and big.tolist() == [2**30, 2**31, 2**31 + 1]
