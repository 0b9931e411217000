"""``tidemark serve --precompute``: windows and open panes survive a graceful restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.server.conftest import free_port
from tests.server.payloads import RW_HEADERS, snappy, write_request

CONFIG = """
aggregations:
  - {aggregationId: 1, aggregationType: Sum, labels: {grouping: [job]}, metric: req,
     windowSize: 10, slideInterval: 10, windowType: tumbling}
engine: {flush_interval_ms: 200}
"""


class Server:
    def __init__(self, tmp_path, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(tmp_path / "data"), "--precompute", str(tmp_path / "pc.yaml")],
            cwd=root, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/-/ready", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def write(self, samples) -> None:
        body = snappy(write_request([([("__name__", "req"), ("job", "api")], samples)]))
        req = urllib.request.Request(self.base + "/api/v1/write", body, RW_HEADERS, method="POST")
        assert urllib.request.urlopen(req).status == 204

    def windows(self):
        url = self.base + "/api/v1/precompute/windows?aggregation_id=1"
        data = json.loads(urllib.request.urlopen(url).read())["data"]
        return [(w["start"], w["end"], w["stats"]["sum"]) for w in data]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


@pytest.mark.slow
def test_graceful_restart_keeps_stored_windows_and_open_panes(tmp_path):
    (tmp_path / "pc.yaml").write_text(CONFIG)
    port = free_port()
    first = Server(tmp_path, port)
    try:
        first.write([(1_000, 1.0), (5_000, 2.0), (15_000, 3.0), (25_000, 4.0)])
        time.sleep(0.3)
        assert first.windows() == [(0.0, 10.0, 3.0), (10.0, 20.0, 3.0)]
    finally:
        first.stop()
    second = Server(tmp_path, port)
    try:
        second.write([(35_000, 10.0)])  # closes (20 s, 30 s], whose pane was open at shutdown
        time.sleep(0.3)
        assert second.windows() == [(0.0, 10.0, 3.0), (10.0, 20.0, 3.0), (20.0, 30.0, 4.0)]
    finally:
        second.stop()
