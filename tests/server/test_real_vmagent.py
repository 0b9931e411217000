"""A second real sender: Debian's vmagent scrapes Tidemark's /metrics and remote-writes it back."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.server.conftest import free_port

VMAGENT = shutil.which("vmagent") or "/usr/bin/vmagent"

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(not Path(VMAGENT).exists(), reason="Debian's vmagent is not installed"),
]


def test_vmagent_remote_write_lands_scraped_series(server, tmp_path):
    client, _ = server
    port = int(client.base.rsplit(":", 1)[1])
    config = tmp_path / "scrape.yml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: tidemark-self\n"
        "    scrape_interval: 1s\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            VMAGENT,
            f"-promscrape.config={config}",
            f"-remoteWrite.url=http://127.0.0.1:{port}/api/v1/write",
            f"-remoteWrite.tmpDataPath={tmp_path / 'queue'}",
            f"-httpListenAddr=127.0.0.1:{free_port()}",
            "-remoteWrite.flushInterval=200ms",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        found: list = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.3)
            reply = client.get(
                "/api/v1/series",
                [("match[]", 'tidemark_ingest_samples_total{job="tidemark-self"}')],
            )
            found = reply.json()["data"]
        assert found, "vmagent's samples never arrived"
        assert found[0]["instance"] == f"127.0.0.1:{port}"
        export = client.get("/api/v1/export", [("match[]", 'up{job="tidemark-self"}')])
        assert b'"values":[1' in export.body
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
