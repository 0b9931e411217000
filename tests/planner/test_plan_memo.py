"""Plans are made once per query text, times and options (Grafana repeats aligned queries)."""

from __future__ import annotations

from planner.engine import Engine, EngineOptions
from planner.nodes.precomputed_scan import SketchSource
from precompute.config import load_config
from storage.db import Storage, StorageOptions
from storage.sketch_store import SketchStore

CONFIG = """
aggregations:
- {aggregationId: 1, aggregationType: MultipleSum, metric: x, windowSize: 60,
   labels: {grouping: [l], aggregated: [instance]}}
"""


def _engine(configs: list) -> Engine:
    storage = Storage.in_memory(StorageOptions(background_maintenance=False))
    source = SketchSource(SketchStore(), lambda: list(configs))
    return Engine(storage, EngineOptions(), source)


def test_the_same_query_at_the_same_times_reuses_its_plan():
    engine = _engine(list(load_config(CONFIG).aggregations))
    first = engine.plan("sum by (l) (x)", 0, 600_000, 60_000, range_=True)
    assert engine.plan("sum by (l) (x)", 0, 600_000, 60_000, range_=True) is first
    assert engine.plan("sum by (l) (x)", 60_000, 660_000, 60_000, range_=True) is not first
    assert engine.plan("sum by (l) (x)", 0, 600_000, 60_000) is not first  # instant


def test_a_changed_configuration_is_planned_again():
    configs = list(load_config(CONFIG).aggregations)
    engine = _engine(configs)
    query = "sum by (l) (sum_over_time(x[1m]))"
    with_config = engine.plan(query, 0, 600_000, 60_000, range_=True)
    assert "SummaryMergeMultiple" in repr(with_config.physical)
    configs.clear()
    without = engine.plan(query, 0, 600_000, 60_000, range_=True)
    assert without is not with_config
    assert "SummaryMergeMultiple" not in repr(without.physical)


def test_engines_over_other_sources_or_options_do_not_share_plans():
    configs = list(load_config(CONFIG).aggregations)
    a, b = _engine(configs), _engine(configs)
    plan_a = a.plan("sum by (l) (x)", 0, 600_000, 60_000, range_=True)
    assert b.plan("sum by (l) (x)", 0, 600_000, 60_000, range_=True) is not plan_a
    c = Engine(a.storage, EngineOptions(lookback_ms=60_000), a.precompute)
    assert c.plan("sum by (l) (x)", 0, 600_000, 60_000, range_=True) is not plan_a
