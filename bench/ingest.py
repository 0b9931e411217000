"""Ingest benchmark: Tidemark vs Debian's Prometheus 2.42 remote-write receiver, side by side.

Run: ``.venv/bin/python bench/ingest.py [--rounds N] [--series N]``. Prints one table:

* remote-write throughput with Prometheus-shaped payloads (2,000 samples per request, one sample
  per series, 100k series, timestamps advancing per round, 2 client workers): the first round
  (series creation) and the steady rounds, samples/s, and the ratio to Prometheus;
* the same remote-write rounds as remote write 2.0 (``io.prometheus.write.v2.Request``, with the
  per-series metadata Prometheus 3 sends), Tidemark only (Prometheus 2.42 cannot receive 2.0);
* in-process decode only, 1.0 vs 2.0, of the same 2,000-series request (best of several runs);
* the seed's batch-latency case (1,000 samples = 10 series x 100 in one request): p50/p99;
* ``select`` scan throughput over 10k series x 2 h (15 s interval) from a block and from the head;
* bytes per sample in memory (RSS growth of an in-memory store) and on disk (blocks).

Both servers run as subprocesses on 127.0.0.1 with temporary data directories and are stopped by
PID. The whole run is bounded (about two minutes on 2 cores); Prometheus' columns say "n/a" when
``/usr/bin/prometheus`` is missing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rw_payloads import (  # noqa: E402
    label_bytes,
    latency_request,
    pb_field,
    rw2_request,
    rw2_requests,
    rw_requests,
    sample_bytes,
    shaped_labels,
    shaped_pairs,
)
from promql.types import Matcher, MatchType  # noqa: E402
from storage.db import Storage  # noqa: E402
from storage.model import SampleBatch  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
HEADERS_V2 = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Peer:
    name: str
    port: int
    proc: subprocess.Popen
    data_dir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_ready(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not ready")


def start_tidemark(tmp: Path) -> Peer:
    port = free_port()
    data = tmp / "tidemark"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    wait_ready(port, "/-/ready")
    return Peer("tidemark", port, proc, data)


def start_prometheus(tmp: Path) -> Peer | None:
    if not Path(PROMETHEUS).exists():
        return None
    port = free_port()
    data = tmp / "prometheus"
    config = tmp / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(port, "/-/ready")
    return Peer("prometheus", port, proc, data)


# -- clients ---------------------------------------------------------------------------------


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with TCP_NODELAY, as Go's HTTP client (Prometheus' sender) uses.

    Without it, http.client's separate header and body writes meet Nagle's algorithm and the
    server's delayed ACK: ~40 ms stalls per request that would measure the client, not the server.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def post_all(
    port: int, bodies: list[bytes], workers: int, headers: dict[str, str] = HEADERS
) -> tuple[float, int]:
    """Send ``bodies`` with ``workers`` keep-alive connections; (seconds, failed requests)."""
    failures = [0] * workers

    def work(k: int) -> None:
        conn = connect(port)
        for body in bodies[k::workers]:
            conn.request("POST", "/api/v1/write", body, headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status // 100 != 2:
                failures[k] += 1
        conn.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, sum(failures)


def _post(conn: http.client.HTTPConnection, body: bytes) -> float:
    start = time.perf_counter()
    conn.request("POST", "/api/v1/write", body, HEADERS)
    resp = conn.getresponse()
    resp.read()
    if resp.status // 100 != 2:
        raise RuntimeError(f"latency batch rejected: {resp.status}")
    return time.perf_counter() - start


def compare(
    peers: list[Peer],
    rounds: list[list[bytes]],
    per_round: int,
    lat: list[bytes],
    t_lat: int,
    repeats: int,
) -> dict[str, dict[str, float]]:
    """Throughput and latency of every peer, rounds interleaved between the peers.

    The machine is shared: interleaving spreads load changes evenly over both servers instead
    of penalizing whichever ran during a busy minute.
    """
    res: dict[str, dict[str, float]] = {p.name: {"failed": 0, "steady_s": 0.0} for p in peers}
    for p in peers:
        dt, failed = post_all(p.port, rounds[0], workers=2)
        res[p.name]["first"] = per_round / dt
        res[p.name]["failed"] += failed
    for bodies in rounds[1:]:
        for p in peers:
            dt, failed = post_all(p.port, bodies, workers=2)
            res[p.name]["steady_s"] += dt
            res[p.name]["failed"] += failed
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    conns = {p.name: connect(p.port) for p in peers}
    for block in range(0, repeats, 20):
        for p in peers:
            for r in range(block, min(block + 20, repeats)):
                body = latency_request(lat, t_lat + r * 1000, 100)
                times[p.name].append(_post(conns[p.name], body))
    for p in peers:
        conns[p.name].close()
        out = res[p.name]
        out["steady"] = per_round * (len(rounds) - 1) / out.pop("steady_s")
        out["rss"] = p.rss_bytes()
        ms = np.array(times[p.name]) * 1000
        out["p50"], out["p99"] = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
    return res


def v2_rounds(peer: Peer, rounds: list[list[bytes]], per_round: int) -> dict[str, float]:
    """Remote write 2.0 throughput of one peer: first round (series creation), steady rounds."""
    dt, failed = post_all(peer.port, rounds[0], workers=2, headers=HEADERS_V2)
    out = {"first": per_round / dt, "failed": float(failed)}
    steady = 0.0
    for bodies in rounds[1:]:
        dt, failed = post_all(peer.port, bodies, workers=2, headers=HEADERS_V2)
        steady += dt
        out["failed"] += failed
    out["steady"] = per_round * (len(rounds) - 1) / steady
    return out


def decode_only(per_request: int, requests: int = 10, repeats: int = 7) -> dict[str, float]:
    """Samples/s of the in-process decoders on the same data as 1.0 and as 2.0 (with metadata),
    label caches warm, best of ``repeats`` interleaved runs (CPU time: the machine is shared)."""
    from server.decode_remote_write import RemoteWriteDecoder
    from server.decode_remote_write_v2 import RemoteWriteV2Decoder

    series = [shaped_pairs(i) for i in range(per_request * requests)]
    values = np.random.default_rng(0).random(len(series)) * 1e6
    chunks = [slice(a, a + per_request) for a in range(0, len(series), per_request)]
    v1 = [
        b"".join(
            pb_field(1, label_bytes(p) + sample_bytes(1000, v))
            for p, v in zip(series[c], values[c].tolist(), strict=True)
        )
        for c in chunks
    ]
    v2 = [rw2_request(series[c], 1000, values[c]) for c in chunks]
    d1, d2 = RemoteWriteDecoder(), RemoteWriteV2Decoder()

    def run1() -> None:
        for body in v1:
            d1.decode(body)

    def run2() -> None:
        for body in v2:
            d2.metadata_stored(d2.decode(body))  # as the server does once a batch is stored

    best = {"v1": float("inf"), "v2": float("inf")}
    for _ in range(repeats + 1):  # the first run fills the caches
        for name, run in (("v1", run1), ("v2", run2)):
            start = time.thread_time()
            run()
            best[name] = min(best[name], time.thread_time() - start)
    return {k: per_request * requests / v for k, v in best.items()}


# -- in-process storage cases ------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(db: Storage, n_series: int, t0: int, t1: int, step: int) -> int:
    """Append ``n_series`` gauges sampled every ``step`` ms in [t0, t1), one batch per time."""
    series = [
        (("__name__", f"scan_metric_{i % 100}"), ("instance", f"host-{i // 100}"), ("job", "scan"))
        for i in range(n_series)
    ]
    rng = np.random.default_rng(1)
    idx = np.arange(n_series, dtype=np.int64)
    total = 0
    walk = np.cumsum(rng.standard_normal(n_series))
    for k, t in enumerate(range(t0, t1, step * 20)):
        stamps = np.arange(t, min(t + step * 20, t1), step, dtype=np.int64)
        ts = np.repeat(stamps, n_series)
        vals = np.round(np.tile(walk, stamps.size) + rng.standard_normal(ts.size), 2)
        db.append(SampleBatch(series, np.tile(idx, stamps.size), ts, vals))
        total += ts.size
        walk += k
    return total


def select_rate(db: Storage, mint: int, maxt: int) -> tuple[float, int]:
    matchers = [Matcher(MatchType.EQUAL, "job", "scan")]
    db.select(matchers, mint, maxt)  # warm caches (mmap, regex)
    start = time.perf_counter()
    ss = db.select(matchers, mint, maxt)
    dt = time.perf_counter() - start
    return ss.timestamps.size / dt, ss.timestamps.size


def storage_cases(tmp: Path, n_series: int) -> dict[str, float]:
    hour = 3_600_000
    t0 = 1_700_000_000_000 // (2 * hour) * (2 * hour)
    step = 15_000
    out: dict[str, float] = {}
    mem = Storage.in_memory()
    before = _rss()
    n = fill(mem, n_series, t0, t0 + 2 * hour, step)
    out["mem_bytes_per_sample"] = (_rss() - before) / n
    out["head_scan"], out["head_scan_samples"] = select_rate(mem, t0, t0 + 2 * hour - 1)
    del mem
    disk = Storage.open(tmp / "scan")
    # 3.5 h of data: the head then spans over 1.5 block durations, the first 2 h become a block.
    fill(disk, n_series, t0, t0 + 7 * hour // 2, step)
    disk.wait_for_maintenance()  # the cut to blocks runs in the background
    stats = disk.stats()
    out["block_scan"], out["block_scan_samples"] = select_rate(disk, t0, t0 + 2 * hour - 1)
    out["disk_bytes_per_sample"] = (
        stats["block_bytes"] / stats["block_samples"]
        if stats.get("block_samples")
        else float("nan")
    )
    disk.close()
    return out


# -- main ------------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "/s":
        return f"{v / 1e6:.2f} M/s" if v >= 1e5 else f"{v / 1e3:.1f} k/s"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "B":
        return f"{v:.2f} B"
    return f"{v:g}"


def _ratio(a: float | None, b: float | None, higher_better: bool = True) -> str:
    if a is None or b is None or a != a or b != b or not b or not a:
        return ""
    return f"{(a / b if higher_better else b / a):.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--per-request", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6, help="first round + steady rounds")
    parser.add_argument("--latency-repeats", type=int, default=200)
    parser.add_argument("--scan-series", type=int, default=10_000)
    args = parser.parse_args()

    now = time.time_ns() // 1_000_000
    t0 = now - 3_600_000  # inside Prometheus' appendable window
    print(f"building payloads: {args.series} series x {args.rounds} rounds ...", file=sys.stderr)
    labels = [shaped_labels(i) for i in range(args.series)]
    rounds = [
        rw_requests(labels, t0 + r * 15_000, args.per_request, seed=r) for r in range(args.rounds)
    ]
    v2_series = [shaped_pairs(i, prefix="node_v2_metric") for i in range(args.series)]
    rounds_v2 = [
        rw2_requests(v2_series, t0 + r * 15_000, args.per_request, seed=r)
        for r in range(args.rounds)
    ]
    lat_labels = [label_bytes([("__name__", "latency_metric"), ("s", str(i))]) for i in range(10)]
    with tempfile.TemporaryDirectory(prefix="tidemark-bench-") as d:
        tmp = Path(d)
        peers: list[Peer] = []
        try:
            peers.append(start_tidemark(tmp))
            prom = start_prometheus(tmp)
            if prom is not None:
                peers.append(prom)
            print("remote write, interleaved ...", file=sys.stderr)
            t_lat = t0 + len(rounds) * 15_000
            res = compare(peers, rounds, args.series, lat_labels, t_lat, args.latency_repeats)
            print("remote write 2.0 (Tidemark only) ...", file=sys.stderr)
            res["tidemark_v2"] = v2_rounds(peers[0], rounds_v2, args.series)
        finally:
            for p in peers:
                p.stop()
        tm, pm = res.get("tidemark"), res.get("prometheus")
        print("storage scans ...", file=sys.stderr)
        st = storage_cases(tmp, args.scan_series)
    print("decode only ...", file=sys.stderr)
    dec = decode_only(args.per_request)

    _print_table(_rows(tm, pm, st, args) + _v2_rows(res.get("tidemark_v2"), dec, args))


def _v2_rows(t2, dec, args) -> list[tuple[str, str, str, str]]:
    none = "n/a (2.42 has no 2.0)"
    v2 = None if t2 is None else t2
    return [
        (
            "remote write 2.0, first round (series creation)",
            _fmt(v2 and v2["first"], "/s"),
            none,
            "",
        ),
        (
            f"remote write 2.0, steady ({args.rounds - 1} rounds)",
            _fmt(v2 and v2["steady"], "/s"),
            none,
            "",
        ),
        ("remote write 2.0, failed requests", _fmt(v2 and v2["failed"]), "", ""),
        (
            f"decode only, 1.0 WriteRequest ({args.per_request} series x 1)",
            _fmt(dec["v1"], "/s"),
            "",
            "",
        ),
        (
            "decode only, 2.0 Request, same data + metadata",
            _fmt(dec["v2"], "/s"),
            "",
            f"{dec['v2'] / dec['v1']:.2f}x of 1.0",
        ),
    ]


def _rows(tm, pm, st, args) -> list[tuple[str, str, str, str]]:
    def g(res, key):
        return None if res is None else res.get(key)

    mb = 1 << 20
    return [
        (
            "remote write, first round (series creation)",
            _fmt(g(tm, "first"), "/s"),
            _fmt(g(pm, "first"), "/s"),
            _ratio(g(tm, "first"), g(pm, "first")),
        ),
        (
            f"remote write, steady ({args.rounds - 1} rounds)",
            _fmt(g(tm, "steady"), "/s"),
            _fmt(g(pm, "steady"), "/s"),
            _ratio(g(tm, "steady"), g(pm, "steady")),
        ),
        ("remote write, failed requests", _fmt(g(tm, "failed")), _fmt(g(pm, "failed")), ""),
        (
            "server RSS after remote write",
            f"{g(tm, 'rss') / mb:.0f} MiB" if tm else "n/a",
            f"{g(pm, 'rss') / mb:.0f} MiB" if pm else "n/a",
            "",
        ),
        (
            "batch latency p50 (10 series x 100)",
            _fmt(g(tm, "p50"), "ms"),
            _fmt(g(pm, "p50"), "ms"),
            _ratio(g(tm, "p50"), g(pm, "p50"), higher_better=False),
        ),
        (
            "batch latency p99 (10 series x 100)",
            _fmt(g(tm, "p99"), "ms"),
            _fmt(g(pm, "p99"), "ms"),
            _ratio(g(tm, "p99"), g(pm, "p99"), higher_better=False),
        ),
        (
            f"select scan, block ({args.scan_series} series x 2 h)",
            _fmt(st["block_scan"], "/s"),
            "",
            "",
        ),
        (
            f"select scan, head ({args.scan_series} series x 2 h)",
            _fmt(st["head_scan"], "/s"),
            "",
            "",
        ),
        ("bytes per sample in memory (head)", _fmt(st["mem_bytes_per_sample"], "B"), "", ""),
        (
            "bytes per sample on disk (blocks)",
            _fmt(st["disk_bytes_per_sample"], "B"),
            "~1-2 B (documented)",
            "",
        ),
    ]


def _print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("case", "Tidemark", "Prometheus 2.42", "Tidemark vs Prometheus")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for r in rows:
        print(line.format(*r))


if __name__ == "__main__":
    main()
