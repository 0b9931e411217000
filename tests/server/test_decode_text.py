from __future__ import annotations

import math

import pytest

from server.decode_text import decode_text, parse_float
from server.errors import IngestRejected
from storage.model import MetricMetadata

EXPOSITION = rb"""# HELP http_requests_total The total \\ number\n of requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400",} 3 1395066363000
# A plain comment
{"my.metric", "label.x"="a\"b\\c\nd"} +Inf
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
weird NaN -5
  indented_metric   -Inf   7
"""


def test_exposition_samples_labels_and_timestamps_are_decoded():
    batch = decode_text(EXPOSITION, default_ts_ms=42)
    rows = [
        (batch.series[i], t, v)
        for i, t, v in zip(batch.sample_series, batch.timestamps, batch.values, strict=True)
    ]
    assert rows[0] == (
        (("__name__", "http_requests_total"), ("code", "200"), ("method", "post")),
        1395066363000,
        1027.0,
    )
    assert rows[1][0][1] == ("code", "400")
    assert rows[2][0] == (("__name__", "my.metric"), ("label.x", 'a"b\\c\nd'))
    assert rows[2][1:] == (42, math.inf)
    assert rows[3][0] == (
        ("__name__", "msdos_file_access_time_seconds"),
        ("error", 'Cannot find file:\n"FILE.TXT"'),
        ("path", "C:\\DIR\\FILE.TXT"),
    )
    assert math.isnan(rows[4][2]) and rows[4][1] == -5
    assert rows[5][1:] == (7, -math.inf)


def test_help_and_type_lines_become_metadata():
    batch = decode_text(EXPOSITION, default_ts_ms=0)
    assert batch.metadata == [
        MetricMetadata("http_requests_total", "counter", "The total \\ number\n of requests.")
    ]


def test_untyped_is_stored_as_unknown():
    batch = decode_text(b"# TYPE x untyped\nx 1\n", 0)
    assert batch.metadata[0].type == "unknown"


def test_repeated_series_in_one_body_share_one_series_entry():
    batch = decode_text(b"a 1 1000\na 2 2000\n", 0)
    assert len(batch.series) == 1
    assert batch.sample_series.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'x{a="1" 1\n', "line 1"),
        (b"x{a=1} 1\n", "quoted label value"),
        (b"x 1 1 extra\n", "expected a value"),
        (b"x one\n", "invalid value"),
        (b"x 1_000\n", "invalid value"),
        (b'{a="b"} 1\n', "missing metric name"),
        (b'x{a="1",a="2"} 1\n', "duplicate label name"),
        (b'x{a="\\q"} 1\n', "invalid escape"),
        (b"# TYPE x bogus\nx 1\n", "invalid metric type"),
        (b"ok 1\nx \xff 1\n", "UTF-8"),
        (b"x 1 99999999999999999\n", "outside the accepted range"),
    ],
)
def test_malformed_exposition_is_rejected_naming_the_problem(body, fragment):
    with pytest.raises(IngestRejected, match=fragment):
        decode_text(body, 0)


def test_values_parse_like_go_parse_float():
    assert parse_float("0x1p-2") == 0.25
    assert parse_float("+Inf") == math.inf
    assert math.isnan(parse_float("NaN"))
    for bad in ("1_0", "١", "+nan", ""):
        with pytest.raises(ValueError):
            parse_float(bad)
