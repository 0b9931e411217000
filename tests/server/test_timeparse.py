from __future__ import annotations

import pytest

from promql.errors import BadDataError
from server.timeparse import (
    MAX_TIME_FORMATTED,
    MAX_TIME_MS,
    MIN_TIME_FORMATTED,
    MIN_TIME_MS,
    parse_duration,
    parse_time,
    time_param,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2019-07-07T20:01:02Z", 1562529662000),
        ("2019-07-07T20:47:40+03:00", 1562521660000),
        ("2020-02-21T16:07:49.433Z", 1582301269433),
        ("2020-02-21T16:07:49.4339999Z", 1582301269433),
        ("1562529662.324", 1562529662324),
        ("1562529662", 1562529662000),
        ("-1.5", -1500),
        ("1e3", 1_000_000),
        ("0.0005", 1),
        (MIN_TIME_FORMATTED, MIN_TIME_MS),
        (MAX_TIME_FORMATTED, MAX_TIME_MS),
    ],
)
def test_times_parse_like_prometheus(text, ms):
    assert parse_time(text) == ms


@pytest.mark.parametrize("text", ["", "abc", "2019-13-01T00:00:00Z", "2019-07-07", "NaN", "Inf"])
def test_unparseable_times_are_errors(text):
    with pytest.raises(ValueError, match="cannot parse"):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("0.5", 500),
        ("250ms", 250),
        ("0", 0),
        ("1y", 31_536_000_000),
    ],
)
def test_durations_parse_like_prometheus(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5x", "m5", "1m1h"])
def test_bad_durations_are_errors(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_time_param_names_the_parameter_and_defaults_when_absent():
    assert time_param(None, "start", 7) == 7
    assert time_param("", "start", 7) == 7
    with pytest.raises(BadDataError, match='invalid parameter "end": cannot parse "x"'):
        time_param("x", "end", 0)
