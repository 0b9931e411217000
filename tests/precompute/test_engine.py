"""Engine: workers, stream == batch, snapshot/restore, runtime config, backpressure, store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.config import EngineOptions, LateDataPolicy, load_config
from precompute.engine import PrecomputeEngine
from precompute.output import CapturingSink, StoreSink
from promql.errors import UnavailableError
from storage.sketch_store import SketchStore
from tests.precompute.helpers import SeriesIds, agg_yaml

YAML = """
aggregations:
  - {aggregationId: 1, aggregationType: Sum, labels: {grouping: [job]}, metric: m,
     windowSize: 10, slideInterval: 10, windowType: tumbling}
  - {aggregationId: 2, aggregationType: DatasketchesKLL, parameters: {K: 200},
     labels: {grouping: [job]}, metric: m, windowSize: 30, slideInterval: 10, windowType: sliding}
  - {aggregationId: 3, aggregationType: MultipleIncrease, labels: {grouping: [], aggregated: [instance]},
     metric: c, windowSize: 20, slideInterval: 10, windowType: sliding}
  - {aggregationId: 4, aggregationType: MinMax, labels: {grouping: [instance]}, metric: m,
     spatialFilter: 'job="api"', windowSize: 20, slideInterval: 5, windowType: sliding}
"""


def make_stream(seed: int, n_series: int = 6, n_points: int = 60):
    """Regular 1 s data for series of two metrics, with counter resets; sorted by time."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        job = "api" if s % 2 else "web"
        counter = 0.0
        for k in range(n_points):
            t = 1_000 * k + 37 * s
            rows.append(
                ({"__name__": "m", "job": job, "instance": f"i{s}"}, t, float(rng.normal()))
            )
            counter = 0.0 if rng.random() < 0.05 else counter + float(rng.integers(0, 5))
            rows.append(({"__name__": "c", "job": job, "instance": f"i{s}"}, t, counter))
    rows.sort(key=lambda r: r[1])
    return rows


def canonical(outputs):
    """Windows as comparable data: several entries per window merged first."""
    merged = {}
    for o, acc in outputs:
        k = (o.aggregation_id, o.key, o.window_start, o.window_end)
        if k in merged:
            merged[k].merge(acc)
        else:
            merged[k] = acc.snapshot()
    return {k: _round(v.stats()) for k, v in merged.items()}


def _round(x):
    if isinstance(x, float):
        return round(x, 9)
    if isinstance(x, dict):
        out = {k: _round(v) for k, v in x.items()}
        if "keys" in out:  # keyed accumulators list keys in arrival order
            out["keys"] = sorted(out["keys"], key=lambda e: e["key"])
        return out
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def run(rows, batch_size: int, backend: str = "inline", workers: int = 1, **opts):
    config = load_config(YAML)
    options = EngineOptions(num_workers=workers, backend=backend, flush_interval_ms=0, **opts)
    sink = CapturingSink()
    engine = PrecomputeEngine(type(config)(config.aggregations, options), sink)
    ids = SeriesIds()
    for i in range(0, len(rows), batch_size):
        engine.on_batch(ids.batch(rows[i : i + batch_size]))
    engine.close_all()
    engine.stop(snapshot=False)
    return canonical(sink.outputs), engine


def test_sorted_stream_gives_the_same_windows_with_one_or_two_thread_workers():
    rows = make_stream(1)
    one, _ = run(rows, 50)
    two, _ = run(rows, 37, backend="thread", workers=2)
    assert one and one == two


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), batch=st.integers(1, 200), jitter=st.integers(0, 4_000))
def test_any_arrival_order_within_allowed_lateness_equals_the_sorted_stream(seed, batch, jitter):
    rows = make_stream(seed % 1000)
    rng = np.random.default_rng(seed)
    lateness = 5_000
    # Arrival order by t + d with 0 ≤ d < lateness: a sample never trails the newest one seen by
    # more than the allowed lateness, so it is never late for any window.
    delays = rng.integers(0, jitter + 1, len(rows))
    order = np.argsort([r[1] + d for r, d in zip(rows, delays, strict=True)], kind="stable")
    shuffled = [rows[i] for i in order]
    expected, _ = run(rows, 10_000, allowed_lateness_ms=lateness)
    got, engine = run(shuffled, batch, allowed_lateness_ms=lateness)
    assert got == expected
    assert all(a["dropped_late"] == 0 for a in engine.status()["aggregations"])


