"""Through a real server: the query API answers from windows, says so, and obeys precompute=off."""

from __future__ import annotations

import time

import pytest

from precompute.config import load_config
from server.routes_precompute import attach
from storage.db import Storage
from storage.sketch_store import SketchStore
from tests.server.conftest import server_factory  # noqa: F401  (fixture)
from tests.server.payloads import RW_HEADERS, snappy, write_request

CONFIG = """
aggregations:
  - {aggregationId: 1, aggregationType: DatasketchesKLL, parameters: {K: 16},
     labels: {grouping: [job, instance]}, metric: lat, windowSize: 60}
  - {aggregationId: 2, aggregationType: MultipleSum, labels: {grouping: [job], aggregated: [instance]},
     metric: lat, windowSize: 60}
engine: {num_workers: 1, flush_interval_ms: 50}
"""


@pytest.fixture
def client(server_factory):  # noqa: F811
    storage = Storage.in_memory()
    attach(storage, load_config(CONFIG), SketchStore())
    client, _ = server_factory(storage)
    series = [
        (
            [("__name__", "lat"), ("job", "api"), ("instance", f"i{i}")],
            [(t * 1000, float((t * 7 + i) % 50)) for t in range(0, 900, 2)],
        )
        for i in range(3)
    ]
    reply = client.post("/api/v1/write", snappy(write_request(series)), RW_HEADERS)
    assert reply.status == 204, reply.body
    return client


def _query(client, query: str, **extra: str):
    params = [("query", query), ("start", "300"), ("end", "780"), ("step", "60")]
    params += list(extra.items())
    deadline = time.monotonic() + 10
    while True:  # windows close asynchronously (flush timer)
        reply = client.get("/api/v1/query_range", params)
        assert reply.status == 200, reply.body
        body = reply.json()
        if extra or "approximate" in str(body.get("infos")) or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_approximate_answers_carry_an_info_naming_the_sketch_and_its_bound(client):
    body = _query(client, "quantile_over_time(0.5, lat[2m])")
    info = next(i for i in body["infos"] if "approximate" in i)
    assert "aggregation 1 (DatasketchesKLL k=16)" in info and "rank error ≤" in info
    exact = _query(client, "quantile_over_time(0.5, lat[2m])", precompute="off")
    assert "infos" not in exact or not exact["infos"]
    assert len(exact["data"]["result"]) == len(body["data"]["result"]) == 3


def test_explain_shows_the_rewritten_plan_and_precompute_off_the_exact_one(client):
    plan = _query(client, "sum(sum_over_time(lat[5m]))", explain="true")["data"]["explain"]["text"]
    assert "SummaryMergeMultiple: windows_per_step=[5]" in plan
    assert "Note: precomputed: sum_over_time" in plan
    off = _query(client, "sum(sum_over_time(lat[5m]))", explain="true", precompute="off")
    assert "SummaryMergeMultiple" not in off["data"]["explain"]["text"]


def test_analyze_reports_windows_merged(client):
    _query(client, "quantile_over_time(0.5, lat[2m])")  # wait until windows are closed
    body = _query(client, "sum(sum_over_time(lat[5m]))", analyze="true")
    text = body["data"]["analyze"]["text"]
    assert "windows_merged=[" in text and body["data"]["result"]
