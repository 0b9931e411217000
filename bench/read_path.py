"""Exact-path storage reads for big queries: where the time of a 10,000-series query goes.

Storage holds ``--series`` counters ``c_total{job, instance}`` (``--jobs`` jobs) scraped every
10 s for ``--hours``, appended one scrape (one sample per series) at a time as remote write
would. Two layouts of the same samples:

* ``head``: in memory, everything in head segments (many small frozen segments merged
  LSM-style, plus an unsorted tail);
* ``blocks``: on disk with ``block_duration_ms = --block-minutes`` and inline maintenance, so
  older data is cut into blocks and the newest stays in the head.

For each layout, ``Storage.select`` of all series over the query's read range, then range
queries at ``--steps`` steps ending at the newest sample, with ANALYZE (``Engine.explain``) for
the per-node self time (elapsed less children's) of one more run. Times are the best of ``--runs``. A table, one row per
(layout, case):

    .venv/bin/python bench/read_path.py [--series 10000] [--hours 3] [--steps 240] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.engine import Engine, EngineOptions  # noqa: E402
from promql.types import Matcher, MatchType  # noqa: E402
from server.allocator import tune_allocator  # noqa: E402
from storage.db import Storage, StorageOptions  # noqa: E402
from storage.model import SampleBatch, make_labels  # noqa: E402

INTERVAL_MS = 10_000
T0_MS = 1_700_000_000_000 // 3_600_000 * 3_600_000  # an hour boundary: blocks align to it
QUERIES = [
    "sum by (job) (rate(c_total[5m]))",
    "c_total",
    "max_over_time(c_total[1h])",
]


def _series(n: int, jobs: int) -> list:
    return [
        make_labels({"__name__": "c_total", "job": f"job{i % jobs}", "instance": f"host-{i}"})
        for i in range(n)
    ]


def load(db: Storage, n_series: int, jobs: int, hours: float) -> tuple[int, int]:
    """Append one scrape at a time; returns ``(samples, newest timestamp)``."""
    labels = _series(n_series, jobs)
    keys = [repr(lab).encode() for lab in labels]
    rng = np.random.default_rng(7)
    rates = rng.uniform(0.1, 50.0, n_series)
    jitter = rng.integers(0, 1000, n_series)  # scrapes are not aligned across targets
    scrapes = int(hours * 3600 * 1000 // INTERVAL_MS)
    idx = np.arange(n_series, dtype=np.int64)
    for k in range(scrapes):
        ts = T0_MS + k * INTERVAL_MS + jitter
        values = np.floor(rates * k * 10.0)
        db.append(SampleBatch(labels, idx, ts.astype(np.int64), values, series_keys=keys))
    return scrapes * n_series, int(T0_MS + (scrapes - 1) * INTERVAL_MS + jitter.max())


def best(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000, out


def node_times(text: str) -> str:
    """``Node=self ms`` for each plan line of ANALYZE text: its elapsed time less its
    children's (the text nests children two spaces deeper)."""
    rows = []  # (depth, name, elapsed ms)
    for line in text.splitlines():
        m = re.match(r"^(\s*)(\w+):.*elapsed_ms=\[([0-9.]+)\]", line)
        if m:
            rows.append((len(m.group(1)) // 2, m.group(2), float(m.group(3))))
    out = []
    for i, (depth, name, ms) in enumerate(rows):
        children = 0.0
        for d, _, c in rows[i + 1 :]:
            if d <= depth:
                break
            if d == depth + 1:
                children += c
        out.append(f"{name}={ms - children:.0f}")
    return " ".join(out)


def run_layout(name: str, db: Storage, newest: int, args) -> None:
    step = int(args.step_seconds * 1000)
    end = newest
    start = end - (args.steps - 1) * step
    # The widest read range among the queries (max_over_time's 1 h window).
    sel_mint = start - 3600_000
    matchers = [Matcher(MatchType.EQUAL, "__name__", "c_total")]
    ms, ss = best(lambda: db.select(matchers, sel_mint, end), args.runs)
    st = db.stats()
    print(
        f"{name:7s} | select all (1h+{args.steps} steps) | {ms:8.1f} | "
        f"{ss.timestamps.shape[0]:,} samples, {int(st['head_segments'])} head segments, "
        f"{int(st['blocks'])} blocks"
    )
    engine = Engine(db, EngineOptions(precompute=False))
    for q in QUERIES:
        ms, _ = best(lambda q=q: engine.range_query(q, start, end, step), args.runs)
        ex = engine.explain(q, start, end, step, analyze=True)
        print(f"{name:7s} | {q:34s} | {ms:8.1f} | {node_times(ex.text)}")
        if args.verbose:
            print(ex.text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--step-seconds", type=float, default=30.0)
    ap.add_argument("--block-minutes", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layouts", default="head,blocks")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    tune_allocator()  # as `tidemark serve` does: freed temporaries stay in the process
    print("layout  | case                               |  best ms | detail")
    for layout in args.layouts.split(","):
        t = time.perf_counter()
        if layout == "head":
            db = Storage.in_memory(StorageOptions())
            n, newest = load(db, args.series, args.jobs, args.hours)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="tidemark-read-path-")
            opts = StorageOptions(
                block_duration_ms=args.block_minutes * 60_000, background_maintenance=False
            )
            db = Storage.open(tmp.name, opts)
            n, newest = load(db, args.series, args.jobs, args.hours)
        load_s = time.perf_counter() - t
        print(f"{layout:7s} | load ({n:,} samples)           | {load_s * 1000:8.0f} |")
        run_layout(layout, db, newest, args)
        if layout != "head":
            db.close()
            tmp.cleanup()


if __name__ == "__main__":
    main()
