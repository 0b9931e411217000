from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promql.types import Matcher, MatchType
from server.cli import build_parser, main
from server.commands.serve import parse_listen
from server.config import DEFAULT_PORT
from storage.db import Storage
from tests.server.conftest import Client, free_port
from tests.server.payloads import RW_HEADERS, snappy, write_request

ROOT = Path(__file__).resolve().parents[2]


def test_fmt_prints_the_canonical_query(capsys):
    assert main(["fmt", "sum(rate(x[5m]))by(job)"]) == 0
    assert capsys.readouterr().out == "sum by (job) (rate(x[5m]))\n"


def test_fmt_prints_the_parse_error_and_exits_1(capsys):
    assert main(["fmt", "sum("]) == 1
    err = capsys.readouterr().err
    assert "parse error" in err and "1:" in err


def test_serve_defaults_avoid_prometheus_and_victoriametrics_ports():
    args = build_parser().parse_args(["serve"])
    assert args.listen == ("127.0.0.1", DEFAULT_PORT)
    assert DEFAULT_PORT not in (9090, 8428)
    assert args.data_dir == "./data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.0.0.0:80", ("0.0.0.0", 80)), (":9000", ("127.0.0.1", 9000)), ("[::1]:5", ("::1", 5))],
)
def test_listen_addresses_parse(text, expected):
    assert parse_listen(text) == expected


def test_retention_takes_a_prometheus_duration():
    args = build_parser().parse_args(["serve", "--retention", "15d"])
    assert args.retention == 15 * 86_400_000


def test_sigterm_shuts_down_cleanly_and_keeps_acknowledged_data(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path),
            "--log-level",
            "warning",
            "--query.max-samples",
            "1",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    client = Client(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/-/healthy").status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        raw = write_request([([("__name__", "kept")], [(1000, 42.0)])])
        assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
        raw = write_request([([("__name__", "kept")], [(2000, 43.0)])])
        assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
        # --query.max-samples reaches the engine: two samples exceed a limit of one.
        over = client.get("/api/v1/query", [("query", "kept[1h]"), ("time", "3")])
        assert over.status == 422, over.json()
        assert over.json()["errorType"] == "execution"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    db = Storage.open(tmp_path)
    try:
        ss = db.select([Matcher(MatchType.EQUAL, "__name__", "kept")], 0, 10_000)
        assert ss.values.tolist() == [42.0, 43.0]
    finally:
        db.close()


def test_query_flags_take_prometheus_names_and_durations():
    from server.commands.serve import _query_config

    args = build_parser().parse_args(
        [
            "serve",
            "--query.timeout=30s",
            "--query.max-concurrency=3",
            "--query.max-samples=1000",
            "--query.lookback-delta=1m",
            "--web.cors.origin=https://grafana\\.example",
        ]
    )
    cfg = _query_config(args)
    assert (cfg.timeout_s, cfg.max_concurrent, cfg.max_samples, cfg.lookback_ms) == (
        30.0,
        3,
        1000,
        60_000,
    )
    assert cfg.cors_origin == "https://grafana\\.example"
    assert cfg.inline_below_s == 0.002  # the default
    off = build_parser().parse_args(["serve", "--query.inline-below=0"])
    assert _query_config(off).inline_below_s == 0.0
