"""Steps that span exactly one stored window take the state as it is (no merging): answers still
equal the exact path's."""

from __future__ import annotations

import pytest

from tests.sketch.conftest import HOUR_MS
from tests.sketch.harness import assert_same

ONE_WINDOW = [
    "sum_over_time(x[1m])",
    "avg_over_time(x[1m])",
    "min_over_time(x[1m])",
    "max_over_time(x[1m] offset 3m)",
    "count_over_time(x[1m])",
    "rate(c_total[1m])",
    "increase(d_total[2m])",
    "quantile_over_time(0.75, x[5m])",
]


@pytest.mark.parametrize("query", ONE_WINDOW)
def test_one_window_per_step_answers_equal_the_exact_path(engines, query):
    pre, exact = engines
    text = pre.explain(query, 900_000, 3_000_000, 60_000).text
    assert "1 window(s) per step" in text
    want = exact.range_query(query, 900_000, 3_000_000, 120_000)
    assert want.series
    assert_same(pre.range_query(query, 900_000, 3_000_000, 120_000), want)
    assert_same(
        pre.instant_query(query, HOUR_MS - 600_000), exact.instant_query(query, HOUR_MS - 600_000)
    )


def test_tumbling_quantile_windows_rebuilt_from_raw_samples_join_the_union_exactly():
    # 1 min tumbling KLL windows hold 6 values each (exact): a 5 min step is the union of five,
    # some of them rebuilt from raw samples (before the config existed, the open newest one),
    # and the answer is Prometheus' quantile over all 30 values.
    from precompute.config import load_config
    from tests.sketch.conftest import fill
    from tests.sketch.harness import World

    yaml = """
aggregations:
- {aggregationId: 9, aggregationType: DatasketchesKLL, parameters: {K: 200}, metric: x,
   windowSize: 60, labels: {grouping: [job, instance]}}
"""
    w = World("aggregations: []")
    fill(w, seed=12, end_ms=900_000)
    w.engine.update_config(load_config(yaml))
    fill(w, seed=13, start_ms=900_000, end_ms=HOUR_MS)
    pre, exact = w.engines()
    for q in ("quantile_over_time(0.9, x[5m])", "quantile_over_time(0.1, x[3m] offset 1m)"):
        text = pre.explain(q, 600_000, HOUR_MS, 60_000, analyze=True).text
        assert "raw_windows=[" in text and "window(s) per step" in text
        assert_same(pre.range_query(q, 600_000, HOUR_MS, 60_000),
                    exact.range_query(q, 600_000, HOUR_MS, 60_000), rtol=0)  # fmt: skip
