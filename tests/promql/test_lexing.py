"""Literal semantics shared with Go and Prometheus: durations, numbers, string quoting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promql.lexing import (
    LiteralError,
    format_duration_ms,
    format_number,
    go_quote,
    parse_duration_ms,
    parse_number,
    unquote,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1ms", 1),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("1y", 365 * 86_400_000),
        ("2w3d", 17 * 86_400_000),
        ("1d1h1m1s1ms", 90_061_001),
    ],
)
def test_durations_parse_to_milliseconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5m1h", 'not a valid duration string: "5m1h"'),
        ("5m1m", 'not a valid duration string: "5m1m"'),
        ("5y1hs", 'unknown unit "hs" in duration "5y1hs"'),
        ("", "empty duration string"),
        ("999999999999y", "duration out of range"),
    ],
)
def test_bad_durations_use_prometheus_wording(text: str, message: str) -> None:
    with pytest.raises(LiteralError, match="^" + message.replace("(", r"\(") + "$"):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (90_000, "1m30s"), (86_400_000 * 90, "90d"), (86_400_000 * 91, "13w")],
)
def test_durations_print_in_model_duration_form(ms: int, text: str) -> None:
    # Years and weeks are used only when they divide the duration exactly.
    assert format_duration_ms(ms) == text


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=9 * 10**12))
def test_printed_durations_parse_back(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x1F", 31.0), ("017", 15.0), ("08", 8.0), ("1_000", 1000.0), ("1e-3", 0.001), (".5", 0.5)],
)
def test_numbers_follow_go_parse_int_then_parse_float(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_inf_and_nan_are_case_insensitive_numbers() -> None:
    assert parse_number("iNf") == math.inf
    assert math.isnan(parse_number("NAN"))


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_printed_numbers_parse_back_exactly(value: float) -> None:
    text = format_number(value)
    assert "e" not in text  # Go's 'f' format never uses an exponent
    assert parse_number(text.lstrip("-")) == abs(value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"a\\nb"', "a\nb"),
        ("'it\\'s'", "it's"),
        ("`raw\\n`", "raw\\n"),
        ('"\\x41\\101\\u00e9\\U0001F600"', "AAé😀"),
        ('"\\xc3\\xa9"', "é"),
    ],
)
def test_strings_unquote_with_go_escapes(literal: str, value: str) -> None:
    assert unquote(literal) == value


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ('"\\c"', "unknown escape sequence U+0063 'c'"),
        ('"\\x4"', "escape sequence not terminated"),
        ('"\\x.."', "illegal character U+002E '.' in escape sequence"),
        ('"\\uD800"', "escape sequence is an invalid Unicode code point"),
        ("'\\\"'", "unknown escape sequence U+0022 '\"'"),
    ],
)
def test_bad_escapes_use_go_wording(literal: str, message: str) -> None:
    with pytest.raises(LiteralError) as caught:
        unquote(literal)
    assert str(caught.value) == message


@settings(max_examples=300)
@given(st.text())
def test_go_quote_round_trips_through_unquote(value: str) -> None:
    assert unquote(go_quote(value)) == value


def test_go_quote_escapes_like_strconv_quote() -> None:
    assert go_quote('a"b\\c\n\x00\u2028é') == '"a\\"b\\\\c\\n\\x00\\u2028é"'
