"""For every supported shape the precomputed answer equals the exact one over the same data."""

from __future__ import annotations

import numpy as np
import pytest

from planner.nodes.base import walk
from planner.nodes.summary_infer import SummaryInfer
from tests.sketch.harness import as_dict, assert_same

EXACT_SHAPES = [
    "sum_over_time(x[5m])",
    "count_over_time(x[3m])",
    "avg_over_time(x[10m])",
    "min_over_time(x[2m])",
    "max_over_time(x[5m] offset 2m)",
    "increase(c_total[5m])",
    "rate(c_total[1m])",
    "rate(c_total[5m] offset 3m)",
    "rate(d_total[10m])",
    "quantile_over_time(0.9, x[5m])",
    "quantile_over_time(0.25, x[10m])",
    'sum by (job) (rate(c_total{job="j1"}[5m]))',
    "sum by (job) (rate(c_total[5m]))",
    "max by (job) (max_over_time(x[10m]))",
    "avg without (instance) (avg_over_time(x[5m]))",
    "topk(3, sum_over_time(x[5m]))",
    "sum(rate(c_total[5m])) / sum(rate(d_total[4m]))",
    "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
    "rate(c_total[5m]) > 0.2",
]


def _rewritten(engine, query: str, start: int, end: int, step: int) -> int:
    planned = engine.plan(query, start, end, step, range_=step > 0)
    return sum(isinstance(n, SummaryInfer) for n in walk(planned.physical))


@pytest.mark.parametrize("query", EXACT_SHAPES)
def test_range_query_answer_from_windows_equals_the_exact_answer(engines, query):
    pre, exact = engines
    assert _rewritten(pre, query, 900_000, 3_000_000, 60_000) >= 1
    got = pre.range_query(query, 900_000, 3_000_000, 60_000)
    want = exact.range_query(query, 900_000, 3_000_000, 60_000)
    assert want.series, "the comparison must not be vacuous"
    assert_same(got, want)
    assert not any("approximate" in i for i in got.infos)


@pytest.mark.parametrize("query", EXACT_SHAPES)
def test_instant_query_takes_the_same_path_and_gives_the_exact_answer(engines, query):
    pre, exact = engines
    assert _rewritten(pre, query, 1_800_000, 1_800_000, 0) >= 1
    assert_same(pre.instant_query(query, 1_800_000), exact.instant_query(query, 1_800_000))


def test_quantile_past_sketch_capacity_is_within_the_stated_rank_bound(world, engines):
    pre, exact = engines
    query = "quantile_over_time(0.9, y[10m])"
    got = pre.range_query(query, 900_000, 3_000_000, 60_000)
    assert any("approximate" in i and "rank error" in i for i in got.infos)
    bound = float(next(i for i in got.infos if "rank error" in i).split("≤ ")[1].split("%")[0])
    raw = world.storage.select(list(pre.parse("y").matchers), 900_000 - 600_000 + 1, 3_000_000)  # type: ignore[attr-defined]
    worst = 0.0
    for labels, series in as_dict(got).items():
        idx = next(i for i, ls in enumerate(raw.labels) if dict(ls).items() >= dict(labels).items())
        _, ts, vs = raw.series(idx)
        for t, v in zip(*series, strict=True):
            window = np.sort(vs[(ts > int(t) - 600_000) & (ts <= int(t))])
            rank = np.searchsorted(window, v, side="right") / window.shape[0]
            worst = max(worst, abs(rank - 0.9))
    # Rank of the answer vs the asked quantile; plus one item of rank granularity (60 values).
    assert worst <= bound / 100 + 1 / 60
    assert exact.range_query(query, 900_000, 3_000_000, 60_000).infos == []


@pytest.mark.parametrize(
    "agg_type",
    # Keyed types without aggregated labels run as their plain twin (worker.columnar_kind).
    ["Sum", "Avg", "Count", "MinMax", "Increase", "MultipleSum", "MultipleMinMax",
     "MultipleIncrease"],
)  # fmt: skip
def test_per_series_columnar_aggregations_answer_exactly(agg_type):
    from tests.sketch.conftest import fill
    from tests.sketch.harness import World

    metric = "c_total" if agg_type.endswith("Increase") else "x"
    yaml = f"""
aggregations:
- {{aggregationId: 1, aggregationType: {agg_type}, metric: {metric}, windowSize: 60,
   labels: {{grouping: [job, instance]}}}}
"""
    w = World(yaml)
    fill(w, seed=13, end_ms=1_800_000)
    pre, exact = w.engines()
    queries = {
        "Sum": ["sum_over_time(x[5m])", "avg_over_time(x[3m])"],
        "Avg": ["avg_over_time(x[5m])", "count_over_time(x[2m])"],
        "Count": ["count_over_time(x[4m])"],
        "MinMax": ["min_over_time(x[5m])", "max_over_time(x[2m])"],
        "Increase": ["rate(c_total[5m])", "increase(c_total[3m])"],
    }[agg_type.removeprefix("Multiple")]
    for q in queries:
        assert _rewritten(pre, q, 600_000, 1_500_000, 60_000) == 1, q
        assert_same(
            pre.range_query(q, 600_000, 1_500_000, 60_000),
            exact.range_query(q, 600_000, 1_500_000, 60_000),
        )


@pytest.mark.parametrize("agg_type", ["MultipleSum", "MultipleMinMax", "MultipleIncrease"])
@pytest.mark.parametrize(
    "windowing",
    ["windowSize: 60", "windowSize: 300, slideInterval: 60, windowType: sliding"],
    ids=["tumbling", "sliding"],
)
def test_keyed_small_groups_run_as_cells_and_answer_exactly(agg_type, windowing):
    """Many small groups with aggregated labels (one group per instance, keyed by job): the
    worker runs them columnar over (group, sub key) cells and the windows answer exactly."""
    from precompute.window_batch import WindowBatch
    from tests.sketch.conftest import fill
    from tests.sketch.harness import World

    metric = "c_total" if agg_type.endswith("Increase") else "x"
    yaml = f"""
aggregations:
- {{aggregationId: 1, aggregationType: {agg_type}, metric: {metric}, {windowing},
   labels: {{grouping: [instance], aggregated: [job]}}}}
"""
    w = World(yaml)
    fill(w, seed=17, end_ms=1_800_000)
    log = w.store.chunk_view(1)
    assert log and all(isinstance(r, WindowBatch) and r.group_width == 1 for r in log)
    pre, exact = w.engines()
    queries = {
        "Sum": ["sum_over_time(x[5m])", "sum by (job) (avg_over_time(x[10m]))"],
        "MinMax": ["min_over_time(x[5m])", "max by (job) (max_over_time(x[10m]))"],
        "Increase": ["rate(c_total[5m])", "sum by (job) (increase(c_total[10m]))"],
    }[agg_type.removeprefix("Multiple")]
    for q in queries:
        assert _rewritten(pre, q, 600_000, 1_500_000, 60_000) == 1, q
        want = exact.range_query(q, 600_000, 1_500_000, 60_000)
        assert want.series, q
        assert_same(pre.range_query(q, 600_000, 1_500_000, 60_000), want)
        assert_same(pre.instant_query(q, 1_200_000), exact.instant_query(q, 1_200_000))
