"""Precompute engine throughput: samples/s per workload, 1 and 2 workers, engine alone and end to
end through ``/api/v1/write``; prints a table with the seed's Rust figures for reference.

    .venv/bin/python bench/precompute.py [--samples 1000000] [--backend thread|process|both]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from precompute.config import EngineOptions, StreamingConfig, load_config
from precompute.engine import PrecomputeEngine
from precompute.output import NoopSink
from storage.model import DurableBatch, SampleBatch, make_labels

SCRAPE_MS = 10_000

WORKLOADS = {
    "Sum tumbling 10s": ("Sum", 10, 10, "{}", "[job]", "[]", 10_000),
    "Sum sliding 30s/10s": ("Sum", 30, 10, "{}", "[job]", "[]", 10_000),
    "Sum sliding 60s/10s": ("Sum", 60, 10, "{}", "[job]", "[]", 10_000),
    "KLL k=200 60s/10s": ("DatasketchesKLL", 60, 10, "{K: 200}", "[job]", "[]", 10_000),
    "CountMin 5x2000 60s": (
        "CountMinSketch",
        60,
        60,
        "{depth: 5, width: 2000}",
        "[job]",
        "[instance]",
        10_000,
    ),
    "Sum per series (10k groups) 60s/10s": ("Sum", 60, 10, "{}", "[instance]", "[]", 10_000),
    "Increase per series (10k groups) 60s/10s": (
        "Increase",
        60,
        10,
        "{}",
        "[instance]",
        "[]",
        10_000,
    ),
    "MultipleIncrease 100k series 60s/10s": (
        "MultipleIncrease",
        60,
        10,
        "{}",
        "[]",
        "[instance]",
        100_000,
    ),
    # Keyed, many small groups with aggregated labels: columnar over (group, sub key) cells.
    "MultipleIncrease per series keyed by job (10k groups) 60s/10s": (
        "MultipleIncrease",
        60,
        10,
        "{}",
        "[instance]",
        "[job]",
        10_000,
    ),
    "MultipleLast per series (10k groups) 60s/10s": (
        "MultipleLast",
        60,
        10,
        "{}",
        "[instance]",
        "[job]",
        10_000,
    ),
}


def config_for(name: str) -> StreamingConfig:
    t, w, s, params, grouping, aggregated, _ = WORKLOADS[name]
    kind = "tumbling" if w == s else "sliding"
    return load_config(
        f"""
aggregations:
  - {{aggregationId: 1, aggregationType: {t}, parameters: {params},
     labels: {{grouping: {grouping}, aggregated: {aggregated}}}, metric: m,
     windowSize: {w}, slideInterval: {s}, windowType: {kind}}}
