"""Query latency, Tidemark vs Prometheus 2.42, on the data shape of Prometheus' engine benchmark.

Data (``promql/bench_test.go``, ``setupRangeQueryTestData``): ``a_X``, ``b_X`` and classic
histograms ``h_X`` (``le`` 0..9 and +Inf) for X in one/ten/hundred series, a sample every 10 s,
value ``s + i/len(metrics)``; here ``--hours`` of data (default 4) plus 1000 steps. Both servers
hold the same samples: Tidemark in memory (appended in process), Prometheus through its
remote-write receiver in time order. Tidemark serves from a child process forked after the
load (as ``tidemark serve`` would, and as Prometheus does: the benchmark client's own Python
work must not compete with the server for one interpreter lock). Cases are upstream's ``rangeQueryCases`` that run on both
engines (``smoothed``, ``limitk``/``limit_ratio`` and ``double_exponential_smoothing`` are
Prometheus 3 only), with X in one/hundred, at 1, 100 and 1000 steps of 10 s as upstream
(``start = end - steps * 10s``). Both are queried over HTTP (``/api/v1/query_range``), median of
up to ``--runs`` timed runs after one warm-up, each case capped by ``--case-seconds``.

    .venv/bin/python bench/query.py [--hours 4] [--runs 3] [--case-seconds 2] [--steps 1,100,1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.allocator import tune_allocator  # noqa: E402
from server.routes_query import QueryAPIConfig  # noqa: E402
from storage.db import Storage  # noqa: E402
from storage.model import Labels, SampleBatch, make_labels  # noqa: E402
from tests.api.conftest import QueryServer  # noqa: E402
from tests.compat.peer import PrometheusPeer, missing_reason  # noqa: E402

INTERVAL_MS = 10_000

CASES = [
    "a_X",
    "rate(a_X[1m])",
    "rate(a_X[5m])",
    "changes(a_X[1d])",
    "rate(a_X[1d])",
    "absent_over_time(a_X[1d])",
    "-a_X",
    "a_X - b_X",
    "a_X and b_X{l=~'.*[0-4]$'}",
    "a_X or b_X{l=~'.*[0-4]$'}",
    "a_X unless b_X{l=~'.*[0-4]$'}",
    "a_X and b_X{l='notfound'}",
    "abs(a_X)",
    "label_replace(a_X, 'l2', '$1', 'l', '(.*)')",
    "label_join(a_X, 'l2', '-', 'l', 'l')",
    "sum(a_X)",
    "avg(a_X)",
    "sum without (l)(h_X)",
    "sum without (le)(h_X)",
    "sum by (l)(h_X)",
    "sum by (le)(h_X)",
    "count_values('value', h_X)",
    "topk(1, a_X)",
    "topk(5, a_X)",
    "rate(a_X[1m]) + rate(b_X[1m])",
    "sum without (l)(rate(a_X[1m]))",
    "sum without (l)(rate(a_X[1m])) / sum without (l)(rate(b_X[1m]))",
    "histogram_quantile(0.9, rate(h_X[5m]))",
    "a_X + on(l) group_right a_one",
    'count({__name__!=""})',
    'count({__name__!="",l=""})',
    "timestamp(a_X)",
]
# Upstream runs these at fixed step counts only.
FIXED_STEPS = {"count_values('value', h_X)": (100,), 'count({__name__!=""})': (1,)}
FIXED_STEPS['count({__name__!="",l=""})'] = (1,)


def metrics() -> list[Labels]:
    out = [make_labels({"__name__": "a_one"}), make_labels({"__name__": "b_one"})]
    out += [make_labels({"__name__": "h_one", "le": le}) for le in [*map(str, range(10)), "+Inf"]]
    for size, n in (("ten", 10), ("hundred", 100)):
        for i in range(n):
            out.append(make_labels({"__name__": f"a_{size}", "l": str(i)}))
            out.append(make_labels({"__name__": f"b_{size}", "l": str(i)}))
            for le in [*map(str, range(10)), "+Inf"]:
                out.append(make_labels({"__name__": f"h_{size}", "l": str(i), "le": le}))
    return out


def dataset(num_intervals: int) -> dict[Labels, tuple[np.ndarray, np.ndarray]]:
    ms = metrics()
    ts = np.arange(num_intervals, dtype=np.int64) * INTERVAL_MS
    steps = np.arange(num_intervals, dtype=np.float64)
    return {m: (ts, steps + i / len(ms)) for i, m in enumerate(ms)}


def as_batch(data: dict[Labels, tuple[np.ndarray, np.ndarray]]) -> SampleBatch:
    labels = list(data)
    n = len(next(iter(data.values()))[0])
    idx = np.repeat(np.arange(len(labels), dtype=np.int64), n)
    ts = np.concatenate([data[ls][0] for ls in labels])
    vals = np.concatenate([data[ls][1] for ls in labels])
    return SampleBatch(labels, idx, ts, vals)


def expand() -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for expr in CASES:
        variants = [expr.replace("X", x) for x in ("one", "hundred")] if "X" in expr else [expr]
        for v in variants:
            for steps in FIXED_STEPS.get(expr, (1, 100, 1000)):
                out.append((v, steps))
    return out


def timed_get(url: str, timeout_s: float) -> tuple[float, bytes]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read()
    except urllib.error.HTTPError as err:
        body = err.read()
    return time.perf_counter() - started, body


def measure(base: str, params: str, runs: int, budget_s: float) -> tuple[float | None, bytes]:
    url = f"{base}/api/v1/query_range?{params}"
    try:
        first, body = timed_get(url, 120)  # warm-up (also the answer we check)
    except TimeoutError:
        return None, b""
    samples: list[float] = []
    spent = first
    while len(samples) < runs and spent < budget_s:
        took, _ = timed_get(url, 120)
        samples.append(took)
        spent += took
    return (statistics.median(samples) if samples else first), body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=4.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--case-seconds", type=float, default=2.0)
    ap.add_argument("--steps", default="1,100,1000")
    ap.add_argument("--filter", default="", help="only cases whose expression contains this")
    args = ap.parse_args(argv)
    tune_allocator()  # as `tidemark serve` does
    reason = missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0
    wanted = {int(s) for s in args.steps.split(",")}
    num_intervals = int(args.hours * 360) + 1000
    data = dataset(num_intervals)
    n_samples = sum(len(t) for t, _ in data.values())
    print(f"data: {len(data)} series, {n_samples} samples, {num_intervals * 10 / 3600:.1f} h")
    storage = Storage.in_memory()
    t0 = time.perf_counter()
    storage.append(as_batch(data))
    print(f"tidemark load: {time.perf_counter() - t0:.1f} s")
    # Forked before Prometheus' helper threads exist; the child inherits the loaded storage.
    server, tide_port = _serve_in_child(storage)
    prom = PrometheusPeer(["--query.max-samples=50000000"]).start()
    try:
        t0 = time.perf_counter()
        prom.remote_write(data, slice_ms=1_800_000)
        print(f"prometheus load (remote write): {time.perf_counter() - t0:.1f} s")
        tide_url = f"http://127.0.0.1:{tide_port}"
        rows = []
        for expr, steps in expand():
            if steps not in wanted or args.filter not in expr:
                continue
            end_s = num_intervals * 10
            params = urllib.parse.urlencode(
                {"query": expr, "start": end_s - steps * 10, "end": end_s, "step": "10"}
            )
            ours, body_ours = measure(tide_url, params, args.runs, args.case_seconds)
            theirs, body_theirs = measure(prom.url, params, args.runs, args.case_seconds)
            same = _same_shape(body_ours, body_theirs)
            rows.append((expr, steps, ours, theirs, same))
            print(_row(*rows[-1]), flush=True)
    finally:
        server.terminate()
        server.join(10)
        prom.stop()
    _summary(rows)
    return 0


def _serve_in_child(storage: Storage) -> tuple[multiprocessing.Process, int]:
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_child_server, args=(storage, child_end), daemon=True)
    proc.start()
    if not parent_end.poll(60):
        proc.terminate()
        raise RuntimeError("tidemark server child did not start")
    return proc, int(parent_end.recv())


def _child_server(storage: Storage, conn) -> None:
    server = QueryServer(storage, QueryAPIConfig(max_samples=50_000_000)).start()
    conn.send(server.port)
    # Serve until the parent terminates the child (SIGTERM ends the process).
    while True:
        time.sleep(3600)
        if os.getppid() == 1:
            return


def _same_shape(a: bytes, b: bytes) -> str:
    import orjson

    try:
        ja, jb = orjson.loads(a), orjson.loads(b)
    except orjson.JSONDecodeError:
        return "?"
    if ja.get("status") != "success":
        return "ERR " + str(ja.get("error", ""))[:60]
    ra, rb = ja["data"]["result"], jb["data"]["result"]
    if len(ra) != len(rb):
        return f"series {len(ra)} vs {len(rb)}"
    pa = sum(len(s["values"]) for s in ra)
    pb = sum(len(s["values"]) for s in rb)
    return "ok" if pa == pb else f"points {pa} vs {pb}"


def _row(expr: str, steps: int, ours: float | None, theirs: float | None, same: str) -> str:
    o = f"{ours * 1000:9.2f}" if ours is not None else "  timeout"
    t = f"{theirs * 1000:9.2f}" if theirs is not None else "  timeout"
    ratio = f"{ours / theirs:7.2f}" if ours and theirs else "      -"
    return f"| {expr:<62} | {steps:>5} | {o} | {t} | {ratio} | {same} |"


def _summary(rows: list) -> None:
    print()
    print(f"| {'expr':<62} | steps | tidemark ms | prometheus ms | ratio | answers |")
    print(f"|{'-' * 64}|-------|-----------|-----------|---------|---------|")
    for r in rows:
        print(_row(*r))
    big = [r for r in rows if r[1] == 1000 and "hundred" in r[0] and r[2] and r[3]]
    if big:
        ratios = [r[2] / r[3] for r in big]
        at_goal = sum(x <= 1.0 for x in ratios)
        print(
            f"\n1000-step cases over hundred series: median ratio {statistics.median(ratios):.2f}, "
            f"{at_goal}/{len(ratios)} at or below 1.0"
        )


if __name__ == "__main__":
    sys.exit(main())
