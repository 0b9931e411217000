"""Status and discovery endpoints over a real HTTP server, in Prometheus' response shapes."""

from __future__ import annotations

import orjson
import yaml

from tests.server.payloads import RW_HEADERS, snappy, write_request
from tests.server.test_read_http import ok


def _load(client) -> None:
    rows = [
        ([("__name__", "up"), ("job", "api"), ("instance", f"a:{i}")], [(1000, 1.0), (2000, 1.0)])
        for i in range(3)
    ]
    rows.append(([("__name__", "req_total"), ("job", "db")], [(5000, 4.0)]))
    assert client.post("/api/v1/write", snappy(write_request(rows)), RW_HEADERS).status == 204


def test_tsdb_status_reports_cardinality_from_the_store(server):
    client, _ = server
    _load(client)
    data = ok(client.get("/api/v1/status/tsdb"))["data"]
    head = data["headStats"]
    assert head["numSeries"] == 4
    assert head["numLabelPairs"] == 7  # 2 metric names, 2 jobs, 3 instances
    assert (head["minTime"], head["maxTime"]) == (1000, 5000)
    assert head["chunkCount"] == 4
    assert data["seriesCountByMetricName"] == [
        {"name": "up", "value": 3},
        {"name": "req_total", "value": 1},
    ]
    assert data["labelValueCountByLabelName"][0] == {"name": "instance", "value": 3}
    assert {"name": "job=api", "value": 3} in data["seriesCountByLabelValuePair"]
    assert len(ok(client.get("/api/v1/status/tsdb", [("limit", "1")]))["data"][
        "seriesCountByLabelValuePair"]) == 1  # fmt: skip
    bad = client.get("/api/v1/status/tsdb", [("limit", "x")])
    assert bad.status == 400 and orjson.loads(bad.body)["errorType"] == "bad_data"


def test_rules_alerts_and_targets_are_empty_lists_in_prometheus_shapes(server):
    client, _ = server
    assert ok(client.get("/api/v1/rules"))["data"] == {"groups": []}
    assert ok(client.get("/api/v1/alerts"))["data"] == {"alerts": []}
    targets = ok(client.get("/api/v1/targets"))["data"]
    assert targets["activeTargets"] == [] and targets["droppedTargets"] == []
    assert ok(client.get("/api/v1/alertmanagers"))["data"]["activeAlertmanagers"] == []


def test_runtime_flags_and_config_describe_this_server(server):
    client, _ = server
    info = ok(client.get("/api/v1/status/runtimeinfo"))["data"]
    assert info["startTime"].endswith("Z") and info["reloadConfigSuccess"] is True
    flags = ok(client.get("/api/v1/status/flags"))["data"]
    assert flags["max.body.bytes"].isdigit()
    text = ok(client.get("/api/v1/status/config"))["data"]["yaml"]
    assert yaml.safe_load(text) == flags
    assert ok(client.get("/api/v1/status/walreplay"))["data"]["current"] == 0


def test_admin_endpoints_say_they_are_disabled(server):
    client, _ = server
    reply = client.post("/api/v1/admin/tsdb/delete_series", b"")
    assert reply.status == 503
    assert orjson.loads(reply.body)["error"] == "admin APIs disabled"
