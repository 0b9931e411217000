"""EXPLAIN of rewritten and not-rewritten queries against golden files. Update them with:

UPDATE_GOLDEN=1 .venv/bin/pytest tests/sketch
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import check_explain

GOLDEN = Path(__file__).with_name("golden")

# name: (query, start_ms, end_ms, step_ms, verbose)
CASES = {
    "rate_sum_by_rewritten": (
        "sum by (job) (rate(c_total[5m]))",
        900_000,
        3_000_000,
        60_000,
        False,
    ),
    "quantile_instant_rewritten": (
        "quantile_over_time(0.9, x[10m])",
        1_800_000,
        1_800_000,
        0,
        False,
    ),
    "binary_both_arms": (
        "sum(rate(c_total[5m])) / sum(rate(d_total[4m]))",
        900_000,
        3_000_000,
        60_000,
        False,
    ),
    "histogram_quantile_rewritten": (
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
        900_000,
        3_000_000,
        60_000,
        True,
    ),
    "range_not_multiple": ("sum_over_time(x[7m30s])", 900_000, 3_000_000, 60_000, False),
    "step_not_multiple": ("rate(d_total[4m])", 900_000, 3_000_000, 30_000, False),
    "unsupported_function_and_selector": (
        "stddev_over_time(x[5m]) + sum(x)",
        900_000,
        3_000_000,
        60_000,
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_text_and_json_match_golden_files(engines, name):
    query, start, end, step, verbose = CASES[name]
    out = engines[0].explain(query, start, end, step, verbose=verbose)
    check_explain(out, GOLDEN, name)


def test_analyze_shows_windows_merged_per_node(engines):
    out = engines[0].explain("increase(c_total[5m])", 900_000, 3_000_000, 60_000, analyze=True)
    line = next(x for x in out.text.splitlines() if x.startswith("SummaryInfer"))
    # 36 steps × 5 windows, every one closed.
    assert "windows_merged=[180]" in line and "elapsed_ms=[" in line
    assert out.json["plan"]["metrics"]["windows_merged"] == 180


def test_precompute_off_plans_the_exact_path(engines):
    out = engines[1].explain("increase(c_total[5m])", 900_000, 3_000_000, 60_000)
    assert "SummaryInfer" not in out.text and "Note:" not in out.text
