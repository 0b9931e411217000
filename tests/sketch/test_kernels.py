"""The vectorized merge/extrapolation kernels against readable references (seeded random cases)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from planner.nodes.summary_infer import extrapolate
from planner.nodes.summary_merge import (
    fold_counters,
    merge_counters,
    merge_moments,
    strided_prefix,
)
from precompute.accumulators.increase import CounterColumns, extrapolated_increase, fold_sorted


@pytest.mark.parametrize("seed", range(5))
def test_strided_prefix_sums_each_residue_class(seed):
    rng = np.random.default_rng(seed)
    stride = int(rng.integers(1, 5))
    x = rng.normal(size=(3, int(rng.integers(1, 30))))
    p = strided_prefix(x, stride)
    for i in range(x.shape[1]):
        np.testing.assert_allclose(p[:, i + stride], x[:, i::-stride].sum(axis=1))


@pytest.mark.parametrize("seed", range(12))
def test_moment_merges_equal_direct_sums_over_the_step_windows(seed):
    rng = np.random.default_rng(seed)
    stride, m, w = int(rng.integers(1, 4)), int(rng.integers(1, 9)), 40
    cols = {
        "sum": rng.normal(size=(4, w)),
        "count": rng.integers(0, 5, size=(4, w)),
        "min": rng.normal(size=(4, w)),
        "max": rng.normal(size=(4, w)),
    }
    empty = rng.random((4, w)) < 0.3  # windows without samples hold NaN extremes
    cols["min"][empty] = np.nan
    cols["max"][empty] = np.nan
    last = np.arange((m - 1) * stride, w, int(rng.integers(1, 3)))
    out = merge_moments(cols, last, stride, m, ("sum", "min", "max"))
    for j, e in enumerate(last.tolist()):
        idx = [e - stride * i for i in range(m)]
        np.testing.assert_allclose(out["sum"][:, j], cols["sum"][:, idx].sum(axis=1))
        np.testing.assert_array_equal(out["count"][:, j], cols["count"][:, idx].sum(axis=1))
        np.testing.assert_array_equal(out["min"][:, j], np.fmin.reduce(cols["min"][:, idx], 1))
        np.testing.assert_array_equal(out["max"][:, j], np.fmax.reduce(cols["max"][:, idx], 1))


def _window_states(ts, vs, edges):
    """One CounterColumns row per window ``(edges[i], edges[i + 1]]``, folded independently."""
    cols = {k: [] for k in ("n", "first_t", "first_v", "last_t", "last_v", "resets")}
    for lo, hi in itertools.pairwise(edges.tolist()):
        c = CounterColumns.zeros(1)
        sel = (ts > lo) & (ts <= hi)
        fold_sorted(c, np.zeros(int(sel.sum()), np.int64), ts[sel], vs[sel])
        for k in cols:
            cols[k].append(getattr(c, k)[0])
    return {k: np.array(v)[None, :] for k, v in cols.items()}


@pytest.mark.parametrize("seed", range(8))
def test_counter_windows_merged_then_extrapolated_equal_upstream_over_raw_samples(seed):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.choice(np.arange(1, 600), size=int(rng.integers(0, 40)), replace=False)) * 1000
    vs = np.cumsum(rng.exponential(2.0, ts.shape[0]))
    resets = rng.random(ts.shape[0]) < 0.1
    vs = np.where(resets, rng.uniform(0, 1, ts.shape[0]), vs)  # counter resets to small values
    window, m = 60_000, int(rng.integers(1, 10))
    edges = np.arange(0, 600_001, window)
    states = _window_states(ts, vs, edges)
    ends = edges[1:]
    last = np.arange(m - 1, ends.shape[0])
    idx = last[None, :] - np.arange(m)[::-1, None]
    merged = merge_counters(states, last, 1, m)
    reference = fold_counters(states, idx)
    for name, col in merged.items():
        present = reference["n"] > 0
        # The reset correction is a prefix-sum difference: equal up to rounding.
        np.testing.assert_allclose(col[present], reference[name][present], rtol=1e-12, err_msg=name)
    t = ends[last]
    for is_rate in (False, True):
        values, present = extrapolate(merged, t - m * window, t, is_rate)
        for j, tj in enumerate(t.tolist()):
            sel = (ts > tj - m * window) & (ts <= tj)
            want = _upstream(ts[sel], vs[sel], tj - m * window, tj, is_rate)
            assert present[0, j] == (want is not None)
            if want is not None:
                assert values[0, j] == pytest.approx(want, rel=1e-12)


def _upstream(ts, vs, start, end, is_rate):
    """A direct reading of Prometheus' extrapolatedRate over raw samples (reference)."""
    if ts.shape[0] < 2:
        return None
    resets = sum(float(vs[i - 1]) for i in range(1, vs.shape[0]) if vs[i] < vs[i - 1])
    return extrapolated_increase(
        ts.shape[0], int(ts[0]), float(vs[0]), int(ts[-1]), float(vs[-1]), resets, start, end,
        is_rate,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_sliding_sketch_merges_equal_merging_every_step_from_scratch(seed):
    from planner.nodes.summary_merge import _merge_each, merge_sketches
    from precompute.accumulators.kll import KLLAccumulator

    rng = np.random.default_rng(seed)
    n, w = 3, 60
    stride, m = int(rng.integers(1, 3)), int(rng.integers(5, 12))
    cells = np.full((n, w), None, dtype=object)
    for i in range(n):
        for c in range(w):
            if rng.random() < 0.8:  # some windows have no data
                acc = KLLAccumulator(10_000)  # exact: merges are comparable value by value
                acc.update(rng.normal(size=int(rng.integers(1, 5))), np.zeros(0, np.int64))
                cells[i, c] = acc
    step = stride * int(rng.integers(1, 3))
    last = np.arange((m - 1) * stride, w, step)
    idx = last[None, :] - stride * np.arange(m)[::-1, None]
    ok = rng.random((n, last.shape[0])) < 0.9
    got = merge_sketches(cells, idx, ok, stride)
    want = _merge_each(cells, idx, ok)
    for i, j in zip(*np.nonzero(ok), strict=True):
        a, b = got[i, j], want[i, j]
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.sorted_values(), b.sorted_values())
    assert all(c is None or c.n <= 4 for c in cells.ravel()), "inputs were not modified"
