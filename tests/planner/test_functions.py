"""Aggregations, range and instant functions, subqueries, absent, sort and count_values."""

from __future__ import annotations

import math

import pytest

from planner.engine import Engine, EngineOptions
from promql.errors import ExecutionError
from promql.types import ValueType
from tests.planner.conftest import as_dict, every, load

T = 300_000


@pytest.fixture
def counters(storage):
    load(
        storage,
        {
            # 1 per second, with a reset to 0 at t=150s
            'req_total{job="a"}': (
                every(15, 21),
                [i * 15.0 for i in range(10)] + [i * 15.0 for i in range(11)],
            ),
            'req_total{job="b"}': (every(15, 21), [i * 30.0 for i in range(21)]),
            'gauge{job="a"}': (every(15, 21), [float(i % 4) for i in range(21)]),
        },
    )
    return storage


def test_rate_handles_a_counter_reset(counters, engine):
    r = engine.instant_query('rate(req_total{job="a"}[1m])', T)
    assert as_dict(r) == {(("job", "a"),): [pytest.approx(1.0)]}


def test_rate_over_a_non_counter_name_adds_an_info(counters, engine):
    r = engine.instant_query("rate(gauge[1m])", T)
    assert r.infos == [
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "gauge" (1:6)'
    ]


def test_sum_by_and_without_group_series(counters, engine):
    by = engine.instant_query("sum by (job) (req_total)", T)
    assert as_dict(by) == {(("job", "a"),): [150.0], (("job", "b"),): [600.0]}
    without = engine.instant_query("sum without (job) (req_total)", T)
    assert as_dict(without) == {(): [750.0]}


def test_topk_orders_an_instant_result_by_value(counters, engine):
    r = engine.instant_query("topk(2, req_total)", T)
    assert r.ordered
    assert [dict(s.labels)["job"] for s in r.series] == ["b", "a"]


def test_topk_with_nan_parameter_is_an_error(counters, engine):
    with pytest.raises(ExecutionError, match="Parameter value is NaN"):
        engine.instant_query("topk(NaN, req_total)", T)


def test_quantile_out_of_range_warns(counters, engine):
    r = engine.instant_query("quantile(2, req_total)", T)
    assert r.warnings == ["PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"]
    assert as_dict(r) == {(): [math.inf]}


def test_count_values_makes_one_series_per_value(counters, engine):
    r = engine.instant_query('count_values("v", req_total / req_total or on(__name__) gauge)', T)
    assert as_dict(r) == {(("v", "1"),): [2.0], (("v", "0"),): [1.0]}


def test_count_values_label_named_like_a_grouped_label_replaces_it_before_grouping(
    counters, engine
):
    # Upstream sets the value label first, so job="a"/job="b" do not split the groups.
    r = engine.instant_query('count_values by (job) ("job", req_total * 0)', T)
    assert as_dict(r) == {(("job", "0"),): [2.0]}
    r = engine.instant_query('count_values("job", req_total * 0)', T)
    assert as_dict(r) == {(("job", "0"),): [2.0]}


def test_count_values_without_the_value_label_counts_every_value_in_one_group(counters, engine):
    r = engine.instant_query('count_values without (job) ("job", req_total)', T)
    assert as_dict(r) == {(): [2.0]}


def test_subquery_steps_are_aligned_to_absolute_multiples_of_the_step(storage, engine):
    load(storage, {"x": (every(1, 200), [float(i) for i in range(200)])})
    # The inner grid is 40s, 60s, ... (multiples of 20s after 127s - 60s), not 67s, 87s...
    r = engine.instant_query("x[60s:20s]", 127_000)
    assert r.result_type == ValueType.MATRIX
    assert r.series[0].timestamps.tolist() == [80_000, 100_000, 120_000]
    assert r.series[0].values.tolist() == [80.0, 100.0, 120.0]


def test_subquery_without_step_uses_the_default_interval(storage):
    load(storage, {"x": (every(10, 40), [1.0] * 40)})
    engine = Engine(storage, EngineOptions(default_subquery_step_ms=30_000))
    r = engine.instant_query("count_over_time(x[2m:])", 300_000)
    assert as_dict(r) == {(): [4.0]}


def test_absent_derives_labels_from_equality_matchers(engine):
    r = engine.instant_query('absent(nope{job="a", env=~"x", dup="1", dup="2"})', T)
    assert as_dict(r) == {(("job", "a"),): [1.0]}


def test_absent_is_empty_when_the_series_exists(counters, engine):
    assert engine.instant_query("absent(gauge)", T).series == []


def test_absent_over_time_in_a_range_query_marks_the_gap(storage, engine):
    load(storage, {'x{a="1"}': ([0, 300_000], [1.0, 1.0])})
    r = engine.range_query('absent_over_time(x{a="1"}[1m])', 0, 300_000, 60_000)
    s = r.series[0]
    assert s.labels == (("a", "1"),)
    assert s.timestamps.tolist() == [60_000, 120_000, 180_000, 240_000]


def test_sort_desc_orders_by_value_with_nan_last(storage, engine):
    load(
        storage, {'s{i="1"}': ([0], [1.0]), 's{i="2"}': ([0], [math.nan]), 's{i="3"}': ([0], [3.0])}
    )
    r = engine.instant_query("sort_desc(s)", 10_000)
    assert [dict(s.labels)["i"] for s in r.series] == ["3", "1", "2"]
    r = engine.instant_query("sort(s)", 10_000)
    assert [dict(s.labels)["i"] for s in r.series] == ["1", "3", "2"]


def test_sort_in_a_range_query_warns(storage, engine):
    load(storage, {"s": ([0], [1.0])})
    r = engine.range_query("sort(s)", 0, 60_000, 30_000)
    assert r.warnings == [
        "PromQL warning: sort is ineffective for range queries since results are always "
        "ordered by labels (1:1)"
    ]


