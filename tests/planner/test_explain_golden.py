"""EXPLAIN output against golden files. Update them with:

UPDATE_GOLDEN=1 .venv/bin/pytest tests/planner
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.engine import Engine
from tests.golden import check_explain
from tests.planner.conftest import every, load

GOLDEN = Path(__file__).with_name("golden")

# name: (query, start_ms, end_ms, step_ms, verbose)
CASES = {
    "selector_instant": ('http_requests_total{job="api", code=~"5.."}', 600_000, 600_000, 0, False),
    "rate_sum_by_range": (
        "sum by (job) (rate(http_requests_total[5m]))",
        0,
        3_600_000,
        60_000,
        False,
    ),
    "offset_at_verbose": ("foo offset 5m + bar @ 300 * (2 + 3)", 0, 3_600_000, 60_000, True),
    "subquery": ("max_over_time(deriv(foo[5m])[30m:1m] offset 1m)", 3_600_000, 3_600_000, 0, False),
    "group_left": (
        "sum by (job, code) (rate(req_total[1m])) / ignoring(code) group_left sum by (job) (rate(req_total[1m]))",
        0,
        600_000,
        15_000,
        False,
    ),
    "histogram_quantile": (
        "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))",
        0,
        600_000,
        30_000,
        False,
    ),
    "set_ops_absent_sort": (
        'sort_desc(topk(3, foo) or absent(foo{job="x"}) unless on(job) bar)',
        100_000,
        100_000,
        0,
        False,
    ),
    "label_and_count_values": (
        'count_values("v", label_replace(foo, "dst", "$1", "src", "(.*)"))',
        0,
        60_000,
        10_000,
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_text_and_json_match_golden_files(storage, name):
    query, start, end, step, verbose = CASES[name]
    out = Engine(storage).explain(query, start, end, step, verbose=verbose)
    check_explain(out, GOLDEN, name)


def test_analyze_reports_per_node_series_and_samples(storage):
    load(
        storage, {f'x{{i="{i}"}}': (every(10, 61), [float(j) for j in range(61)]) for i in range(3)}
    )
    out = Engine(storage).explain("sum(rate(x[1m]))", 0, 600_000, 60_000, analyze=True)
    assert out.result is not None and len(out.result.series) == 1
    lines = out.text.splitlines()
    assert lines[1].startswith("PromAggregate: op=[sum], by=[] | elapsed_ms=[")
    assert lines[1].endswith("series=[1], samples=[10]")
    assert lines[2].startswith("  RangeFunction: fn=[rate] |")
    assert lines[2].endswith("series=[3], samples=[30]")
    assert out.json["plan"]["metrics"]["series"] == 1
    assert out.json["plan"]["inputs"][0]["inputs"][0]["metrics"]["series"] == 3


def test_explain_without_analyze_does_not_execute(storage):
    out = Engine(storage).explain("sum(x)", 0, 60_000, 10_000)
    assert out.result is None and "elapsed_ms" not in out.text
