"""Dashboard queries from precomputed windows vs the exact path vs Prometheus 2.42 (one table).

Data: ``--series`` counters ``x{l="l0".."l9", instance}`` (default 1000) and a classic histogram
``h_bucket`` (20 instances × 11 buckets), a sample every 10 s for ``--hours`` (default 6). Tidemark
ingests in process through the real storage and precompute engine (inline backend), closed windows
go to an in-memory sketch store; Prometheus gets the same samples through remote write. Queries
(the issue's four) run as range queries of 100 and 1000 steps ending at the last scrape: step
200 s and 20 s. The engine is attached to an empty storage, so it knows it saw every sample and
its windows count from the first scrape on (``PrecomputeEngine.coverage``); the window ending at
the last scrape is still open (nothing later closed it) and that step is answered exactly.

Config (the data and queries are the issue's; the config is ours to choose, as a user would):
``avg_over_time(x[1h])`` has tumbling 200 s and 20 s sums (prefix sums make 18 or 180 windows per
step cheap); ``rate(x[5m])`` and the histogram's ``rate(h_bucket[5m])`` have a *sliding* 5 min
window stepping by 20 s — what ``tidemark advise`` proposes for one 5m range on a 20 s interval —
so both step sizes read one stored window per step instead of merging 3 (100 s windows) or 15
(20 s windows); the 1 h quantile is a sliding 1 h window stepping by 200 s (one sketch per step).
A 20 s step cannot use it ("not on the window grid"): a quantile sketch per 1 h window every 20 s
would hold 1080 sketches per series (~3 MB each series at K=200), and 20 s tumbling sketches hold
two samples each (no compression, a step would union 180 of them) — neither is something a user
would deploy, so the planner says so and answers exactly. All three answer over
HTTP, each on one kept-alive connection (as Grafana's data source proxy keeps its own); each cell is the median of ``--runs`` timed runs after one warm-up (the warm-up also
fills Tidemark's decoded-window cache and its step cache, as a dashboard refresh would; its time
is the last column). "precomputed" re-asks the same query, as a refreshing dashboard does, and
reads the steps answered before from the step cache (``planner/step_cache.py``) and the newest
steps' raw answers from ``planner/raw_step_cache.py`` (no sample was written since); "no step
cache" infers every step from the windows again and reads the newest raw
(``TIDEMARK_STEP_CACHE=0``, ``TIDEMARK_RAW_STEP_CACHE=0``), as a first load after the windows are
decoded. Errors: precomputed vs exact, the largest relative difference (sums/rates) or the
largest normalized rank error of the answer among the window's raw values (quantiles), against
the stated bound.

    .venv/bin/python bench/sketch.py [--series 1000] [--hours 6] [--runs 3] [--no-prometheus]
        [--warmup background|wait|off]

``--warmup``: the server decodes the newest stored windows in the background after it starts
(``planner/sketch_warmup.py``); ``background`` (default) queries at once, beside it, ``wait``
queries once it is done (a server up for a few seconds), ``off`` turns it off
(``TIDEMARK_SKETCH_WARMUP=0``): the first run column then measures decoding alone.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.sketch_table import cache_stats  # noqa: E402
from planner.sketch_warmup import warmup_stats  # noqa: E402
from precompute.config import EngineOptions, load_config  # noqa: E402
from server.allocator import tune_allocator  # noqa: E402
from server.routes_precompute import WARMUP, attach  # noqa: E402
from server.routes_query import QueryAPIConfig  # noqa: E402
from storage.db import Storage, StorageOptions  # noqa: E402
from storage.model import Labels, SampleBatch, make_labels  # noqa: E402
from storage.sketch_store import SketchStore  # noqa: E402
from tests.api.conftest import QueryServer  # noqa: E402
from tests.compat.peer import PrometheusPeer, missing_reason  # noqa: E402

SCRAPE_MS = 10_000
LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")
# The planner picks, per query, the aggregation needing the fewest merges for the step.
CONFIG = """
aggregations:
- {aggregationId: 1, aggregationType: DatasketchesKLL, parameters: {K: 200}, metric: x,
   windowSize: 3600, slideInterval: 200, windowType: sliding, labels: {grouping: [l, instance]}}
