"""Debian's Prometheus 2.42 as a peer: start it on a free loopback port, feed it, stop it by PID.

Data goes in through its remote-write receiver (``--web.enable-remote-write-receiver``) rather
than ``promtool tsdb create-blocks-from openmetrics``: OpenMetrics text cannot carry Prometheus'
stale marker, and remote write keeps every value bit-exact. Samples are sent in time order
(all series of one time slice per request), which keeps them inside the head's appendable
window however long the data set is. In 2.42 the ``@`` modifier and negative offsets are on by
default (the ``promql-at-modifier``/``promql-negative-offset`` flags are no-ops since 2.33).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import cramjam
import numpy as np

from storage.model import Labels

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

Series = dict[Labels, tuple[np.ndarray, np.ndarray]]
"""Label set -> (int64 ms timestamps, float64 values), timestamps ascending."""


def missing_reason() -> str | None:
    for binary in (PROMETHEUS, PROMTOOL):
        if not Path(binary).exists():
            return f"{binary} is not installed (Debian package prometheus)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusPeer:
    """One ``prometheus`` process with a temporary data dir; ``stop()`` ends exactly that PID."""

    def __init__(self, extra_flags: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="tidemark-prom-")
        self._extra = list(extra_flags)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> PrometheusPeer:
        root = Path(self._dir.name)
        config = root / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\n  evaluation_interval: 1m\n")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=100y",
                "--log.level=warn",
                *self._extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=(root / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (root / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {log[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("prometheus did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._dir.cleanup()

    def remote_write(self, series: Series, slice_ms: int = 600_000) -> int:
        """Send all samples in time order, one request per time slice; returns samples sent."""
        return remote_write(self.url + "/api/v1/write", series, slice_ms)


def remote_write(url: str, series: Series, slice_ms: int = 600_000) -> int:
    from server.remote_pb import WriteRequest

    if not series:
        return 0
    lo = min(int(ts[0]) for ts, _ in series.values() if len(ts))
    hi = max(int(ts[-1]) for ts, _ in series.values() if len(ts))
    sent = 0
    for start in range(lo, hi + 1, slice_ms):
        req = WriteRequest()
        n = 0
        for labels, (ts, vals) in series.items():
            a, b = np.searchsorted(ts, [start, start + slice_ms])
            if a == b:
                continue
            out = req.timeseries.add()
            for name, value in labels:
                out.labels.add(name=name, value=value)
            for t, v in zip(ts[a:b].tolist(), vals[a:b].tolist(), strict=True):
                out.samples.add(timestamp=t, value=v)
            n += int(b - a)
        if n == 0:
            continue
        body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            if resp.status not in (200, 204):
                raise RuntimeError(f"remote write answered {resp.status}")
        sent += n
    return sent
