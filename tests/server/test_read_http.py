"""Read endpoints over a real HTTP server, in Prometheus' response shapes."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from promql.types import Matcher, MatchType
from storage.model import STALE_NAN_BITS, is_stale
from tests.server.payloads import RW_HEADERS, snappy, write_request

STALE = np.array([STALE_NAN_BITS], np.uint64).view(np.float64)[0]


@pytest.fixture
def loaded(server):
    client, storage = server
    raw = write_request(
        [
            ([("__name__", "up"), ("job", "api"), ("instance", "a:1")], [(1000, 1.0), (2000, 1.0)]),
            ([("__name__", "up"), ("job", "db"), ("instance", "b:1")], [(1000, 0.0)]),
            ([("__name__", "req_total"), ("job", "api")], [(5000, 0.1), (6000, STALE)]),
        ],
        metadata=[(1, "req_total", "Requests.", ""), (2, "up", "Up.", "")],
    )
    assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
    return client, storage


def ok(reply):
    assert reply.status == 200, reply.body
    doc = orjson.loads(reply.body)
    assert doc["status"] == "success"
    return doc


def test_series_returns_label_maps_for_each_match(loaded):
    client, _ = loaded
    doc = ok(client.get("/api/v1/series", [("match[]", "up"), ("match[]", 'req_total{job="api"}')]))
    assert doc["data"] == [
        {"__name__": "req_total", "job": "api"},
        {"__name__": "up", "instance": "a:1", "job": "api"},
        {"__name__": "up", "instance": "b:1", "job": "db"},
    ]


def test_series_respects_the_time_range(loaded):
    client, _ = loaded
    doc = ok(client.get("/api/v1/series", [("match[]", "up"), ("start", "1.5"), ("end", "3")]))
    assert doc["data"] == [{"__name__": "up", "instance": "a:1", "job": "api"}]


def test_series_by_post_form_and_limit_warning(loaded):
    client, _ = loaded
    reply = client.request(
        "POST",
        "/api/v1/series",
        body=b"match%5B%5D=up&limit=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    doc = ok(reply)
    assert len(doc["data"]) == 1
    assert doc["warnings"] == ["results truncated due to limit"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([], "no match[] parameter provided"),
        ([("match[]", '{job=""}')], "non-empty matcher"),
        ([("match[]", "up"), ("start", "abc")], 'invalid parameter "start"'),
        ([("match[]", "up"), ("start", "10"), ("end", "5")], "end timestamp must not be before"),
        ([("match[]", "up{")], "parse error"),
    ],
)
def test_series_parameter_errors_are_bad_data(loaded, params, fragment):
    client, _ = loaded
    reply = client.get("/api/v1/series", params)
    assert reply.status == 400
    doc = orjson.loads(reply.body)
    assert doc["errorType"] == "bad_data" and fragment in doc["error"]


def test_labels_and_label_values(loaded):
    client, _ = loaded
    assert ok(client.get("/api/v1/labels"))["data"] == ["__name__", "instance", "job"]
    names = ok(client.get("/api/v1/labels", [("match[]", "req_total")]))["data"]
    assert names == ["__name__", "job"]
    assert ok(client.get("/api/v1/label/job/values"))["data"] == ["api", "db"]
    values = ok(client.get("/api/v1/label/__name__/values", [("match[]", '{job="db"}')]))
    assert values["data"] == ["up"]


def test_metadata_lists_type_help_and_unit(loaded):
    client, _ = loaded
    doc = ok(client.get("/api/v1/metadata"))
    assert doc["data"]["req_total"] == [{"type": "counter", "help": "Requests.", "unit": ""}]
    assert set(ok(client.get("/api/v1/metadata", [("metric", "up")]))["data"]) == {"up"}
    assert len(ok(client.get("/api/v1/metadata", [("limit", "1")]))["data"]) == 1


def test_buildinfo_health_and_readiness(loaded):
    client, _ = loaded
    assert ok(client.get("/api/v1/status/buildinfo"))["data"]["version"]
    assert client.get("/-/healthy").status == 200
    assert client.get("/-/ready").status == 200


def test_export_writes_victoriametrics_json_lines_with_stale_markers_kept(loaded):
    client, _ = loaded
    reply = client.get("/api/v1/export", [("match[]", '{__name__=~".+"}')])
    assert reply.status == 200
    lines = [orjson.loads(line) for line in reply.body.splitlines()]
    assert lines[0] == {
        "metric": {"__name__": "req_total", "job": "api"},
        "values": [0.1, "StaleNaN"],
        "timestamps": [5000, 6000],
    }
    assert len(lines) == 3


def test_export_then_import_round_trips_values_bit_exact(server_factory):
    client, _ = server_factory()
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.standard_normal(50) * 10.0 ** rng.integers(-300, 300, 50),
            [math.nan, math.inf, -math.inf, -0.0, 5e-324, STALE],
        ]
    )
    ts = np.arange(values.size, dtype=np.int64) * 1000
    raw = write_request(
        [([("__name__", "v")], list(zip(ts.tolist(), values.tolist(), strict=True)))]
    )
    assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
    exported = client.get("/api/v1/export", [("match[]", "v")]).body
    copy_client, copy_storage = server_factory()
    assert copy_client.post("/api/v1/import", exported).status == 204
    ss = copy_storage.select([Matcher(MatchType.EQUAL, "__name__", "v")], 0, 10**9)
    got = ss.values
    assert ss.timestamps.tolist() == ts.tolist()
    finite = np.isfinite(values)
    assert got[finite].view(np.uint64).tolist() == values[finite].view(np.uint64).tolist()
    assert is_stale(got).tolist() == is_stale(values).tolist()
    assert np.isnan(got).tolist() == np.isnan(values).tolist()
    assert got[~np.isnan(got)].tolist() == values[~np.isnan(values)].tolist()
