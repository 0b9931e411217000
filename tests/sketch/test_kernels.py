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
def test_step_quantiles_are_the_union_of_the_steps_window_segments(seed):
    """``KllSteps`` (all pairs at once, chunked) against a per-pair reference: the step's raw
    values sorted by numpy — Prometheus' quantile when every window is exact, otherwise within
    the rank bound of the exact ranks. Cells may hold several entries (late data)."""
    from datasketches import kll_doubles_sketch

    from planner.nodes.precomputed_scan import KllCells
    from planner.nodes.summary_merge import KllSteps
    from precompute.accumulators.kll import prometheus_quantile
    from udfs.weighted_quantile import Segments, kll_items

    rng = np.random.default_rng(seed)
    n, w, k_param = 3, 40, 16
    stride, m = int(rng.integers(1, 3)), int(rng.integers(1, 6))
    parts, flat, raw = [], [], {}
    for cell in range(n * w):
        for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
            v = rng.normal(size=int(rng.integers(1, 40)))
            if v.shape[0] > k_param and rng.random() < 0.5:
                sketch = kll_doubles_sketch(k_param)
                sketch.update(v)
                parts.append(kll_items(sketch.serialize()))
            else:
                parts.append((np.sort(v), np.ones(v.shape[0], np.int64)))
            flat.append(cell)
            raw.setdefault(cell, []).append(v)
    flat_a = np.array(flat, dtype=np.int64)
    start = np.zeros(n * w + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat_a, minlength=n * w), out=start[1:])
    cells = KllCells(Segments.build(parts), start, np.argsort(flat_a, kind="stable"))
    last = np.arange((m - 1) * stride, w, stride * int(rng.integers(1, 3)))
    idx = last[None, :] - stride * np.arange(m)[::-1, None]
    ok = rng.random((n, last.shape[0])) < 0.9
    q = rng.uniform(0, 1, size=last.shape[0])
    values, present, _ = KllSteps(cells, w, idx).quantiles(ok, q)
    eps = kll_doubles_sketch.get_normalized_rank_error(k_param, True)
    for i, j in itertools.product(range(n), range(last.shape[0])):
        vals = [x for c in idx[:, j].tolist() for x in raw.get(i * w + c, [])]
        assert present[i, j] == (ok[i, j] and bool(vals))
        if not present[i, j]:
            continue
        pooled = np.sort(np.concatenate(vals))
        sketched = any(
            (parts[r][1] != 1).any()
            for c in idx[:, j].tolist()
            for r in cells.rows[start[i * w + c] : start[i * w + c + 1]].tolist()
        )
        if not sketched:
            assert values[i, j] == prometheus_quantile(float(q[j]), pooled)
            continue
        lo = np.searchsorted(pooled, values[i, j], "left") / pooled.shape[0]
        hi = np.searchsorted(pooled, values[i, j], "right") / pooled.shape[0]
        assert lo - eps <= q[j] <= hi + eps
