"""Kernel micro-benchmark: median wall time of the udfs kernels on Prometheus-shaped data.

    .venv/bin/python bench/kernels.py [--series 10000] [--steps 240] [--repeat 3]
        [--sliding-series 1220] [--sliding-only]

Data: counters scraped every 15 s with jitter and occasional resets; a range query of
``steps`` steps 15 s apart with 5 m windows (about 20 samples per window). Prints a table.

A second table is ``quantile_over_time(0.99, x[1h])`` in ``bench/sketch.py``'s shape: 6 h of 10 s
samples per series (2,160), 1 h windows (360 samples), 1000 steps of 20 s and 100 steps of
200 s, on counters (as there) and on gauges (random values), by sorting every window ("sort")
and by the wavelet matrix ("wavelet", ``udfs/range_kth.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.allocator import tune_allocator
from udfs import aggregation as agg
from udfs import range_functions as rf
from udfs.histogram import histogram_quantile
from udfs.range_array import RangeArray
from udfs.windows import instant_lookback, range_windows

SCRAPE_MS = 15_000
RANGE_MS = 300_000


def make_data(n_series: int, n_steps: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    span = n_steps * SCRAPE_MS + RANGE_MS
    per = span // SCRAPE_MS
    base = np.arange(per, dtype=np.int64) * SCRAPE_MS
    jitter = rng.integers(-500, 500, size=(n_series, per))
    ts = (base[None, :] + jitter + 1000).ravel()
    inc = rng.random((n_series, per)) * 10
    vals = np.cumsum(inc, axis=1)
    resets = rng.random((n_series, per)) < 0.002
    vals = vals - np.maximum.accumulate(np.where(resets, vals, 0.0), axis=1)
    offsets = np.arange(n_series + 1, dtype=np.int64) * per
    eval_times = RANGE_MS + np.arange(n_steps, dtype=np.int64) * SCRAPE_MS
    return offsets, ts, vals.ravel(), eval_times


def timed(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def sliding_quantile(n_series: int, repeat: int) -> None:
    """The sort and wavelet paths of ``quantile_over_time`` on sliding 1 h windows."""
    tune_allocator()  # as `tidemark serve` does: freed temporaries stay in the process
    per, scrape, range_ms = 2160, 10_000, 3_600_000
    rng = np.random.default_rng(1)
    ts = np.tile(np.arange(per, dtype=np.int64) * scrape + scrape, n_series)
    offsets = np.arange(n_series + 1, dtype=np.int64) * per
    end = per * scrape
    data = {
        "counter": np.cumsum(rng.lognormal(0, 1, (n_series, per)), axis=1).ravel(),
        "gauge": rng.normal(size=n_series * per),
    }
    print(f"\nquantile_over_time(0.99, x[1h]): {n_series} series x {per} samples (10 s)")
    print(
        f"{'data':<10}{'steps':>6}{'windows':>11}{'sort ms':>11}{'wavelet ms':>12}{'speed-up':>10}"
    )
    for kind, vals in data.items():
        for steps, step in ((1000, 20_000), (100, 200_000)):
            eval_times = end - np.arange(steps - 1, -1, -1, dtype=np.int64) * step
            o, s, e = range_windows(offsets, ts, eval_times, range_ms)
            ra = RangeArray(vals, ts, o, s, e, range_ms)
            q = np.full(ra.n_windows, 0.99)
            by_sort = timed(lambda ra=ra, q=q: rf.quantile_over_time(ra, q, path="sort"), repeat)
            by_rank = timed(lambda ra=ra, q=q: rf.quantile_over_time(ra, q, path="wavelet"), repeat)
            print(
                f"{kind:<10}{steps:>6}{ra.n_windows:>11,}{by_sort:>11.1f}{by_rank:>12.1f}"
                f"{by_sort / by_rank:>9.1f}x"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sliding-series", type=int, default=1220)
    ap.add_argument("--sliding-only", action="store_true")
    args = ap.parse_args()
    if args.sliding_only:
        sliding_quantile(args.sliding_series, args.repeat)
        return
    offsets, ts, vals, eval_times = make_data(args.series, args.steps)
    o, s, e = range_windows(offsets, ts, eval_times, RANGE_MS)
    ra = RangeArray(vals, ts, o, s, e, RANGE_MS)
    n_steps = eval_times.shape[0]
    matrix = rf.rate(ra)[0].reshape(args.series, n_steps)
    present = np.ones_like(matrix, dtype=bool)
    gids = np.arange(args.series, dtype=np.int64) % 100
    n_hist_groups = max(args.series // 12, 1)
    bounds = np.tile([0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, np.inf], n_hist_groups)
    bucket_counts = np.sort(np.abs(matrix[: bounds.shape[0]]), axis=0)
    h_offsets = np.arange(n_hist_groups + 1, dtype=np.int64) * 12
    q = np.full(n_steps, 0.9)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("range_windows", lambda: range_windows(offsets, ts, eval_times, RANGE_MS)),
        ("instant_lookback", lambda: instant_lookback(offsets, ts, eval_times, RANGE_MS)),
        ("rate", lambda: rf.rate(ra)),
        ("increase", lambda: rf.increase(ra)),
        ("irate", lambda: rf.irate(ra)),
        ("changes", lambda: rf.changes(ra)),
        ("max_over_time", lambda: rf.max_over_time(ra)),
        ("sum_over_time (Kahan)", lambda: rf.sum_over_time(ra)),
        ("avg_over_time (Kahan)", lambda: rf.avg_over_time(ra)),
        ("stddev_over_time", lambda: rf.stddev_over_time(ra)),
        ("deriv", lambda: rf.deriv(ra)),
        ("quantile_over_time", lambda: rf.quantile_over_time(ra, np.full(ra.n_windows, 0.9))),
        ("sum by (100 groups)", lambda: agg.sum_(matrix, present, gids, 100)),
        ("sum (1 group)", lambda: agg.sum_(matrix, present, np.zeros_like(gids), 1)),
        ("avg by (100 groups)", lambda: agg.avg(matrix, present, gids, 100)),
        ("max by (100 groups)", lambda: agg.max_(matrix, present, gids, 100)),
        ("topk(5) by (100 groups)", lambda: agg.topk(matrix, present, gids, 100, 5.0)),
        ("quantile(0.9) by (100)", lambda: agg.quantile(matrix, present, gids, 100, q)),
        (
            f"histogram_quantile ({n_hist_groups}x12)",
            lambda: histogram_quantile(q, bounds, bucket_counts, h_offsets),
        ),
    ]
    print(
        f"{args.series} series x {n_steps} steps, 5m windows, {ts.shape[0]:,} samples, "
        f"{ra.n_windows:,} windows (~{ra.sizes.mean():.1f} samples each)"
    )
    print(f"{'kernel':<36}{'median ms':>12}")
    for name, fn in cases:
        print(f"{name:<36}{timed(fn, args.repeat):>12.1f}")
    sliding_quantile(args.sliding_series, args.repeat)


if __name__ == "__main__":
    main()
