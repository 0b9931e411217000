"""Capability matching refuses what it cannot prove and says why."""

from __future__ import annotations

import pytest

from planner.precompute_match import GridSpec, Target, choose
from precompute.config import load_config
from promql.types import Matcher, MatchType

CONFIG = load_config(
    """
aggregations:
- {aggregationId: 1, aggregationType: MultipleSum, metric: x, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 2, aggregationType: Sum, metric: x, windowSize: 300,
   labels: {grouping: [job, instance]}, spatialFilter: 'job="a"'}
- {aggregationId: 3, aggregationType: Max, metric: z, windowSize: 60, labels: {grouping: [job]}}
- {aggregationId: 4, aggregationType: Min, metric: z, windowSize: 60, labels: {}}
- {aggregationId: 5, aggregationType: DatasketchesKLL, parameters: {K: 100}, metric: q,
   windowSize: 120, slideInterval: 60, windowType: sliding, labels: {grouping: [job]}}
"""
).aggregations


def _m(name: str, value: str, kind: MatchType = MatchType.EQUAL) -> Matcher:
    return Matcher(kind, name, value)


X = (_m("__name__", "x"),)
XA = (*X, _m("job", "a"))
MINUTE = GridSpec(600_000, 60_000)


def test_fewest_merges_win_when_several_aggregations_match():
    target = Target("sum_over_time", (*X, _m("job", "a")), 600_000)
    match, _ = choose(CONFIG, target, GridSpec(600_000, 300_000))
    assert match is not None and match.config.aggregation_id == 2
    assert match.windows_per_step == 2
    # On a one-minute step the five-minute windows do not line up: the finer one answers.
    match, reasons = choose(CONFIG, target, MINUTE)
    assert match is not None and match.config.aggregation_id == 1
    assert any("step 1m is not a multiple of slide 5m" in r for r in reasons)


def test_a_filtered_aggregation_does_not_answer_an_unfiltered_query():
    match, reasons = choose(CONFIG, Target("sum_over_time", X, 600_000), MINUTE)
    assert match is not None and match.config.aggregation_id == 1
    assert any('its filter job="a" is not among the query\'s matchers' in r for r in reasons)


@pytest.mark.parametrize(
    ("target", "grid", "reason"),
    [
        (Target("sum_over_time", XA, 420_000), MINUTE, "range 7m is not a multiple of window 5m"),
        (Target("sum_over_time", X, 90_000), MINUTE, "range 1m30s is not a multiple of window 1m"),
        (Target("sum_over_time", X, 120_000), GridSpec(600_000, 30_000), "step 30s is not a"),
        (Target("sum_over_time", X, 120_000), GridSpec(610_000, 60_000), "not on the window grid"),
        (Target("stddev_over_time", X, 120_000), MINUTE, "not answered from windows"),
        (Target("min_over_time", X, 120_000), MINUTE, "needs min, which it does not keep"),
        (Target("rate", X, 120_000), MINUTE, "needs counter"),
        (Target("sum_over_time", X, 120_000, at_ms=5), MINUTE, "the @ modifier"),
        (Target("min_over_time", (_m("__name__", "z"),), 60_000), MINUTE, "no key labels"),
    ],
)
def test_refusals_name_the_aggregation_and_the_reason(target, grid, reason):
    match, reasons = choose(CONFIG, target, grid)
    assert match is None or match.config.aggregation_id == 1
    assert any(reason in r and r.startswith("aggregation ") for r in reasons), reasons


def test_an_unconfigured_metric_is_refused_with_a_reason():
    match, reasons = choose(CONFIG, Target("sum_over_time", (_m("__name__", "w"),), 60_000), None)
    assert match is None and reasons == ["no aggregation is configured for metric w"]


def test_offset_moves_the_window_grid():
    target = Target("quantile_over_time", (_m("__name__", "q"),), 240_000, offset_ms=30_000)
    match, reasons = choose(CONFIG, target, MINUTE)
    assert match is None and "minus offset is not on the window grid" in reasons[-1]
    shifted = Target("quantile_over_time", (_m("__name__", "q"),), 240_000, offset_ms=120_000)
    match, _ = choose(CONFIG, shifted, MINUTE)
    assert match is not None and match.windows_per_step == 2
