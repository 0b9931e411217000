"""Valid queries and the canonical text Prometheus' ``String()`` prints for them."""

from __future__ import annotations

import pytest

from promql import ParserOptions, format, parse

CANONICAL = [
    # aggregations: modifier placement, empty by (), trailing commas, case
    ("sum by(job)(rate(x[5m]))", "sum by (job) (rate(x[5m]))"),
    ("sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"),
    ("sum by() (x)", "sum(x)"),
    ("sum without() (x)", "sum without () (x)"),
    ("sum without(a,b,) (x)", "sum without (a, b) (x)"),
    ("SUM BY (job) (x)", "sum by (job) (x)"),
    ("topk(5,x)", "topk(5, x)"),
    ('count_values("v",x)', 'count_values("v", x)'),
    ("quantile(0.9, x) by (le)", "quantile by (le) (0.9, x)"),
    ("sum by (on, bool) (x)", "sum by (on, bool) (x)"),
    ('sum by ("foo.bar") (x)', 'sum by ("foo.bar") (x)'),
    ("sum by (a:b) (x)", 'sum by ("a:b") (x)'),
    # Prometheus 3 has no duplicate-label check for grouping or matching lists.
    ("sum by (a, a) (x)", "sum by (a, a) (x)"),
    ("x + on(a, a) y", "x + on (a, a) y"),
    # Deviation: Prometheus prints `by (inf)`, which does not parse; Tidemark keeps the quotes.
    ('sum by ("inf", "NaN") (x)', 'sum by ("inf", "NaN") (x)'),
    # vector matching
    ("a+on(x)group_left(y)b", "a + on (x) group_left (y) b"),
    ("a - on() c", "a - on () c"),
    ("a - ignoring() c", "a - c"),
    ("a - ignoring(b) c", "a - ignoring (b) c"),
    ("a - on(b) group_left c", "a - on (b) group_left () c"),
    ("a * ignoring(x) group_right() b", "a * ignoring (x) group_right () b"),
    ("a>bool 1", "a > bool 1"),
    ("a and on(b) c", "a and on (b) c"),
    ("a or ignoring(b) c", "a or ignoring (b) c"),
    # precedence and unary operators
    ("1+2*3", "1 + 2 * 3"),
    ("(1+2)*3", "(1 + 2) * 3"),
    ("2^3^2", "2 ^ 3 ^ 2"),
    ("-2^2", "-2 ^ 2"),
    ("- -1", "1"),
    ("-(1)", "-(1)"),
    ("+up", "+up"),
    ("1 - -1", "1 - -1"),
    ("2 ^ -1", "2 ^ -1"),
    ("5 atan2 3", "5 atan2 3"),
    # offset and @, in either order; durations in model.Duration form
    ("x offset 5m", "x offset 5m"),
    ("x offset -5m", "x offset -5m"),
    ("x offset 90s", "x offset 1m30s"),
    ("x offset 1h30m", "x offset 1h30m"),
    ("x offset 3600", "x offset 1h"),
    ("x offset 1.5", "x offset 1s500ms"),
    ("x offset 0", "x"),
    ("x @ 100", "x @ 100.000"),
    ("x @ -1.5", "x @ -1.500"),
    ("x @ 1e3", "x @ 1000.000"),
    ("x offset 5m @ 100", "x @ 100.000 offset 5m"),
    ("x @ start()", "x @ start()"),
    ("x @ end()", "x @ end()"),
    ("x[5m] offset 1m @ 100", "x[5m] @ 100.000 offset 1m"),
    # ranges and subqueries
    ("x[300]", "x[5m]"),
    ("x[1.5]", "x[1s500ms]"),
    ("x[90s]", "x[1m30s]"),
    ("x[120m]", "x[2h]"),
    ("x[7d]", "x[1w]"),
    ("x[365d]", "x[1y]"),
    ("x[100ms]", "x[100ms]"),
    ("x[1d1h1m1s1ms]", "x[1d1h1m1s1ms]"),
    ("rate(x[5m])[1h:]", "rate(x[5m])[1h:]"),
    ("rate(x[5m])[1h:1m] offset 1d @ end()", "rate(x[5m])[1h:1m] @ end() offset 1d"),
    # numbers: Go's strconv.FormatFloat(v, 'f', -1, 64)
    ("1e3", "1000"),
    ("1E-3", "0.001"),
    (".5", "0.5"),
    ("5.", "5"),
    ("0x1F", "31"),
    ("017", "15"),
    ("08", "8"),
    ("1_000", "1000"),
    ("0xfe + 1", "254 + 1"),
    ("0x1e5", "485"),
    ("Inf", "+Inf"),
    ("-inf", "-Inf"),
    ("NaN", "NaN"),
    ("1e21", "1000000000000000000000"),
    ("1e-7", "0.0000001"),
    ("123456789012345678901234567890", "123456789012345680000000000000"),
    ("-0.0", "-0"),
    ("9007199254740993", "9007199254740992"),
    ("foo + 5m", "foo + 5m"),
    ("-5m", "-5m"),
    ("time() - 1h30m", "time() - 1h30m"),
    # strings: Go's strconv.Quote
    ("'a'", '"a"'),
    ("`a\\n`", '"a\\\\n"'),
    ('"a\\tb"', '"a\\tb"'),
    ('"\\u00e9"', '"é"'),
    ('"\\x41"', '"A"'),
    ('"\\101"', '"A"'),
    ('"\\U0001F600"', '"😀"'),
    ('"\\x00"', '"\\x00"'),
    ('"\\u2028"', '"\\u2028"'),
    ('"\\xc5"', '"\\xc5"'),
    # selectors: sorted matchers, quoted UTF-8 names, keywords as names
    ('{__name__="up"}', '{__name__="up"}'),
    ('{"my.metric"}', '{__name__="my.metric"}'),
    ('{"my.metric", job="x"}', '{__name__="my.metric",job="x"}'),
    ('up{b="2",a="1"}', 'up{a="1",b="2"}'),
    ('up{a=~"x|y", a!~"z"}', 'up{a!~"z",a=~"x|y"}'),
    ('{"a.b"="c"}', '{"a.b"="c"}'),
    ('up{"_0"="1"}', 'up{_0="1"}'),
    ("up{a='b'}", 'up{a="b"}'),
    ("up{a=`\\d+`}", 'up{a="\\\\d+"}'),
    ('up{a="b",}', 'up{a="b"}'),
    ('by{on="x"}', 'by{on="x"}'),
    ("sum", "sum"),
    ("offset", "offset"),
    ("offset offset 5m", "offset offset 5m"),
    ("a:b:c", "a:b:c"),
    # comments and whitespace
    ("rate(x[5m]) # comment", "rate(x[5m])"),
    ("sum(\n  x # c\n)", "sum(x)"),
    ("Sum(x)", "sum(x)"),
]


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_query_prints_in_prometheus_canonical_form(text: str, expected: str) -> None:
    assert format(parse(text)) == expected


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_canonical_form_is_a_fixed_point_of_parse_and_format(text: str, expected: str) -> None:
    canonical = parse(expected)
    assert format(canonical) == expected
    assert parse(format(canonical)) == canonical