- {aggregationId: 2, aggregationType: MultipleSum, metric: x, windowSize: 200,
   labels: {grouping: [l], aggregated: [instance]}}
- {aggregationId: 3, aggregationType: MultipleSum, metric: x, windowSize: 20,
   labels: {grouping: [l], aggregated: [instance]}}
- {aggregationId: 4, aggregationType: MultipleIncrease, metric: x, windowSize: 300,
   slideInterval: 20, windowType: sliding, labels: {grouping: [l], aggregated: [instance]}}
- {aggregationId: 6, aggregationType: MultipleIncrease, metric: h_bucket, windowSize: 300,
   slideInterval: 20, windowType: sliding, labels: {grouping: [le], aggregated: [instance]}}
"""
QUERIES = (
    "quantile_over_time(0.99, x[1h])",
    "avg_over_time(x[1h])",
    "sum by (l) (rate(x[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
)


def dataset(n: int, hours: float, seed: int = 1) -> dict[Labels, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    steps = int(hours * 360)
    ts = np.arange(steps, dtype=np.int64) * SCRAPE_MS + SCRAPE_MS
    out: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}
    inc = rng.lognormal(0, 1, size=(n, steps))
    total = np.cumsum(inc, axis=1)
    reset = rng.random((n, steps)) < 0.001  # occasional counter resets to a small value
    vals = total - np.maximum.accumulate(np.where(reset, total - inc, 0.0), axis=1)
    for i in range(n):
        labels = make_labels({"__name__": "x", "l": f"l{i % 10}", "instance": f"i{i}"})
        out[labels] = (ts, vals[i])
    obs = np.cumsum(rng.poisson(20, size=(20, steps)), axis=1)
    frac = np.linspace(0.05, 1.0, len(LE)) ** 2
    frac[-1] = 1.0
    for i in range(20):
        for b, le in enumerate(LE):
            labels = make_labels({"__name__": "h_bucket", "instance": f"i{i}", "le": le})
            out[labels] = (ts, np.floor(obs[i] * frac[b]))
    return out


def ingest(storage: Storage, data) -> float:
    """One append per scrape (all series), as remote write would deliver them."""
    series = list(data)
    ts_all = next(iter(data.values()))[0]
    matrix = np.stack([v for _, v in data.values()])
    t0 = time.perf_counter()
    for j, t in enumerate(ts_all.tolist()):
        n = len(series)
        batch = SampleBatch(series, np.arange(n), np.full(n, t, np.int64), matrix[:, j].copy())
        storage.append(batch)
    return time.perf_counter() - t0


_CONNECTIONS: dict[str, http.client.HTTPConnection] = {}


def timed(url: str) -> tuple[float, dict]:
    """One GET over a kept-alive connection per server (Grafana's data source proxy reuses its
    connections too), timed until the whole body is in; a connection the server closed is
    reopened and the request timed again."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    for attempt in range(2):
        conn = _CONNECTIONS.get(parts.netloc)
        if conn is None:
            conn = _CONNECTIONS[parts.netloc] = http.client.HTTPConnection(
                parts.netloc, timeout=600
            )
        t0 = time.perf_counter()
        try:
            conn.request("GET", target)
            with conn.getresponse() as resp:
                body = resp.read()
            took = time.perf_counter() - t0
            # Decoding is the client's work, the same for both servers: not their latency.
            return took, json.loads(body)
        except (http.client.HTTPException, OSError):
            conn.close()
            del _CONNECTIONS[parts.netloc]
            if attempt:
                raise
    raise AssertionError("unreachable")


