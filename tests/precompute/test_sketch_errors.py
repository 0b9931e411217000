"""KLL and count-min errors on 1M values stay inside their documented bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from precompute.accumulators.cms import CountMinSketchAccumulator, CountMinSketchWithHeapAccumulator
from precompute.accumulators.kll import HydraKLLAccumulator, KLLAccumulator, prometheus_quantile


def test_kll_quantile_rank_error_on_1m_values_is_within_the_normalized_bound():
    rng = np.random.default_rng(11)
    values = rng.lognormal(0, 2, 1_000_000)
    panes = [KLLAccumulator(200) for _ in range(10)]
    for i, chunk in enumerate(np.array_split(values, 100)):
        panes[i % 10].update(chunk, np.empty(0, np.int64))
    merged = KLLAccumulator(200)
    for p in panes:
        merged.merge(p)
    bound = merged.rank_error()
    assert 0 < bound < 0.02
    ordered = np.sort(values)
    worst = 0.0
    for q in np.linspace(0.01, 0.99, 99):
        est = merged.quantile(float(q))
        rank = np.searchsorted(ordered, est, side="right") / len(ordered)
        worst = max(worst, abs(rank - q))
    assert worst <= bound


@pytest.mark.parametrize("n", [1, 2, 7, 200])
def test_kll_holding_every_value_answers_exactly_like_prometheus(n):
    rng = np.random.default_rng(n)
    values = rng.normal(size=n)
    acc = KLLAccumulator(200)
    acc.update(values[: n // 2], np.empty(0, np.int64))
    other = KLLAccumulator(200)
    other.update(values[n // 2 :], np.empty(0, np.int64))
    acc.merge(other)
    assert acc.is_exact
    for q in (0.0, 0.1, 0.5, 0.9, 0.99, 1.0):
        assert acc.quantile(q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12)
    assert acc.quantile(-1) == -math.inf and acc.quantile(2) == math.inf


def test_kll_past_k_values_becomes_a_sketch():
    acc = KLLAccumulator(200)
    acc.update(np.arange(201.0), np.empty(0, np.int64))
    assert not acc.is_exact and acc.n == 201


def test_prometheus_quantile_interpolates_between_ranks():
    assert prometheus_quantile(0.5, np.array([1.0, 2.0, 10.0, 20.0])) == 6.0


def test_count_min_on_1m_values_never_underestimates_and_stays_within_eps_total():
    rng = np.random.default_rng(5)
    n_keys = 20_000
    key_ids = rng.zipf(1.3, 1_000_000) % n_keys
    keys = [(f"k{i}",) for i in range(n_keys)]
    acc = CountMinSketchAccumulator(depth=5, width=2000, count_only=True)
    for chunk in np.array_split(np.arange(1_000_000), 10):
        acc.update(np.ones(chunk.shape[0]), np.empty(0, np.int64), keys, key_ids[chunk])
    truth = np.bincount(key_ids, minlength=n_keys).astype(float)
    est = acc.estimate_many(keys)
    eps, delta = acc.error_bound()
    assert eps == pytest.approx(math.e / 2000 * 1_000_000)
    assert (est >= truth).all()
    over = est - truth > eps
    assert over.mean() <= delta


def test_count_min_with_heap_reports_the_heaviest_keys():
    keys = [(f"k{i}",) for i in range(100)]
    ids = np.repeat(np.arange(100), np.arange(100) + 1)
    acc = CountMinSketchWithHeapAccumulator(depth=4, width=4096, heapsize=5)
    acc.update(np.ones(ids.shape[0]), np.empty(0, np.int64), keys, ids)
    assert [k for k, _ in acc.topk()] == [("k99",), ("k98",), ("k97",), ("k96",), ("k95",)]


def test_hydra_kll_answers_per_key_quantiles():
    rng = np.random.default_rng(2)
    keys = [("a",), ("b",)]
    ids = rng.integers(0, 2, 20_000)
    values = np.where(ids == 0, rng.normal(0, 1, 20_000), rng.normal(100, 1, 20_000))
    acc = HydraKLLAccumulator(rows=3, cols=64, k=200)
    acc.update(values, np.empty(0, np.int64), keys, ids)
    assert acc.quantile(("a",), 0.5) == pytest.approx(0.0, abs=0.1)
    assert acc.quantile(("b",), 0.5) == pytest.approx(100.0, abs=0.1)
