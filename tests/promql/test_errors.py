"""Invalid queries: Prometheus' error wording and ``line:col`` position for each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promql import ParseError, ParserOptions, parse

ERRORS = [
    # empty input and lexer errors
    ("", "1:1: parse error: no expression found in input"),
    ("   ", "1:1: parse error: no expression found in input"),
    ("# only a comment", "1:1: parse error: no expression found in input"),
    ("1 +", "1:4: parse error: unexpected end of input"),
    ("sum(", "1:5: parse error: unclosed left parenthesis"),
    ("sum(rate(x[5m])", "1:16: parse error: unclosed left parenthesis"),
    ("x)", "1:3: parse error: unexpected right parenthesis ')'"),
    ("foo{", "1:5: parse error: unexpected end of input inside braces"),
    ('foo{a="b"', "1:10: parse error: unexpected end of input inside braces"),
    ("foo}", "1:4: parse error: unexpected character: '}'"),
    ('foo{a:b="c"}', "1:6: parse error: unexpected character inside braces: ':'"),
    ('"\\c"', "1:1: parse error: unknown escape sequence U+0063 'c'"),
    ('"abc', "1:1: parse error: unterminated quoted string"),
    ("`abc", "1:1: parse error: unterminated raw string"),
    ("0deadbeef", '1:1: parse error: bad number or duration syntax: "0de"'),
    ("foo[5mm]", '1:5: parse error: bad number or duration syntax: "5mm"'),
    ("1 !~ 1", "1:3: parse error: unexpected character after '!': '~'"),
    # literals are scanned exactly as Prometheus' lexer scans them
    (
        "0x",
        '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0x": invalid syntax',
    ),
    (
        "0xfe+1",
        '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0xfe+1": '
        "invalid syntax",
    ),
    ("0xfe", '1:1: parse error: bad number or duration syntax: "0xfe"'),
    ("2.5.", '1:1: parse error: bad number or duration syntax: "2.5."'),
    ("1.5m", '1:1: parse error: unknown unit "." in duration "1.5m"'),
    ("foo[5m1h]", '1:5: parse error: not a valid duration string: "5m1h"'),
    ("foo offset NaN", "1:12: parse error: duration out of range"),
    (
        "1e400",
        '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "1e400": '
        "value out of range",
    ),
    # grammar errors with Prometheus' context phrases
    ("foo{a=b}", '1:7: parse error: unexpected identifier "b" in label matching, expected string'),
    ("x + group_left y", "1:5: parse error: unexpected <group_left>"),
    ("sum(x) by (a) by (b)", "1:15: parse error: unexpected <by>"),
    (
        "foo[]",
        '1:5: parse error: unexpected "]" in subquery or range selector, expected number, '
        "duration, step(), or range()",
    ),
    ("foo[5m", "1:7: parse error: unexpected end of input in duration expression"),
    # inside [...] Prometheus lexes duration expressions until the first literal
    ('foo["5m"]', "1:5: parse error: unexpected character in duration expression: '\"'"),
    ("foo[5s x 5s]", "1:8: parse error: unexpected character: 'x', expected ':'"),
    ("foo[5m:1m:]", "1:10: parse error: unexpected colon ':'"),
    ("foo[5m[", "1:8: parse error: unexpected left bracket '['"),
    (
        'foo[5m "a"]',
        '1:8: parse error: unexpected string "\\"a\\"" in subquery or range, expected ":" or "]"',
    ),
    (
        "foo offset",
        "1:11: parse error: unexpected end of input in offset, expected number, duration, "
        "step(), or range()",
    ),
    ("foo @", "1:6: parse error: unexpected end of input in @, expected timestamp"),
    ("sum by (==) (x)", "1:9: parse error: unexpected <op:==> in grouping opts, expected label"),
    # selectors
    ("{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ('{a=""}', "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ('{a=~".*"}', "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ('foo{__name__="bar"}', '1:1: parse error: metric name must not be set twice: "foo" or "bar"'),
    ('foo{a=~"("}', "1:5: parse error: error parsing regexp: missing closing ): `(`"),
    (
        'foo{a=~"x**"}',
        "1:5: parse error: error parsing regexp: invalid nested repetition operator: `**`",
    ),
    # ranges, offsets, @
    ("foo[0s]", "1:5: parse error: duration must be greater than 0"),
    ("foo[-1]", "1:5: parse error: duration must be greater than 0"),
    ("foo offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"),
    ("foo offset 5m[5m]", "1:14: parse error: no offset modifiers allowed before range"),
    ("foo @ 1 [5m]", "1:9: parse error: no @ modifiers allowed before range"),
    ("foo @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
    ("x[5m:1m] @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times"),
    (
        "1 offset 5m",
        "1:1: parse error: offset modifier must be preceded by an instant vector selector or "
        "range vector selector or a subquery",
    ),
    ("(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors"),
    ("rate(x[5m])[5m]", "1:12: parse error: ranges only allowed for vector selectors"),
    # binary operators
    ("1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
    ("(1 == 1)", "1:4: parse error: comparisons between scalars must use BOOL modifier"),
    ("1 and 1", '1:1: parse error: set operator "and" not allowed in binary scalar expression'),
    ("x or 1", '1:1: parse error: set operator "or" not allowed in binary scalar expression'),
    ("x + bool y", "1:3: parse error: bool modifier can only be used on comparison operators"),
    ("x and on(a) group_left y", '1:1: parse error: no grouping allowed for "and" operation'),
    (
        "a + on(b) group_left(b) c",
        '1:3: parse error: label "b" must not occur in ON and GROUP clause at once',
    ),
    ("1 + on(a) x", "1:1: parse error: vector matching only allowed between instant vectors"),
    (
        '"a" + 1',
        "1:1: parse error: binary expression must contain only scalar and instant vector types",
    ),
    (
        '-"a"',
        "1:1: parse error: unary expression only allowed on expressions of type scalar or "
        'instant vector, got "string"',
    ),
    # aggregations and calls
    ("sum()", "1:1: parse error: no arguments for aggregate expression provided"),
    (
        "topk(x)",
        "1:1: parse error: wrong number of arguments for aggregate expression provided, "
        "expected 2, got 1",
    ),
    ("topk(x,)", "1:7: parse error: trailing commas not allowed in function call args"),
    (
        "count_values(1, x)",
        "1:14: parse error: expected type string in aggregation parameter, got scalar",
    ),
    ('sum by ("") (x)', '1:9: parse error: invalid label name for grouping: ""'),
    (
        "rate(x)",
        '1:6: parse error: expected type range vector in call to function "rate", got instant '
        "vector",
    ),
    ("floor()", '1:1: parse error: expected 1 argument(s) in call to "floor", got 0'),
    ("hour(x, x)", '1:1: parse error: expected at most 1 argument(s) in call to "hour", got 2'),
    (
        "label_join(x)",
        '1:1: parse error: expected at least 3 argument(s) in call to "label_join", got 1',
    ),
    ("nope(x)", '1:1: parse error: unknown function with name "nope"'),
    ("ABS(x)", '1:1: parse error: unknown function with name "ABS"'),
    # experimental syntax without ParserOptions(experimental=True)
    (
        "limitk(1, x)",
        "1:1: parse error: limitk() is experimental and must be enabled with "
        "--enable-feature=promql-experimental-functions",
    ),
    ("info(x)", '1:1: parse error: function "info" is not enabled'),
    ("x anchored", "1:1: parse error: anchored modifier is experimental and not enabled"),
    ("x[5m+1m]", "1:3: parse error: experimental duration expression is not enabled"),
    ("x + fill(0) y", "1:1: parse error: binop fill modifiers are experimental and not enabled"),
    # positions on later lines
    ("foo\n  + bar{", "2:9: parse error: unexpected end of input inside braces"),
    (
        'sum by (job)\n  (rate(x[5m]))\n  + on(job) group_left\n  "s"',
        "4:3: parse error: binary expression must contain only scalar and instant vector types",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_invalid_query_reports_prometheus_message_and_position(text: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_parse_error_carries_position_and_bad_data_error_type() -> None:
    with pytest.raises(ParseError) as caught:
        parse("sum(rate(x[5m])) +\n  foo{a=b}")
    error = caught.value
    assert (error.position.line, error.position.column) == (2, 9)
    assert error.error_type == "bad_data"
    assert error.query.startswith("sum(")


@pytest.mark.parametrize(
    "text",
    ["limitk(1, x)", "info(x)", 'sort_by_label(x, "a")', "x[5m+1m]", "x offset step()"],
)
def test_experimental_syntax_parses_when_enabled(text: str) -> None:
    parse(text, ParserOptions(experimental=True))


_FRAGMENTS = [
    "sum",
    "by",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "5m",
    ":",
    "1",
    '"a"',
    "'b'",
    "`c`",
    "x",
    "a:b",
    "+",
    "-",
    "*",
    "^",
    "==",
    "=~",
    "!~",
    "=",
    "<",
    "</",
    ",",
    "offset",
    "@",
    "start()",
    "bool",
    "on",
    "group_left",
    "and",
    "topk",
    "rate",
    "inf",
    "fill(1)",
    "step()",
    "#c\n",
    " ",
    "\\",
    "1h30m",
    "5mm",
    "0x",
    "__name__",
    "count_values",
    "info",
    "anchored",
    "min_of",
]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=10).map("".join),
    st.booleans(),
)
def test_any_input_either_parses_or_raises_a_positioned_parse_error(
    text: str, experimental: bool
) -> None:
    try:
        parse(text, ParserOptions(experimental=experimental))
    except ParseError as exc:
        assert 0 <= exc.pos.start <= len(text)
        assert str(exc).startswith(f"{exc.position.line}:{exc.position.column}: parse error: ")