def measure(base: str, params: dict, runs: int) -> tuple[float, dict, float]:
    """(median of ``runs`` timed runs, the answer, the first (warm-up) run's time)."""
    url = f"{base}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    first, body = timed(url)
    return statistics.median(timed(url)[0] for _ in range(runs)), body, first


def _series(body: dict) -> dict[tuple, np.ndarray]:
    out = {}
    for s in body["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        out[key] = np.array([[float(t), float(v)] for t, v in s["values"]])
    return out


def value_error(pre: dict, exact: dict) -> float:
    a, b = _series(pre), _series(exact)
    if a.keys() != b.keys():
        return float("inf")
    worst = 0.0
    for k, va in a.items():
        vb = b[k]
        if va.shape != vb.shape or not np.array_equal(va[:, 0], vb[:, 0]):
            return float("inf")
        denom = np.maximum(np.abs(vb[:, 1]), 1e-300)
        worst = max(worst, float(np.max(np.abs(va[:, 1] - vb[:, 1]) / denom)))
    return worst


def rank_error(pre: dict, data, q: float, range_ms: int, sample: int = 100) -> float:
    worst = 0.0
    got = _series(pre)
    for key in list(got)[:sample]:
        labels = make_labels(dict(key) | {"__name__": "x"})
        ts, vs = data[labels]
        for t_s, v in got[key]:
            t = round(t_s * 1000)
            window = np.sort(vs[(ts > t - range_ms) & (ts <= t)])
            lo = np.searchsorted(window, v, "left") / window.shape[0]
            hi = np.searchsorted(window, v, "right") / window.shape[0]
            off = 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))
            # Interpolating between neighbours is exact, not an error: allow one rank step.
            worst = max(worst, off - 1.0 / window.shape[0])
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--warmup", choices=("background", "wait", "off"), default="background")
    args = ap.parse_args(argv)
    tune_allocator()  # as `tidemark serve` does
    data = dataset(args.series, args.hours)
    n_samples = sum(len(t) for t, _ in data.values())
    print(f"data: {len(data)} series, {n_samples} samples, {args.hours:g} h of 10 s scrapes")
    storage = Storage.in_memory(StorageOptions(background_maintenance=False))
    cfg = load_config(CONFIG)
    cfg = type(cfg)(cfg.aggregations, EngineOptions(backend="inline", flush_interval_ms=0))
    store = SketchStore(compact_every=10**9, compact_interval_s=1e9)
    runtime = attach(storage, cfg, store)
    print(f"tidemark ingest + precompute: {ingest(storage, data):.1f} s, {store.stats()}")
    # As `tidemark serve` does once started: what ingest built is old and never freed, so the
    # collector need not walk it again during the timed queries.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    use_prom = not args.no_prometheus and missing_reason() is None
    prom = PrometheusPeer(["--query.max-samples=200000000"]).start() if use_prom else None
    tide = None
    try:
        if prom is not None:
            t0 = time.perf_counter()
            prom.remote_write(data, slice_ms=1_800_000)
            print(f"prometheus load (remote write): {time.perf_counter() - t0:.1f} s")
            print(f"prometheus settled (head compaction done): {settle(prom.proc.pid):.0f} s")
        if args.warmup == "off":
            os.environ["TIDEMARK_SKETCH_WARMUP"] = "0"
        t0 = time.perf_counter()
        tide = QueryServer(storage, QueryAPIConfig(max_samples=200_000_000)).start()
        if args.warmup == "wait":
            assert tide.app is not None
            tide.app[WARMUP].finished.wait()
            print(f"warm-up: {time.perf_counter() - t0:.1f} s, {warmup_stats()}, {cache_stats()}")
        base = f"http://127.0.0.1:{tide.port}"
        end_s = int(args.hours * 3600) // 200 * 200
        print(_header())
        for steps, step in ((100, 200), (1000, 20)):
            for q in QUERIES:
                params = {"query": q, "start": end_s - (steps - 1) * step, "end": end_s,
                          "step": step}  # fmt: skip
                pre_t, pre, cold = measure(base, params, args.runs)
                uncached_t = _without_step_cache(measure, base, params, args.runs)
                ex_t, exact, _ = measure(base, params | {"precompute": "off"}, args.runs)
                prom_t = measure(prom.url, params, args.runs)[0] if prom is not None else None
                if prom is not None:
                    # Go's collector and scavenger keep working for a while after a big query:
                    # the next Tidemark timings must not share the two cores with them.
                    settle(prom.proc.pid, quiet_s=1.0, limit_s=30.0, least_s=0.0)
                plan = timed(f"{base}/api/v1/query_range?"
                             + urllib.parse.urlencode(params | {"explain": "true"}))[1]  # fmt: skip
                used = "SummaryMergeMultiple" in plan["data"]["explain"]["text"]
                if q.startswith("quantile"):
                    err = f"rank {rank_error(pre, data, 0.99, 3_600_000):.3%}"
                else:
                    err = f"rel {value_error(pre, exact):.1e}"
                row = _row(q, steps, used, (pre_t, uncached_t), ex_t, prom_t, err,
                           pre.get("infos"), cold)  # fmt: skip
                print(row, flush=True)
    finally:
        if tide is not None:
            tide.stop()
        if prom is not None:
            prom.stop()
        runtime.close()
    return 0


