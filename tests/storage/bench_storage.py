"""Storage benchmarks (not collected by pytest): ``python -m tests.storage.bench_storage``.

1. ``append`` throughput in the remote-write shape: 100k series, 2,000 series x 1 sample per
   request (raw label bytes as intern keys, as the decoder provides), in memory / WAL / WAL+fsync.
2. ``select`` scan throughput over 10k series x 2 h at a 10 s interval (7.2M samples), from the
   head and from a block.
3. Bytes per sample: head arrays (memory) and blocks (disk), for node-exporter-like data
   (counters with random increments, gauges with two decimals, constant info-style series).

Every timing is the best of a few repetitions: the machine is shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from promql.types import Matcher, MatchType
from storage.db import Storage, StorageOptions
from storage.model import SampleBatch, make_labels

STEP = 10_000
T0 = 1_700_000_000_000 // 7_200_000 * 7_200_000


def _requests(nseries: int, per_request: int) -> list[tuple[list, list[bytes]]]:
    series = [
        make_labels(
            {
                "__name__": f"node_metric_{k % 200}",
                "instance": f"host-{k // 200}:9100",
                "job": "node",
            }
        )
        for k in range(nseries)
    ]
    keys = [repr(s).encode() for s in series]
    return [
        (series[lo : lo + per_request], keys[lo : lo + per_request])
        for lo in range(0, nseries, per_request)
    ]


def bench_append(nseries: int = 100_000, per_request: int = 2000, rounds: int = 5) -> None:
    reqs = _requests(nseries, per_request)
    idx = np.arange(per_request)
    rng = np.random.default_rng(0)
    vals = rng.random(per_request)
    for label, make in [
        ("in memory", Storage.in_memory),
        ("WAL", lambda: Storage.open(tempfile.mkdtemp())),
        ("WAL + fsync", lambda: Storage.open(tempfile.mkdtemp(), StorageOptions(fsync=True))),
    ]:
        db = make()
        t = time.perf_counter()
        for ser, keys in reqs:
            db.append(SampleBatch(ser, idx, np.full(per_request, T0), vals, series_keys=keys))
        first = nseries / (time.perf_counter() - t)
        best = 0.0
        for r in range(1, rounds + 1):
            ts = np.full(per_request, T0 + r * STEP)
            t = time.perf_counter()
            for ser, keys in reqs:
                # Fresh key objects per request, as a decoder produces them.
                fresh = [bytes(k) for k in keys]
                db.append(SampleBatch(ser, idx, ts, vals, series_keys=fresh))
            best = max(best, nseries / (time.perf_counter() - t))
        print(
            f"append {label:12s}: new series {first / 1e6:.2f} M samples/s, "
            f"known series {best / 1e6:.2f} M samples/s"
        )
        db.close()


def _node_like_values(nseries: int, npoints: int, rng: np.random.Generator) -> np.ndarray:
    """(npoints, nseries): a third counters, a third 2-decimal gauges, a third constants."""
    kind = np.arange(nseries) % 3
    inc = rng.integers(0, 50, (npoints, nseries)).astype(np.float64)
    counters = np.cumsum(inc, axis=0)
    gauges = np.round(rng.normal(50, 10, (npoints, nseries)), 2)
    consts = np.ones((npoints, nseries))
    return np.where(kind == 0, counters, np.where(kind == 1, gauges, consts))


def bench_scan(nseries: int = 10_000, npoints: int = 720) -> None:
    data_dir = tempfile.mkdtemp()
    db = Storage.open(data_dir, StorageOptions(background_maintenance=False))
    reqs = _requests(nseries, 2000)
    values = _node_like_values(nseries, npoints, np.random.default_rng(1))
    idx = np.arange(2000)
    for j in range(npoints):
        ts = np.full(2000, T0 + j * STEP)
        for r, (ser, keys) in enumerate(reqs):
            db.append(
                SampleBatch(ser, idx, ts, values[j, r * 2000 : (r + 1) * 2000], series_keys=keys)
            )
    n = nseries * npoints
    matchers = [Matcher(MatchType.EQUAL, "job", "node")]
    end = T0 + npoints * STEP

    def scan(where: str) -> None:
        times = []
        for _ in range(4):
            t = time.perf_counter()
            s = db.select(matchers, T0, end)
            times.append(time.perf_counter() - t)
        assert s.timestamps.shape[0] == n
        first, best = times[0], min(times[1:])
        print(
            f"select from {where}: first {n / first / 1e6:.1f} M samples/s ({first * 1000:.0f} ms)"
            f", best of next 3 {n / best / 1e6:.1f} M samples/s ({best * 1000:.0f} ms)"
        )

    scan(f"head ({db.stats()['head_segments']} segments)")
    print(
        "head memory: 16 bytes/sample in frozen segments (int64 ts, float64 value; ids per series)"
    )
    t = time.perf_counter()
    with db._lock:
        plan = db._maint._plan_cut_at(end + 1)
    db._maint._cut(plan)
    print(
        f"cut of {n / 1e6:.1f}M samples into a block: {time.perf_counter() - t:.2f} s (writers not blocked)"
    )
    stats = db.stats()
    print(f"block on disk: {stats['block_bytes'] / stats['block_samples']:.2f} bytes/sample")
    scan("a block (first run decodes the chunks)")
    db.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--what", choices=["append", "scan", "all"], default="all")
    args = p.parse_args()
    if args.what in ("append", "all"):
        bench_append()
    if args.what in ("scan", "all"):
        bench_scan()


if __name__ == "__main__":
    main()
