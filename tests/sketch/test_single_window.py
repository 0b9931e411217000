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