EXPERIMENTAL_CANONICAL = [
    ("h </ 0.5", "h </ 0.5"),
    ("histogram_count(h>/2)", "histogram_count(h >/ 2)"),
    ("a + fill(-23) b", "a + fill (-23) b"),
    ("a + fill_left(5) fill_right(5) b", "a + fill (5) b"),
    ("a + fill_right(1) fill_left(2) b", "a + fill_left (2) fill_right (1) b"),
    ("a + on(b) group_left fill(1e6) c", "a + on (b) group_left () fill (1e+06) c"),
    ("other + fill_right(0) fill_right", "other + fill_right (0) fill_right"),
    ("foo[5m+1m]", "foo[5m + 1m]"),
    ("foo[(5s)]", "foo[(5s)]"),
    ("foo offset +(5)", "foo offset (5)"),
    ("foo[200-min_of(-step()^+step(),1)]", "foo[200 - min_of(-step() ^ step(), 1)]"),
    ("foo[5m:step()] offset -range()", "foo[5m:step()] offset -range()"),
    ("rate(x[5m] anchored)", "rate(x[5m] anchored)"),
    ('x{a="b"}[5m] smoothed @ start() offset 1m', 'x{a="b"}[5m] smoothed @ start() offset 1m'),
    ('info(up, {__name__=~".+_info"})', 'info(up, {__name__=~".+_info"})'),
    ("limitk(2, up) by (job)", "limitk by (job) (2, up)"),
]


@pytest.mark.parametrize(("text", "expected"), EXPERIMENTAL_CANONICAL)
def test_experimental_syntax_prints_like_prometheus(text: str, expected: str) -> None:
    options = ParserOptions(experimental=True)
    tree = parse(text, options)
    assert format(tree) == expected
    assert format(parse(expected, options)) == expected