def settle(pid: int, quiet_s: float = 5.0, limit_s: float = 240.0, least_s: float = 75.0) -> float:
    """Wait at least ``least_s`` seconds and until the process ``pid`` has used (almost) no CPU
    for ``quiet_s`` seconds; seconds waited. Prometheus checks once a minute whether its head
    should be compacted into blocks and, after a 6 h load, then compacts for a while in the
    background; timing anything beside that measures the compaction, on both sides."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    began = last_busy = time.monotonic()
    before = cpu()
    while time.monotonic() - began < limit_s and (
        time.monotonic() - began < least_s or time.monotonic() - last_busy < quiet_s
    ):
        time.sleep(1.0)
        now = cpu()
        if now - before > 0.05:  # more than 5 % of a core over the last second
            last_busy = time.monotonic()
        before = now
    return time.monotonic() - began


def _without_step_cache(measure_, base: str, params: dict, runs: int) -> float:
    """``measure`` (median ms) with no kept step answers (``planner.step_cache``,
    ``planner.raw_step_cache``): every step inferred from the windows again and the newest
    read raw, as on a dashboard's first load."""
    from planner import raw_step_cache, step_cache

    os.environ["TIDEMARK_STEP_CACHE"] = "0"
    os.environ["TIDEMARK_RAW_STEP_CACHE"] = "0"
    try:
        return measure_(base, params, runs)[0]
    finally:
        del os.environ["TIDEMARK_STEP_CACHE"]
        del os.environ["TIDEMARK_RAW_STEP_CACHE"]
        step_cache.clear()
        raw_step_cache.clear()


def _header() -> str:
    return (
        "| query | steps | sketch path | precomputed ms | no step cache ms | exact ms "
        "| Prometheus ms | Prom/pre | Prom/pre, no step cache | error | infos | first run ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )


def _row(q, steps, used, pre_ts, ex_t, prom_t, err, infos, cold) -> str:
    pre_t, uncached_t = pre_ts
    prom = f"{prom_t * 1000:.1f}" if prom_t is not None else "-"
    ratio = f"{prom_t / pre_t:.1f}×" if prom_t is not None else "-"
    ratio_uncached = f"{prom_t / uncached_t:.1f}×" if prom_t is not None else "-"
    info = "; ".join(infos or [])[:80] or "-"
    return (
        f"| `{q}` | {steps} | {'yes' if used else 'no'} | {pre_t * 1000:.1f} "
        f"| {uncached_t * 1000:.1f} | {ex_t * 1000:.1f} | {prom} | {ratio} | {ratio_uncached} "
        f"| {err} | {info} | {cold * 1000:.0f} |"
    )


if __name__ == "__main__":
    sys.exit(main())
