"""End to end through a real server: /api/v1/write → engine → sketch store → precompute routes."""

from __future__ import annotations

import time

import orjson
import pytest

from precompute.config import load_config
from server.routes_precompute import attach
from storage.db import Storage
from storage.sketch_store import SketchStore
from tests.server.conftest import server_factory  # noqa: F401  (fixture)
from tests.server.payloads import RW_HEADERS, snappy, write_request

CONFIG = """
aggregations:
  - {aggregationId: 1, aggregationType: Sum, labels: {grouping: [job]}, metric: req,
     spatialFilter: 'job=~"api|web"', windowSize: 10, slideInterval: 10, windowType: tumbling}
  - {aggregationId: 2, aggregationType: DatasketchesKLL, parameters: {K: 200},
     labels: {grouping: []}, metric: lat, windowSize: 20, slideInterval: 10, windowType: sliding}
engine: {num_workers: 2, flush_interval_ms: 50}
"""


def write(client, series):
    reply = client.post("/api/v1/write", snappy(write_request(series)), RW_HEADERS)
    assert reply.status == 204, reply.body


def wait_for(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def precompute_server(server_factory):  # noqa: F811
    storage = Storage.in_memory()
    store = SketchStore()
    runtime = attach(storage, load_config(CONFIG), store)
    client, _ = server_factory(storage)
    return client, runtime


def test_windows_route_lists_merged_stats_keyed_by_grouping_labels(precompute_server):
    client, _ = precompute_server
    write(
        client,
        [
            ([("__name__", "req"), ("job", "api"), ("i", "1")], [(1_000, 1.0), (9_000, 2.0)]),
            ([("__name__", "req"), ("job", "api"), ("i", "2")], [(10_000, 4.0)]),
            ([("__name__", "req"), ("job", "db")], [(5_000, 100.0)]),
            ([("__name__", "lat")], [(t * 1000, float(t)) for t in range(1, 11)]),
        ],
    )
    write(client, [([("__name__", "req"), ("job", "api"), ("i", "1")], [(25_000, 1.0)])])
    write(client, [([("__name__", "lat")], [(25_000, 0.0)])])

    def rows(agg):
        r = client.get("/api/v1/precompute/windows", [("aggregation_id", str(agg)), ("start", "0"),
                                                      ("end", "20")])  # fmt: skip
        assert r.status == 200
        return r.json()["data"]

    got = wait_for(lambda: rows(1))
    assert got == [
        {
            "aggregation_id": 1,
            "type": "Sum",
            "key": {"job": "api"},
            "start": 0.0,
            "end": 10.0,
            "entries": 1,
            "stats": {"sum": 7.0, "count": 3},
        }
    ]
    kll = wait_for(lambda: rows(2))
    assert kll[0]["key"] == {} and kll[0]["start"] == 0.0 and kll[0]["end"] == 20.0
    assert kll[0]["stats"]["quantiles"]["0.5"] == 5.5  # exact: Prometheus interpolation


def test_status_and_metrics_report_counters(precompute_server):
    client, _ = precompute_server
    write(client, [([("__name__", "req"), ("job", "api")], [(1_000, 1.0), (30_000, 1.0)])])
    body = wait_for(
        lambda: (
            (d := client.get("/api/v1/precompute/status").json()["data"])["aggregations"][0][
                "windows_emitted"
            ]
            and d
        )
    )
    agg = body["aggregations"][0]
    assert agg["samples_in"] == 2 and agg["config"]["spatialFilter"] == 'job=~"api|web"'
    assert body["engine"]["num_workers"] == 2 and "queue_depth_samples" in body["engine"]
    text = client.get("/metrics").body.decode()
    assert 'tidemark_precompute_samples_in_total{aggregation_id="1"} 2.0' in text
    assert 'tidemark_precompute_windows_emitted_total{aggregation_id="1"} 1.0' in text


def test_config_put_adds_and_removes_aggregations_at_run_time(precompute_server):
    client, runtime = precompute_server
    new = CONFIG.replace("aggregationId: 2", "aggregationId: 3")
    reply = client.request("PUT", "/api/v1/precompute/config", body=new.encode())
    assert reply.status == 200
    assert reply.json()["data"] == {"added": [3], "removed": [2], "replaced": []}
    assert sorted(runtime.engine.configs) == [1, 3]
    bad = client.request(
        "PUT", "/api/v1/precompute/config", body=b"aggregations: [{aggregationId: 1}]"
    )
    assert bad.status == 400
    assert orjson.loads(bad.body)["errorType"] == "bad_data"


def test_windows_route_rejects_a_missing_aggregation_id(precompute_server):
    client, _ = precompute_server
    reply = client.get("/api/v1/precompute/windows")
    assert reply.status == 400 and "aggregation_id" in reply.json()["error"]


def test_serve_flags_override_the_yaml_engine_section(tmp_path):
    from server.cli import build_parser
    from server.routes_precompute import configure

    path = tmp_path / "pc.yaml"
    path.write_text(CONFIG)
    args = build_parser().parse_args(
        ["serve", "--precompute", str(path), "--precompute-workers", "1",
         "--late-data-policy", "ForwardToStore", "--allowed-lateness-ms", "2500"]
    )  # fmt: skip
    storage = Storage.in_memory()
    runtime = configure(args, storage, tmp_path)
    try:
        opts = runtime.engine.options
        assert (opts.num_workers, opts.late_data_policy, opts.allowed_lateness_ms) == (
            1,
            "ForwardToStore",
            2500,
        )
        assert opts.flush_interval_ms == 50  # from the file
        assert (tmp_path / "precompute" / "sketches").is_dir()
    finally:
        runtime.close()
    assert (tmp_path / "precompute" / "open_panes.snapshot").exists()
