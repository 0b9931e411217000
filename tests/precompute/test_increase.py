"""Increase state merged across panes gives exactly Prometheus' extrapolated increase/rate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.accumulators.increase import IncreaseAccumulator, MultipleIncreaseAccumulator


def reference_extrapolated_rate(ts_ms, vals, range_start, range_end, is_rate):
    """Straightforward transcription of Prometheus v3 ``extrapolatedRate`` for float counters,
    over the samples inside ``(range_start, range_end]``."""
    pts = [(t, v) for t, v in zip(ts_ms, vals, strict=True) if range_start < t <= range_end]
    if len(pts) < 2:
        return None
    first_t, first_v = pts[0]
    last_t, last_v = pts[-1]
    result = last_v - first_v
    prev = first_v
    for _, v in pts[1:]:
        if v < prev:
            result += prev
        prev = v
    to_start = (first_t - range_start) / 1000
    to_end = (range_end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    avg = sampled / (len(pts) - 1)
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if result > 0 and first_v >= 0:
        to_zero = sampled * (first_v / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= (range_end - range_start) / 1000
    return result * factor


def counter_series(seed: int, n: int):
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(500, 15_000, n)).astype(np.int64)
    vals, v = [], rng.uniform(0, 100)
    for _ in range(n):
        v = rng.uniform(0, 5) if rng.random() < 0.08 else v + rng.exponential(3)
        vals.append(v)
    return ts, np.array(vals)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    slide_s=st.sampled_from([5, 10, 30]),
    panes=st.integers(1, 12),
    shuffle=st.booleans(),
)
def test_merged_pane_states_equal_prometheus_increase_and_rate(seed, slide_s, panes, shuffle):
    ts, vals = counter_series(seed, 300)
    slide = slide_s * 1000
    pane_of = -((-ts) // slide) * slide
    states = {}
    rng = np.random.default_rng(seed)
    for p in np.unique(pane_of).tolist():
        idx = np.flatnonzero(pane_of == p)
        if shuffle:  # out-of-order arrival inside a pane, in two batches
            idx = rng.permutation(idx)
        acc = IncreaseAccumulator()
        half = len(idx) // 2
        acc.update(vals[idx[:half]], ts[idx[:half]])
        acc.update(vals[idx[half:]], ts[idx[half:]])
        states[p] = acc
    window = panes * slide
    for end in range(int(pane_of.min()), int(pane_of.max()) + 1, slide):
        merged = IncreaseAccumulator()
        for p in range(end - window + slide, end + 1, slide):
            if p in states:
                merged.merge(states[p])
        for is_rate in (False, True):
            want = reference_extrapolated_rate(ts, vals, end - window, end, is_rate)
            got = merged.extrapolated(end - window, end, is_rate)
            if want is None:
                assert got is None
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_multiple_increase_keeps_separate_state_per_key():
    acc = MultipleIncreaseAccumulator()
    keys = [("a",), ("b",)]
    acc.update(
        np.array([1.0, 10.0, 3.0, 5.0, 0.5]),
        np.array([1, 1, 2, 2, 3], dtype=np.int64),
        keys,
        np.array([0, 1, 0, 1, 1]),
    )
    got = {e["key"]: (e["stats"]["count"], e["stats"]["increase"]) for e in acc.stats()["keys"]}
    assert got == {("a",): (2, 2.0), ("b",): (3, 0.5 - 10.0 + 10.0 + 5.0)}  # two resets


def test_sample_older_than_the_folded_state_is_counted_not_misapplied():
    acc = IncreaseAccumulator(max_buffer=2)
    acc.update(np.array([1.0, 2.0, 3.0]), np.array([10, 20, 30], dtype=np.int64))  # folds
    acc.update(np.array([0.0]), np.array([5], dtype=np.int64))
    s = acc.stats()
    assert (s["count"], s["increase"], acc.out_of_order) == (3, 2.0, 1)


def test_multiple_increase_columns_align_with_keys_after_pane_merges():
    table = [("a",), ("b",), ("c",)]
    first, second = MultipleIncreaseAccumulator(), MultipleIncreaseAccumulator()
    first.update(np.array([1.0, 2.0]), np.array([1, 2], dtype=np.int64), table, np.array([0, 0]))
    second.update(np.array([5.0, 1.0]), np.array([11, 12], dtype=np.int64), table, np.array([2, 2]))
    window = first.empty_like()
    window.merge(first)
    window.merge(second)
    cols = window.columns()
    got = dict(
        zip(window.keys(), zip(cols.n.tolist(), cols.increase().tolist(), strict=True), strict=True)
    )
    assert got == {("a",): (2, 1.0), ("c",): (2, 1.0 - 5.0 + 5.0)}


def test_window_wrapped_from_a_row_serializes_like_a_materialized_one():
    from precompute.accumulators.base import Accumulator

    acc = IncreaseAccumulator.from_row((5, 1000, 1.5, 9000, 7.25, 3.0), 10_000)
    fast = acc.to_bytes()
    assert acc.stats()["increase"] == 8.75  # materializes the columns
    assert acc.to_bytes() == fast
    assert Accumulator.from_bytes(fast).stats() == acc.stats()