def test_scalar_of_more_than_one_series_is_nan(counters, engine):
    r = engine.instant_query("scalar(req_total)", T)
    assert r.result_type == ValueType.SCALAR and math.isnan(r.scalar[1])


def test_vector_and_time_build_a_label_free_series(engine):
    r = engine.range_query("vector(time())", 0, 120_000, 60_000)
    assert as_dict(r) == {(): [0.0, 60.0, 120.0]}


def test_timestamp_of_a_selector_is_the_sample_time(storage, engine):
    load(storage, {"x": ([10_000], [5.0])})
    assert as_dict(engine.instant_query("timestamp(x)", 60_000)) == {(): [10.0]}


def test_last_over_time_keeps_the_metric_name(storage, engine):
    load(storage, {'x{a="1"}': ([10_000], [5.0])})
    r = engine.instant_query("last_over_time(x[1m])", 60_000)
    assert as_dict(r) == {(("__name__", "x"), ("a", "1")): [5.0]}


def test_max_samples_limit_gives_prometheus_error(storage):
    load(storage, {f'x{{i="{i}"}}': (every(10, 60), [1.0] * 60) for i in range(20)})
    engine = Engine(storage, EngineOptions(max_samples=100))
    with pytest.raises(ExecutionError) as err:
        engine.range_query("x", 0, 590_000, 10_000)
    assert str(err.value) == (
        "query processing would load too many samples into memory in query execution"
    )


def test_delayed_name_removal_lets_series_differing_only_by_name_meet_in_an_aggregation(storage):
    ramp = (every(15, 21), [float(i) for i in range(21)])
    load(storage, {'x_total{a="1"}': ramp, 'y_total{a="1"}': ramp})
    query = 'sum by (a) (rate({a="1"}[1m]))'
    # Eager: rate() drops both names at once and the two results collide.
    eager = Engine(storage, EngineOptions(delayed_name_removal=False))
    with pytest.raises(ExecutionError, match="same labelset"):
        eager.instant_query(query, T)
    delayed = Engine(storage, EngineOptions(delayed_name_removal=True))
    assert as_dict(delayed.instant_query(query, T)) == {(("a", "1"),): [pytest.approx(2 / 15)]}


@pytest.fixture
def experimental(storage):
    # metric 1+1x4 9+1x4 every 15s (upstream's PROM-52 data set)
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    load(storage, {"metric": (every(15, 10), values)})
    return Engine(storage, EngineOptions(experimental=True))


def test_anchored_increase_takes_the_sample_before_the_window_and_does_not_extrapolate(
    experimental,
):
    # window (20s, 80s]: anchor at 15s (2), last sample at 75s (9): 9 - 2 = 7
    r = experimental.instant_query("increase(metric[1m] anchored)", 80_000)
    assert as_dict(r) == {(): [pytest.approx(7.0)]}


def test_smoothed_increase_interpolates_both_window_edges(experimental):
    # at 20s, window (-40s, 20s]: left = 1 (first sample), right = 2 + (3-2) * 5/15
    r = experimental.instant_query("increase(metric[1m] smoothed)", 20_000)
    assert as_dict(r) == {(): [pytest.approx(1 + 1 / 3)]}


def test_smoothed_instant_selector_interpolates_at_the_evaluation_time(experimental):
    r = experimental.instant_query("metric smoothed", 20_000)
    assert as_dict(r) == {(("__name__", "metric"),): [pytest.approx(2 + 1 / 3)]}


def test_anchored_is_rejected_for_other_functions(experimental):
    with pytest.raises(ExecutionError, match="anchored modifier can only be used with"):
        experimental.instant_query("max_over_time(metric[1m] anchored)", 80_000)


def test_info_adds_target_info_data_labels_by_identifying_labels(storage):
    load(
        storage,
        {
            'metric{instance="a",job="1"}': ([0], [5.0]),
            'target_info{instance="a",job="1",data="x",other="y"}': ([0], [1.0]),
            'target_info{instance="b",job="1",data="z"}': ([0], [1.0]),
        },
    )
    engine = Engine(storage, EngineOptions(experimental=True))
    r = engine.instant_query('info(metric, {data=~".+"})', 60_000)
    assert as_dict(r) == {
        (("__name__", "metric"), ("data", "x"), ("instance", "a"), ("job", "1")): [5.0]
    }
    # A data matcher that rejects the empty value drops series without a matching info series.
    assert engine.instant_query('info(metric, {nope=~".+"})', 60_000).series == []


def test_duration_expressions_resolve_step_and_arithmetic(storage):
    load(storage, {"x": (every(10, 40), [float(i) for i in range(40)])})
    engine = Engine(storage, EngineOptions(experimental=True))
    # [step() * 3] with a 20s step is a 60s window: 6 samples per window.
    r = engine.range_query("count_over_time(x[step() * 3])", 200_000, 240_000, 20_000)
    assert as_dict(r) == {(): [6.0, 6.0, 6.0]}


def test_histogram_quantiles_adds_one_series_per_quantile(storage):
    load(
        storage,
        {
            'h_bucket{le="1"}': ([0], [5.0]),
            'h_bucket{le="2"}': ([0], [10.0]),
            'h_bucket{le="+Inf"}': ([0], [10.0]),
        },
    )
    engine = Engine(storage, EngineOptions(experimental=True))
    r = engine.instant_query('histogram_quantiles(h_bucket, "q", 0.25, 0.75)', 10_000)
    assert as_dict(r) == {(("q", "0.25"),): [0.5], (("q", "0.75"),): [1.5]}