def test_snapshot_restore_mid_stream_equals_an_uninterrupted_run(tmp_path):
    rows = make_stream(7)
    expected, _ = run(rows, 40, allowed_lateness_ms=2_000)
    config = load_config(YAML)
    options = EngineOptions(backend="inline", flush_interval_ms=0, allowed_lateness_ms=2_000)
    cfg = type(config)(config.aggregations, options)
    snap = tmp_path / "precompute.snapshot"
    sink = CapturingSink()
    ids = SeriesIds()
    first = PrecomputeEngine(cfg, sink, snapshot_path=snap)
    half = len(rows) // 2
    for i in range(0, half, 40):
        first.on_batch(ids.batch(rows[i : min(i + 40, half)]))
    first.stop()  # graceful: open panes go to the snapshot, nothing is emitted for them
    second = PrecomputeEngine(cfg, sink, snapshot_path=snap)  # restored at start
    ids2 = SeriesIds()  # a restarted store may hand out different series ids
    for i in range(half, len(rows), 40):
        second.on_batch(ids2.batch(rows[i : min(i + 40, len(rows))]))
    second.close_all()
    second.stop(snapshot=False)
    assert canonical(sink.outputs) == expected


def test_config_added_and_removed_at_run_time_keeps_other_aggregations_state():
    rows = make_stream(3)
    expected, _ = run(rows, 40)
    config = load_config(YAML)
    options = EngineOptions(backend="inline", flush_interval_ms=0)
    sink = CapturingSink()
    engine = PrecomputeEngine(type(config)(config.aggregations[:1], options), sink)
    ids = SeriesIds()
    engine.on_batch(ids.batch(rows[:200]))
    change = engine.update_config(type(config)(config.aggregations, options))
    assert change["added"] == [2, 3, 4]
    engine.on_batch(ids.batch(rows[200:]))
    engine.update_config(type(config)(config.aggregations[:1], options))
    engine.close_all()
    got = canonical(sink.outputs)
    only_1 = {k: v for k, v in expected.items() if k[0] == 1}
    assert {k: v for k, v in got.items() if k[0] == 1} == only_1


def test_full_worker_queue_raises_unavailable_instead_of_dropping():
    config = load_config(agg_yaml("Sum", window=10))
    options = EngineOptions(backend="thread", queue_capacity_samples=10, flush_interval_ms=0)
    engine = PrecomputeEngine(
        type(config)(config.aggregations, options), CapturingSink(), block_timeout_s=0.2
    )
    ids = SeriesIds()
    gate = __import__("threading").Event()
    engine.hosts[0].send(("call", "status"))  # warm up
    original = engine.hosts[0].worker.process

    def slow(item):
        gate.wait(5)
        return original(item)

    engine.hosts[0].worker.process = slow
    engine.on_batch(ids.batch([({"__name__": "m"}, t, 1.0) for t in range(8)]))
    with pytest.raises(UnavailableError):
        engine.on_batch(ids.batch([({"__name__": "m"}, t, 1.0) for t in range(8, 16)]))
    assert engine.counters["samples_rejected"] == 8
    gate.set()
    engine.stop(snapshot=False)


def test_windows_reach_the_sketch_store_and_survive_a_reopen(tmp_path):
    rows = make_stream(5)
    expected, _ = run(rows, 64)
    config = load_config(YAML)
    options = EngineOptions(backend="inline", flush_interval_ms=0)
    store = SketchStore(tmp_path / "sketches", compact_every=25)
    engine = PrecomputeEngine(type(config)(config.aggregations, options), StoreSink(store))
    ids = SeriesIds()
    for i in range(0, len(rows), 64):
        engine.on_batch(ids.batch(rows[i : i + 64]))
    engine.close_all()
    store.close()
    reopened = SketchStore(tmp_path / "sketches")
    got = [(e, e.accumulator()) for agg in (1, 2, 3, 4) for e in reopened.entries(agg)]
    outputs = [(type("O", (), {"aggregation_id": e.aggregation_id, "key": e.key,
                                "window_start": e.window_start, "window_end": e.window_end})(), a)
               for e, a in got]  # fmt: skip
    assert canonical(outputs) == expected


def test_raw_passthrough_forwards_every_live_sample_columnar():
    config = load_config(agg_yaml("Sum", window=10))
    options = EngineOptions(backend="inline", pass_raw_samples=True, raw_mode_aggregation_id=9)
    sink = CapturingSink()
    engine = PrecomputeEngine(type(config)(config.aggregations, options), sink)
    engine.on_batch(SeriesIds().batch([({"__name__": "m"}, t, float(t)) for t in range(100)]))
    assert sink.raw[0].aggregation_id == 9
    assert sink.raw[0].values.tolist() == [float(t) for t in range(100)]


