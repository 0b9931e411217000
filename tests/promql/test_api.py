"""The public surface other packages use: ``promql.parse``, ``promql.format``, errors, options."""

from __future__ import annotations

import promql
from promql.ast import AggregateExpr, Call, MatrixSelector, VectorSelector
from promql.errors import BadDataError
from promql.types import Matcher, MatchType, ValueType


def test_public_names_are_exported() -> None:
    assert set(promql.__all__) == {
        "ParseError",
        "ParserOptions",
        "format",
        "parse",
        "parse_metric_selector",
    }
    assert issubclass(promql.ParseError, BadDataError)


def test_parse_returns_a_typed_tree_the_planner_can_walk() -> None:
    expr = promql.parse('sum by (job) (rate(http_requests_total{code=~"5.."}[5m] offset 1m))')
    assert isinstance(expr, AggregateExpr)
    assert expr.type == ValueType.VECTOR
    assert (expr.op, expr.grouping, expr.without) == ("sum", ("job",), False)
    call = expr.expr
    assert isinstance(call, Call) and call.func == "rate" and call.type == ValueType.VECTOR
    matrix = call.args[0]
    assert isinstance(matrix, MatrixSelector) and matrix.range_ms == 300_000
    selector = matrix.vector_selector
    assert isinstance(selector, VectorSelector)
    assert selector.offset_ms == 60_000
    # The written metric name is also the last matcher, as in Prometheus.
    assert selector.matchers == (
        Matcher(MatchType.REGEX, "code", "5.."),
        Matcher(MatchType.EQUAL, "__name__", "http_requests_total"),
    )


def test_positions_locate_nodes_in_the_query_text() -> None:
    text = "1 + rate(x[5m])"
    expr = promql.parse(text)
    call = expr.rhs
    assert text[call.pos.start : call.pos.end] == "rate(x[5m])"


def test_positions_do_not_take_part_in_equality() -> None:
    assert promql.parse("rate(x[5m])") == promql.parse("  rate( x[ 5m ] )")


def test_default_options_reject_experimental_syntax() -> None:
    assert promql.ParserOptions() == promql.ParserOptions(experimental=False)
    expr = promql.parse("limitk(2, x)", promql.ParserOptions(experimental=True))
    assert promql.format(expr) == "limitk(2, x)"


def test_metric_selector_parses_to_its_matchers() -> None:
    assert promql.parse_metric_selector('up{job=~"a|b"}') == (
        Matcher(MatchType.REGEX, "job", "a|b"),
        Matcher(MatchType.EQUAL, "__name__", "up"),
    )
    assert promql.parse_metric_selector('{"my.metric"}') == (
        Matcher(MatchType.EQUAL, "__name__", "my.metric"),
    )


def test_metric_selector_rejects_anything_but_a_selector() -> None:
    for text, message in [
        ("up offset 5m", "1:4: parse error: unexpected <offset>"),
        ("up[5m]", '1:3: parse error: unexpected "["'),
        ("rate(up[5m])", '1:5: parse error: unexpected "("'),
        ("", "1:1: parse error: unexpected end of input"),
    ]:
        try:
            promql.parse_metric_selector(text)
        except promql.ParseError as exc:
            assert str(exc) == message, text
        else:
            raise AssertionError(f"accepted {text!r}")


def test_grouping_and_matching_labels_are_plain_strings():
    from promql import parse

    join = parse("a + on(x) group_left(y) b")
    agg = parse("sum by (job) (x)")
    for name in (*join.matching.matching_labels, *join.matching.include, *agg.grouping):
        assert type(name) is str