"""
    )


def make_batches(n_series: int, total: int, seed: int = 0) -> list[DurableBatch]:
    """One remote-write-like batch per scrape: every series once, counters increasing."""
    rng = np.random.default_rng(seed)
    series = [
        make_labels({"__name__": "m", "job": f"job{i % 10}", "instance": f"host{i}"})
        for i in range(n_series)
    ]
    ids = np.arange(n_series, dtype=np.int64)
    scrapes = max(1, total // n_series)
    batches = []
    vals = rng.uniform(0, 1000, n_series)
    for k in range(scrapes):
        ts = (k * SCRAPE_MS + rng.integers(0, 1000, n_series)).astype(np.int64)
        # Counters only grow between scrapes (a real counter resets on restarts only): the old
        # ``base + k·uniform(0, 10)`` dropped on most scrapes, so nearly every window carried
        # counter resets and records ~80 KB bigger than real counters give.
        vals = vals + rng.uniform(0, 10, n_series)
        batches.append(DurableBatch(SampleBatch(series, ids, ts, vals.copy()), ids, ids))
    return batches


def engine_rate(name: str, workers: int, backend: str, batches) -> float:
    config = config_for(name)
    options = EngineOptions(num_workers=workers, backend=backend, flush_interval_ms=0)
    engine = PrecomputeEngine(StreamingConfig(config.aggregations, options), NoopSink())
    # Warm-up: series resolution and key interning happen once per series, like a long-running
    # server that has seen its series before; the measured part is steady-state ingest.
    engine.on_batch(batches[0])
    engine.drain()
    n = sum(len(b.batch) for b in batches[1:])
    t0 = time.perf_counter()
    for b in batches[1:]:
        engine.on_batch(b)
    engine.drain()
    dt = time.perf_counter() - t0
    engine.stop(snapshot=False)
    return n / dt


def e2e_rate(
    name: str | None,
    workers: int,
    batches,
    senders: int = 2,
    persist: bool = False,
    warmup: int = 1,
) -> tuple[float, float, float, float]:
    """(samples per wall second, samples per CPU second of this whole process — server, engine
    and client threads —, engine CPU µs per sample: the listener in the ingest threads plus the
    worker threads, and the listener's part of it) through a real server's /api/v1/write (snappy protobuf), with or without the
    precompute engine attached; payloads are encoded before timing. The CPU-based figures are the
    stable ones on a shared machine. The first ``warmup`` batches are written before timing."""
    from server.config import ServerConfig
    from server.routes_precompute import attach
    from storage.db import Storage
    from storage.sketch_store import SketchStore
    from tests.server.conftest import Client, ServerThread, free_port
    from tests.server.payloads import RW_HEADERS, snappy, write_request

    payloads = []
    for b in batches:
        sb = b.batch
        rows = [
            (list(sb.series[i]), [(int(sb.timestamps[i]), float(sb.values[i]))])
            for i in range(len(sb.series))
        ]
        payloads.append(snappy(write_request(rows)))
    storage = Storage.in_memory()
    runtime = None
    if name is not None:
        cfg = config_for(name)
        options = EngineOptions(num_workers=workers, backend="thread", flush_interval_ms=1000)
        # persist: windows go to an on-disk sketch store (framed log, as `tidemark serve` with a
        # data directory) rather than an in-memory one — the write cost is then measured too.
        store = (
            SketchStore(tempfile.mkdtemp(prefix="tidemark-bench-")) if persist else SketchStore()
        )
        runtime = attach(storage, StreamingConfig(cfg.aggregations, options), store)
    srv = ServerThread(ServerConfig(host="127.0.0.1", port=free_port()), storage).start()
    client = Client(f"http://127.0.0.1:{srv.config.port}")
    for payload in payloads[:warmup]:
        assert client.post("/api/v1/write", payload, RW_HEADERS).status == 204
    listener_cpu = [0.0]
    if runtime is not None:
        runtime.engine.drain()
        engine = runtime.engine
        storage.remove_listener(engine.on_batch)

        def metered(durable) -> None:
            t = time.thread_time()
            engine.on_batch(durable)
            listener_cpu[0] += time.thread_time() - t

        storage.add_listener(metered)
        clocks = [time.pthread_getcpuclockid(h.thread.ident) for h in engine.hosts]
        worker0 = sum(time.clock_gettime(c) for c in clocks)
    todo = list(range(warmup, len(payloads)))
    lock = threading.Lock()

    def send() -> None:
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            reply = client.post("/api/v1/write", payloads[i], RW_HEADERS)
            assert reply.status == 204, reply.body

    t0, c0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine_cpu = 0.0
    if runtime is not None:
        runtime.engine.drain()
        engine_cpu = listener_cpu[0] + sum(time.clock_gettime(c) for c in clocks) - worker0
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    srv.stop()
    if runtime is not None:  # the server's shutdown stopped the engine
        store.close()
        if store.directory is not None:
            shutil.rmtree(store.directory, ignore_errors=True)
    n = sum(len(b.batch) for b in batches[warmup:])
    return n / dt, n / cpu, engine_cpu / n * 1e6, listener_cpu[0] / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--backend", default="thread", choices=["thread", "process", "both"])
    ap.add_argument("--e2e-samples", type=int, default=300_000)
    ap.add_argument("--only", default=None, help="substring of a workload name")
    ap.add_argument("--skip-engine", action="store_true", help="only the end-to-end columns")
    ap.add_argument("--repeats", type=int, default=3, help="best-of-N for each measurement")
    ap.add_argument(
        "--persist", action="store_true", help="e2e: sketch store on disk instead of in memory"
    )
    ap.add_argument(
        "--warmup-scrapes",
        type=int,
        default=None,
        help="e2e: scrapes written before timing (default: one window's worth plus one, so the "
        "first window closes — key tables, first store records — are not in the measurement; "
        "1 gives the figures of earlier RFC tables)",
    )
    args = ap.parse_args()
    backends = ["thread", "process"] if args.backend == "both" else [args.backend]
    names = [n for n in WORKLOADS if args.only is None or args.only in n]
    print(f"# precompute engine, {os.cpu_count()} cores, {args.samples:,} samples per run\n")
    print(
        "| workload | backend | engine, 1 worker | engine, 2 workers | e2e ingest alone "
        "| e2e + precompute, 1 worker | e2e + precompute, 2 workers |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        n_series = WORKLOADS[name][6]
        batches = make_batches(n_series, args.samples + n_series)
        size_s, slide_s = WORKLOADS[name][1], WORKLOADS[name][2]
        default_warm = size_s // slide_s + 1
        warm = args.warmup_scrapes if args.warmup_scrapes is not None else default_warm
        e2e_batches = make_batches(n_series, args.e2e_samples + warm * n_series, seed=1)
        for backend in backends:
            if args.skip_engine:
                one = two = float("nan")
            else:
                one = max(engine_rate(name, 1, backend, batches) for _ in range(args.repeats))
                two = max(engine_rate(name, 2, backend, batches) for _ in range(args.repeats))
            if args.e2e_samples and backend == backends[0]:
                # Interleaved best-of-N: the 2 cores are shared, single runs are noisy.
                best = {k: (0.0, 0.0, math.inf, math.inf) for k in ("alone", 1, 2)}
                rounds: dict[int, list[float]] = {1: [], 2: []}  # implied ratio per round
                for _ in range(args.repeats):
                    got = {}
                    for k in best:
                        r = got[k] = e2e_rate(None if k == "alone" else name,
                                              k if k != "alone" else 1, e2e_batches,
                                              persist=args.persist, warmup=warm)  # fmt: skip
                        b = best[k]
                        low = r if r[2] < b[2] else b  # the listener share of the best round
                        best[k] = (max(b[0], r[0]), max(b[1], r[1]), low[2], low[3])
                    ingest = 1e6 / got["alone"][1]
                    for k in (1, 2):
                        rounds[k].append(ingest / (ingest + got[k][2]))
                a = best["alone"]
                per_sample = 1e6 / a[1]  # µs of CPU per ingested sample without precompute
                e2e = f"{a[0] / 1e6:.2f} M/s, {per_sample:.2f} µs/sample"
                for k in (1, 2):
                    w = best[k]
                    # Implied throughput ratio when CPU-bound: ingest CPU / (ingest + engine CPU).
                    implied = per_sample / (per_sample + w[2])
                    spread = f"{min(rounds[k]):.2f}–{max(rounds[k]):.2f}"
                    e2e += (
                        f" | {w[0] / 1e6:.2f} M/s ({w[0] / a[0]:.2f}× wall); engine "
                        f"{w[2]:.3f} µs/sample (listener {w[3]:.3f}) → {implied:.2f}× "
                        f"(rounds {spread}×)"
                    )
            else:
                e2e = "– | – | –"
            print(
                f"| {name} | {backend} | {one / 1e6:.2f} M/s | {two / 1e6:.2f} M/s | {e2e} |",
                flush=True,
            )
    print(
        "\nSeed (Rust, 32 logical CPUs, for reference): windowed Sum ~660 K samples/s with 4 "
        "workers; raw mode ~8.9 M samples/s with 16 workers."
    )


if __name__ == "__main__":
    main()
