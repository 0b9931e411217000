"""Grouping of eval cases into core / experimental / native histogram, and the @ rewrite."""

from __future__ import annotations

import promql
from tests.conformance.classify import (
    CORE,
    EXPERIMENTAL,
    NATIVE_HISTOGRAM,
    StoreFacts,
    classify,
)
from tests.conformance.dsl import EvalCmd, parse_file
from tests.conformance.rewrite import at_modifier_variants, pin_at


def _eval(expr: str, expected: str = "") -> EvalCmd:
    (cmd,) = parse_file(f"eval instant at 1m {expr}\n{expected}")
    assert isinstance(cmd, EvalCmd)
    return cmd


def test_plain_queries_are_core() -> None:
    assert classify(_eval("sum by (job) (rate(foo[5m]))"), StoreFacts())[0] == CORE


def test_experimental_syntax_and_functions_are_grouped_with_a_reason() -> None:
    cases = {
        "foo[5m+1m]": "duration expression",
        "rate(foo[5m] anchored)": "anchored/smoothed",
        "limitk(2, foo)": "limitk",
        'info(foo, {data=~".+"})': "info()",
        "foo + fill(0) bar": "fill modifier",
        "foo offset step()": "duration expression",
    }
    for expr, reason in cases.items():
        group, why = classify(_eval(expr), StoreFacts())
        assert group == EXPERIMENTAL, expr
        assert reason in why, (expr, why)


def test_store_facts_make_cases_experimental() -> None:
    assert classify(_eval("foo"), StoreFacts(type_and_unit=True))[0] == EXPERIMENTAL
    assert classify(_eval("foo"), StoreFacts(start_timestamps=True))[0] == EXPERIMENTAL


def test_native_histogram_cases_by_expected_values_or_touched_series() -> None:
    facts = StoreFacts(histogram_series=[(("__name__", "hist"), ("job", "a"))])
    assert classify(_eval("histogram_count(hist)"), facts)[0] == NATIVE_HISTOGRAM
    assert classify(_eval('{__name__=~"hi.*"}'), facts)[0] == NATIVE_HISTOGRAM
    assert classify(_eval('hist{job="b"}'), facts)[0] == CORE
    assert classify(_eval("other"), facts)[0] == CORE
    cmd = _eval("x", "  x {{schema:0 sum:1 count:1}}\n")
    assert classify(cmd, StoreFacts())[0] == NATIVE_HISTOGRAM


def test_at_rewrite_pins_selectors_outside_subqueries_only() -> None:
    tree = promql.parse("sum(rate(foo[5m])) + max_over_time(bar[10m:1m]) + baz @ 100")
    pinned, unsafe = pin_at(tree, 60_000)
    assert not unsafe
    assert promql.format(pinned) == (
        "sum(rate(foo[5m] @ 60.000)) + max_over_time(bar[10m:1m] @ 60.000) + baz @ 100.000"
    )


def test_at_rewrite_skips_time_dependent_functions_and_uses_upstream_times() -> None:
    assert at_modifier_variants("time() + foo", 60_000) == []
    variants = at_modifier_variants("foo", 100_000)
    assert [t for _, t in variants] == [-1_000_000, 0, 20_000, 100_000, 1_000_000]
    assert [t for _, t in at_modifier_variants("foo", 0)] == [-1000, 0, 1000]
