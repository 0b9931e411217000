"""Operational endpoints and the ingest listener hook."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest

from storage.model import DurableBatch
from tests.server.payloads import RW_HEADERS, snappy, write_request


def test_metrics_is_valid_prometheus_text_per_promtool(server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (make peers installs it as root)")
    client, _ = server
    client.post("/api/v1/write", b"junk", RW_HEADERS)
    client.post(
        "/api/v1/write", snappy(write_request([([("__name__", "m")], [(1, 1.0)])])), RW_HEADERS
    )
    text = client.get("/metrics").body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    # promtool exits 1 for lint warnings only too; errors would be "error while linting".
    assert b"error while linting" not in check.stderr + check.stdout, check.stderr
    for family in (
        b"tidemark_ingest_samples_total",
        b"tidemark_ingest_bytes_total",
        b"tidemark_requests_rejected_total",
        b"tidemark_storage_series",
        b"tidemark_storage_wal_bytes",
        b"tidemark_storage_blocks",
        b"tidemark_storage_compaction_seconds_total",
    ):
        assert b"# TYPE " + family in text


def test_listeners_see_each_batch_before_the_request_is_acknowledged(server):
    client, storage = server
    seen: list[DurableBatch] = []
    acked = threading.Event()

    def listener(durable: DurableBatch) -> None:
        assert not acked.is_set()
        seen.append(durable)

    storage.add_listener(listener)
    raw = write_request(
        [([("__name__", "a")], [(1, 1.0), (2, 2.0)]), ([("__name__", "b")], [(1, 3.0)])]
    )
    assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
    acked.set()
    assert len(seen) == 1
    durable = seen[0]
    assert durable.batch.values.tolist() == [1.0, 2.0, 3.0]
    assert np.array_equal(
        durable.sample_series_ids, durable.series_ids[durable.batch.sample_series]
    )


def test_rejected_requests_never_reach_listeners(server):
    client, storage = server
    seen: list[DurableBatch] = []
    storage.add_listener(seen.append)
    bad = write_request([([("__name__", "ok")], [(1, 1.0)]), ([("job", "no-name")], [(1, 1.0)])])
    assert client.post("/api/v1/write", snappy(bad), RW_HEADERS).status == 400
    assert seen == []


def test_unknown_routes_are_404_and_errors_are_json(server):
    client, _ = server
    assert client.get("/api/v1/nope").status == 404
    reply = client.get("/api/v1/label/job/values", [("start", "yesterday")])
    assert reply.status == 400
    assert reply.json()["errorType"] == "bad_data"
