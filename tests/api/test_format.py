"""Prometheus' spellings of values and timestamps, one by one and in bulk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.format import format_float, format_timestamp, format_timestamps, format_values
from storage.model import STALE_NAN

# Expected strings are what Go's strconv.FormatFloat(v, 'f' or 'e' per MarshalFloat, -1, 64)
# prints for these values.
GO_SPELLINGS = [
    (0.0, "0"),
    (-0.0, "-0"),
    (1.0, "1"),
    (-2.5, "-2.5"),
    (0.1 + 0.2, "0.30000000000000004"),
    (1e-6, "0.000001"),
    (9.9e-7, "9.9e-07"),
    (1e-5, "0.00001"),
    (1e16, "10000000000000000"),
    (1.2345678901234567e19, "12345678901234567000"),
    (1e21, "1e+21"),
    (1.5e300, "1.5e+300"),
    (5e-324, "5e-324"),
    (math.inf, "+Inf"),
    (-math.inf, "-Inf"),
    (math.nan, "NaN"),
    (STALE_NAN, "NaN"),
]


@pytest.mark.parametrize(("value", "text"), GO_SPELLINGS)
def test_values_are_spelled_like_go_strconv(value: float, text: str) -> None:
    assert format_float(value) == text
    assert format_values(np.array([value])) == [text]


def test_bulk_value_formatting_agrees_with_the_scalar_one_on_random_magnitudes() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, 20_000) * 10.0 ** rng.integers(-10, 25, 20_000)
    x = np.concatenate([x, np.round(x[:5000]), [2.0**53, -(2.0**60), 1e15, 1e-4, 9.999e-5]])
    assert format_values(x) == [format_float(v) for v in x.tolist()]


def test_timestamps_are_seconds_with_three_millisecond_digits_when_needed() -> None:
    assert format_timestamp(1_500) == "1.500"
    assert format_timestamp(5) == "0.005"
    assert format_timestamp(1_700_000_000_000) == "1700000000"
    assert format_timestamp(-1_500) == "-1.500"
    ts = np.array([0, 1_500, 5, 1_700_000_000_123, 1_500, -20])
    assert format_timestamps(ts) == [format_timestamp(int(t)) for t in ts]


PRETTY = [
    ("rate(x[5m])", 100, "rate(x[5m])"),
    (
        'sum without(job,foo) (rate(errors_total{job="s"}[5m]))',
        20,
        'sum without (job, foo) (\n  rate(\n    errors_total{job="s"}[5m]\n  )\n)',
    ),
    ('topk(10, errors{job="s"})', 10, 'topk(\n  10,\n  errors{job="s"}\n)'),
    ("a == bool 1", 10, "  a\n== bool\n  1"),
    ("a + ignoring(job) group_left(x) b", 10, "  a\n+ ignoring (job) group_left (x)\n  b"),
    ("-(a + b)", 3, "-(\n    a\n  +\n    b\n)"),
    (
        "max_over_time(rate(a[5m])[10m:1m] offset 1m)",
        15,
        "max_over_time(\n  rate(a[5m])[10m:1m] offset 1m\n)",
    ),
]


@pytest.mark.parametrize(("query", "width", "text"), PRETTY)
def test_format_query_splits_long_expressions_like_prometheus_prettify(
    query: str, width: int, text: str
) -> None:
    import promql
    from server.format import pretty

    assert pretty(promql.parse(query), width=width) == text


def _reference_matrix(rows: list) -> str:
    """One series and one point at a time, with the scalar formatters."""
    import json

    parts = []
    for s in rows:
        metric = json.dumps(dict(s.labels), separators=(",", ":"), ensure_ascii=False)
        metric = metric.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        points = ",".join(
            f'[{format_timestamp(int(t))},"{format_float(float(v))}"]'
            for t, v in zip(s.timestamps, s.values, strict=True)
        )
        parts.append(f'{{"metric":{metric},"values":[{points}]}}')
    return '{"resultType":"matrix","result":[' + ",".join(parts) + "]}"


@pytest.mark.parametrize("empty_at", [None, 0, 2, 4])
def test_matrix_text_equals_point_by_point_formatting_also_around_empty_series(
    empty_at: int | None,
) -> None:
    from planner.result import QueryResult, SeriesResult
    from promql.types import ValueType
    from server.format import result_json, result_json_bytes
    from storage.model import make_labels

    rng = np.random.default_rng(3)
    rows = []
    for i in range(5):
        n = 0 if i == empty_at else int(rng.integers(1, 40))
        ts = np.sort(rng.choice(np.arange(-5_000, 90_000, 250), n, replace=False))
        vals = np.round(rng.normal(0, 100, n), int(rng.integers(0, 4)))
        specials = np.array([math.nan, math.inf, -0.0, 1e-7, 3e17, 7.0, -math.inf])
        pick = rng.random(n) < 0.2
        vals[pick] = rng.choice(specials, int(pick.sum()))
        labels = make_labels({"__name__": "m", "i": str(i), "x": "<a & b>" if i % 2 else "é"})
        rows.append(SeriesResult(labels, ts.astype(np.int64), vals))
    result = QueryResult(ValueType.MATRIX, rows)
    assert result_json(result) == _reference_matrix(rows)
    assert result_json_bytes(result) == _reference_matrix(rows).encode()


def test_matrix_with_only_empty_series_lists_them_without_points() -> None:
    from planner.result import QueryResult, SeriesResult
    from promql.types import ValueType
    from server.format import result_json
    from storage.model import make_labels

    rows = [
        SeriesResult(make_labels({"a": str(i)}), np.zeros(0, np.int64), np.zeros(0))
        for i in range(2)
    ]
    assert result_json(QueryResult(ValueType.MATRIX, rows)) == _reference_matrix(rows)
    assert result_json(QueryResult(ValueType.MATRIX, [])) == '{"resultType":"matrix","result":[]}'


def test_matrix_bytes_spell_every_magnitude_like_the_scalar_formatter() -> None:
    from planner.result import QueryResult, SeriesResult
    from promql.types import ValueType
    from server.format import result_json_bytes
    from storage.model import make_labels

    rng = np.random.default_rng(11)
    mags = 10.0 ** rng.integers(-12, 25, 4000)
    vals = np.round(rng.normal(0, 1, 4000) * mags, int(rng.integers(0, 6)))
    vals[::7] = np.trunc(vals[::7])  # whole numbers, written without ``.0``
    vals[::13] = -0.0
    rows = [
        SeriesResult(make_labels({"i": str(i)}), np.arange(-400, 600, 1, dtype=np.int64), v)
        for i, v in enumerate(vals.reshape(4, 1000))
    ]
    result = QueryResult(ValueType.MATRIX, rows)
    assert result_json_bytes(result) == _reference_matrix(rows).encode()