def test_forward_to_store_late_entries_merge_into_the_on_time_window():
    config = load_config(agg_yaml("Sum", window=10))
    options = EngineOptions(backend="inline", late_data_policy=LateDataPolicy.FORWARD_TO_STORE)
    sink = CapturingSink()
    engine = PrecomputeEngine(type(config)(config.aggregations, options), sink)
    ids = SeriesIds()
    engine.on_batch(ids.batch([({"__name__": "m"}, 5_000, 1.0), ({"__name__": "m"}, 25_000, 2.0)]))
    engine.on_batch(ids.batch([({"__name__": "m"}, 6_000, 4.0)]))
    engine.close_all()
    got = canonical(sink.outputs)
    assert got[(1, (), 0, 10_000)]["sum"] == 5.0


def test_process_workers_give_the_same_windows_as_inline():
    rows = make_stream(2, n_series=4, n_points=30)
    inline, _ = run(rows, 25)
    procs, _ = run(rows, 25, backend="process", workers=2)
    assert inline and procs == inline


def brute_force_windows(rows, metric, grouping, window_ms, slide_ms, label_filter=None):
    """Reference: for every group and every window end on the slide grid, the samples in
    ``(end − window, end]`` computed directly from the data (no panes, no watermarks)."""
    out = {}
    ts = [t for _, t, _ in rows]
    first = (min(ts) // slide_ms) * slide_ms
    last = -(-max(ts) // slide_ms) * slide_ms + window_ms
    for end in range(first, last + 1, slide_ms):
        for labels, t, v in rows:
            if labels["__name__"] != metric or not (end - window_ms < t <= end):
                continue
            if label_filter and not label_filter(labels):
                continue
            key = tuple(labels.get(n, "") for n in grouping)
            out.setdefault((key, end - window_ms, end), []).append(v)
    return out


def test_engine_windows_equal_a_brute_force_computation_over_sorted_data():
    rows = make_stream(9)
    got, _ = run(rows, 33)
    sums = brute_force_windows(rows, "m", ["job"], 10_000, 10_000)
    assert {k[1:]: v["sum"] for k, v in got.items() if k[0] == 1} == {
        k: round(sum(v), 9) for k, v in sums.items()
    }
    minmax = brute_force_windows(
        rows, "m", ["instance"], 20_000, 5_000, label_filter=lambda ls: ls["job"] == "api"
    )
    assert {k[1:]: (v["min"], v["max"], v["count"]) for k, v in got.items() if k[0] == 4} == {
        k: (round(min(v), 9), round(max(v), 9), len(v)) for k, v in minmax.items()
    }
    quantiles = brute_force_windows(rows, "m", ["job"], 30_000, 10_000)
    expected = {k: round(float(np.quantile(v, 0.9)), 9) for k, v in quantiles.items()}
    assert {k[1:]: v["quantiles"]["0.9"] for k, v in got.items() if k[0] == 2} == expected


def test_snapshot_from_a_different_worker_count_is_not_applied(tmp_path):
    config = load_config(YAML)
    snap = tmp_path / "s"
    one = EngineOptions(backend="inline", flush_interval_ms=0)
    first = PrecomputeEngine(type(config)(config.aggregations, one), CapturingSink(), snap)
    first.on_batch(SeriesIds().batch(make_stream(1)[:100]))
    first.stop()
    two = EngineOptions(backend="inline", flush_interval_ms=0, num_workers=2)
    second = PrecomputeEngine(type(config)(config.aggregations, two), CapturingSink())
    assert second.restore(snap) is False
    assert all(a["open_panes"] == 0 for a in second.status()["aggregations"])


def test_status_warns_when_an_increase_group_mixes_several_series():
    config = load_config(agg_yaml("Increase", window=10, grouping=["job"]))
    options = EngineOptions(backend="inline", flush_interval_ms=0)
    engine = PrecomputeEngine(type(config)(config.aggregations, options), CapturingSink())
    engine.on_batch(
        SeriesIds().batch(
            [
                ({"__name__": "m", "job": "a", "i": "1"}, 1, 1.0),
                ({"__name__": "m", "job": "a", "i": "2"}, 1, 5.0),
            ]
        )
    )
    (agg,) = engine.status()["aggregations"]
    assert agg["warnings"] and "MultipleIncrease" in agg["warnings"][0]


def test_a_far_future_sample_does_not_drag_idle_groups_past_the_wall_clock():
    import time as _time

    config = load_config(agg_yaml("Sum", window=10, grouping=["g"]))
    options = EngineOptions(backend="inline", flush_interval_ms=0)
    sink = CapturingSink()
    engine = PrecomputeEngine(type(config)(config.aggregations, options), sink)
    now = int(_time.time() * 1000)
    ids = SeriesIds()
    engine.on_batch(ids.batch([({"__name__": "m", "g": "idle"}, now + 1_800_000, 1.0)]))
    engine.on_batch(ids.batch([({"__name__": "m", "g": "busy"}, now + 7_200_000, 1.0)]))
    engine.flush()
    engine.flush()  # "idle" got nothing since the previous tick
    assert [o.key for o, _ in sink.outputs] == []
