"""Instant and range selectors end to end: lookback, staleness, offset, @, matrix results."""

from __future__ import annotations

import numpy as np
import pytest

from promql.types import ValueType
from storage.model import STALE_NAN
from tests.planner.conftest import as_dict, every, load

FOO_A = (("__name__", "foo"), ("job", "a"))


def test_instant_selector_returns_newest_sample_within_lookback(storage, engine):
    load(storage, {'foo{job="a"}': ([10_000, 20_000], [1.0, 2.0])})
    r = engine.instant_query("foo", 25_000)
    assert r.result_type == ValueType.VECTOR
    assert as_dict(r) == {FOO_A: [2.0]}
    assert r.series[0].timestamps.tolist() == [25_000]


def test_lookback_window_is_left_open(storage, engine):
    load(storage, {'foo{job="a"}': ([0], [1.0])})
    assert as_dict(engine.instant_query("foo", 299_999)) == {FOO_A: [1.0]}
    assert engine.instant_query("foo", 300_000).series == []  # (t - 5m, t] excludes t - 5m


def test_custom_lookback_delta_shortens_the_window(storage, engine):
    load(storage, {'foo{job="a"}': ([0], [1.0])})
    assert engine.instant_query("foo", 60_000, lookback_ms=30_000).series == []


def test_stale_marker_ends_series_before_lookback(storage, engine):
    load(storage, {'foo{job="a"}': ([0, 10_000, 20_000], [1.0, STALE_NAN, 3.0])})
    assert engine.instant_query("foo", 15_000).series == []
    assert as_dict(engine.instant_query("foo", 25_000)) == {FOO_A: [3.0]}


def test_stale_marker_is_skipped_inside_range_windows(storage, engine):
    load(storage, {'foo{job="a"}': ([0, 10_000, 20_000], [1.0, STALE_NAN, 3.0])})
    r = engine.instant_query("count_over_time(foo[1m])", 30_000)
    assert as_dict(r) == {(("job", "a"),): [2.0]}


def test_range_vector_instant_query_returns_raw_samples(storage, engine):
    load(storage, {'foo{job="a"}': (every(10, 7), [0, 1, 2, 3, 4, 5, 6])})
    r = engine.instant_query("foo[30s]", 60_000)
    assert r.result_type == ValueType.MATRIX
    assert r.series[0].timestamps.tolist() == [40_000, 50_000, 60_000]
    assert r.series[0].values.tolist() == [4.0, 5.0, 6.0]


def test_offset_shifts_the_evaluation_time_back(storage, engine):
    load(storage, {'foo{job="a"}': (every(10, 7), [0, 1, 2, 3, 4, 5, 6])})
    assert as_dict(engine.instant_query("foo offset 20s", 60_000)) == {FOO_A: [4.0]}


def test_at_modifier_pins_every_step_of_a_range_query(storage, engine):
    load(storage, {'foo{job="a"}': (every(10, 7), [0, 1, 2, 3, 4, 5, 6])})
    r = engine.range_query("foo @ 20", 0, 60_000, 10_000)
    assert as_dict(r) == {FOO_A: [2.0] * 7}


def test_at_start_and_end_resolve_to_the_query_range(storage, engine):
    load(storage, {'foo{job="a"}': (every(10, 7), [0, 1, 2, 3, 4, 5, 6])})
    assert as_dict(engine.range_query("foo @ start()", 10_000, 40_000, 10_000)) == {
        FOO_A: [1.0] * 4
    }
    assert as_dict(engine.range_query("foo @ end()", 10_000, 40_000, 10_000)) == {FOO_A: [4.0] * 4}


def test_range_query_matrix_skips_steps_without_samples(storage, engine):
    load(storage, {'foo{job="a"}': ([0, 400_000], [1.0, 2.0])})
    r = engine.range_query("foo", 0, 600_000, 100_000)
    s = r.series[0]
    assert s.timestamps.tolist() == [0, 100_000, 200_000, 400_000, 500_000, 600_000]
    assert s.values.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_range_query_series_are_sorted_by_labels(storage, engine):
    load(storage, {'foo{job="b"}': ([0], [1.0]), 'foo{job="a"}': ([0], [2.0])})
    r = engine.range_query("foo", 0, 60_000, 30_000)
    assert [s.labels for s in r.series] == [FOO_A, (("__name__", "foo"), ("job", "b"))]


@pytest.mark.parametrize(
    "query",
    [
        "foo",
        "rate(foo[1m])",
        "sum by (job) (rate(foo[2m]))",
        "max_over_time(foo[3m:30s])",
        "foo offset 1m",
        "foo @ 100",
        "-foo",
        "timestamp(foo)",
        "topk(1, foo)",
        "foo and on(job) bar",
        "absent(nothing)",
    ],
)
def test_middle_step_of_range_query_equals_instant_query(storage, engine, query):
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(9_000, 11_000, 60))
    load(
        storage,
        {
            'foo{job="a"}': (ts.tolist(), np.cumsum(rng.random(60)).tolist()),
            'foo{job="b"}': (ts.tolist(), np.cumsum(rng.random(60)).tolist()),
            'bar{job="a"}': (ts.tolist(), rng.random(60).tolist()),
        },
    )
    start, end, step = 100_000, 500_000, 20_000
    middle = 300_000
    rr = engine.range_query(query, start, end, step)
    ir = engine.instant_query(query, middle)
    at_middle = {}
    for s in rr.series:
        hit = s.timestamps == middle
        if hit.any():
            at_middle[s.labels] = [float(s.values[hit][0])]
    assert at_middle == as_dict(ir)
