"""A real sender: Debian's Prometheus scrapes itself and remote-writes to Tidemark.

Whatever Prometheus stored for its own job up to a cut-off time must arrive in Tidemark: every
series (``/api/v1/series``) and every raw sample with its exact value (``/api/v1/export``).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.server.conftest import Client, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(
        not Path(PROMETHEUS).exists(),
        reason="Debian's prometheus binary is not installed (make peers installs it as root)",
    ),
]

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
remote_write:
  - url: http://127.0.0.1:{tidemark_port}/api/v1/write
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 50ms
      max_backoff: 500ms
    metadata_config:
      send_interval: 1s
"""


def prom_get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, IndexError, KeyError):
            pass  # not up yet, or no data yet
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def sent_by_prometheus(port: int, at: float) -> dict[tuple, dict[int, float]]:
    """Prometheus' own raw samples of its job in the 30 s before ``at``."""
    q = urllib.parse.urlencode({"query": '{job="prometheus"}[30s]', "time": f"{at:.3f}"})
    doc = prom_get(port, f"/api/v1/query?{q}")
    out = {}
    for series in doc["data"]["result"]:
        labels = tuple(sorted(series["metric"].items()))
        out[labels] = {round(float(t) * 1000): float(v) for t, v in series["values"]}
    return out


def in_tidemark(client: Client) -> dict[tuple, dict[int, float]]:
    reply = client.get("/api/v1/export", [("match[]", '{job="prometheus"}')])
    out = {}
    for line in reply.body.splitlines():
        doc = orjson.loads(line)
        labels = tuple(sorted(doc["metric"].items()))
        out[labels] = dict(zip(doc["timestamps"], doc["values"], strict=True))
    return out


def test_prometheus_remote_write_delivers_every_series_and_sample(server, tmp_path):
    client, _ = server
    tidemark_port = int(client.base.rsplit(":", 1)[1])
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(prom_port=prom_port, tidemark_port=tidemark_port))
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # A few scrapes of itself, then a cut-off a little in the past.
        count = '/api/v1/query?query=count_over_time(up{job="prometheus"}[10s])'
        wait_for(
            lambda: float(prom_get(prom_port, count)["data"]["result"][0]["value"][1]) >= 3,
            30,
            "three scrapes",
        )
        cutoff = time.time() - 0.5
        expected = sent_by_prometheus(prom_port, cutoff)
        assert len(expected) > 50, "Prometheus exposes hundreds of its own series"

        def all_arrived():
            got = in_tidemark(client)
            missing = [
                (labels, t)
                for labels, samples in expected.items()
                for t in samples
                if t not in got.get(labels, {})
            ]
            return got if not missing else None

        got = wait_for(all_arrived, 30, "all samples in Tidemark")
        for labels, samples in expected.items():
            for t, v in samples.items():
                assert got[labels][t] == v or (v != v and got[labels][t] is None), (labels, t)
        names = client.get("/api/v1/series", [("match[]", '{job="prometheus"}')]).json()["data"]
        assert {tuple(sorted(s.items())) for s in names} >= set(expected)
        meta = wait_for(
            lambda: client.get("/api/v1/metadata", [("metric", "prometheus_build_info")]).json()[
                "data"
            ],
            15,
            "metadata",
        )
        assert meta["prometheus_build_info"][0]["type"] == "gauge"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
