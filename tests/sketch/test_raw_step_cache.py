"""Raw answers of the newest steps kept across queries (``planner.raw_step_cache``) stay exact:
reused while only newer samples arrive, computed again when one they read could have changed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from planner import raw_step_cache
from planner.engine import Engine, EngineOptions
from planner.executor import Executor
from planner.values import InstantVector
from promql.types import Matcher, MatchType
from storage.db import Storage, StorageOptions
from storage.model import SampleBatch, make_labels
from tests.sketch.conftest import YAML, N, fill
from tests.sketch.harness import World, assert_same, gauge_series

# Sliding windows (d_total: 2 m over 1 m slides, x: 5 m over 1 m) whose newest steps are past
# the newest closed window: read raw on every query.
QUERIES = {
    "rate(d_total[2m])": "d_total",
    "sum by (job) (rate(d_total[2m]))": "d_total",
    "quantile_over_time(0.9, x[5m])": "x",
    "quantile_over_time(0.5, x[5m]) * 2": "x",
    "quantile_over_time(2, x[5m])": "x",  # q out of range (a warning): stitched raw
}
END = 1_800_000  # the last scrape is at 29:50: the windows ending 30:00 are open


def _world(lateness_ms: int = 0) -> tuple[World, Engine, Engine]:
    w = World(YAML, lateness_ms=lateness_ms)
    fill(w, seed=21, end_ms=END)
    pre, exact = w.engines()
    return w, pre, exact


def _hits() -> int:
    return raw_step_cache.stats()["hits"]


@pytest.mark.parametrize("query", QUERIES)
def test_the_newest_raw_steps_are_kept_and_answer_the_same(query):
    _, pre, exact = _world()
    first = pre.range_query(query, END - 600_000, END, 60_000)
    hits = _hits()
    again = pre.range_query(query, END - 600_000, END, 60_000)
    assert _hits() > hits
    assert_same(again, first, rtol=0)
    assert again.warnings == first.warnings and again.infos == first.infos
    assert_same(again, exact.range_query(query, END - 600_000, END, 60_000))


@pytest.mark.parametrize(
    ("query", "metric"),
    [(q, m) for q, m in QUERIES.items() if not q.startswith("quantile_over_time(2")],
)
def test_a_sample_at_or_before_a_kept_step_is_read_at_the_next_query(query, metric):
    w, pre, exact = _world()
    before = pre.range_query(query, END - 600_000, END, 60_000)
    late = END - 5_000  # inside the newest step's range
    w.scrape(gauge_series(N, metric), late, np.full(N, -1e6))
    got = pre.range_query(query, END - 600_000, END, 60_000)
    assert_same(got, exact.range_query(query, END - 600_000, END, 60_000))
    newest = [s.values[-1] for s in got.series]
    assert newest != [s.values[-1] for s in before.series], "the sample changed the newest step"


def test_a_new_series_in_the_newest_step_appears():
    w, pre, exact = _world()
    q = "rate(d_total[2m])"
    pre.range_query(q, END - 600_000, END, 60_000)
    newcomer = gauge_series(N + 1, "d_total")[-1:]
    for t in (END - 50_000, END - 20_000):
        w.scrape(newcomer, t, np.array([float(t)]))
    got = pre.range_query(q, END - 600_000, END, 60_000)
    assert len(got.series) == N + 1
    assert_same(got, exact.range_query(q, END - 600_000, END, 60_000))


def test_samples_after_the_newest_step_leave_its_kept_answer_in_use():
    # With this lateness the write below closes no window: the same steps are past the newest
    # closed one before and after it (the watermark moves from 27:45 to 27:56).
    w, pre, exact = _world(lateness_ms=125_000)
    q = "sum by (job) (rate(d_total[2m]))"
    first = pre.range_query(q, END - 600_000, END, 60_000)
    w.scrape(gauge_series(N, "d_total"), END + 1_000, np.full(N, 1e6))
    hits = _hits()
    again = pre.range_query(q, END - 600_000, END, 60_000)
    assert _hits() > hits
    assert_same(again, first, rtol=0)
    assert_same(again, exact.range_query(q, END - 600_000, END, 60_000))


def test_turned_off_nothing_is_kept(monkeypatch):
    monkeypatch.setenv("TIDEMARK_RAW_STEP_CACHE", "0")
    _, pre, _ = _world()
    hits = _hits()
    for _ in range(2):
        pre.range_query("rate(d_total[2m])", END - 600_000, END, 60_000)
    assert raw_step_cache.stats()["entries"] == 0 and _hits() == hits


# -- the cache on its own, over a plain storage ----------------------------------------------------


def _plain(tmp: Path | None = None) -> Storage:
    db = Storage.in_memory(StorageOptions(background_maintenance=False))
    series = [make_labels({"__name__": "reqs", "i": str(i)}) for i in range(3)]
    for t in range(0, 600_000, 15_000):
        db.append(SampleBatch(series, np.arange(3), np.full(3, t, np.int64), np.full(3, t / 1e3)))
    return db


def _exact_plan(db: Storage, query: str, start: int, end: int, step: int):
    planned = Engine(db).plan(query, start, end, step, range_=True)
    return planned.physical, planned.stmt.grid


def _executor(db: Storage) -> Executor:
    return Executor(db, EngineOptions(), 300_000, time.monotonic() + 60, query="rate(reqs[5m])")


def test_a_hit_raises_the_annotations_of_the_evaluation_again():
    db = _plain()
    plan, grid = _exact_plan(db, "rate(reqs[5m])", 300_000, 600_000, 60_000)
    ex1 = _executor(db)
    first = raw_step_cache.run_exact(ex1, plan, grid)
    assert any("might not be a counter" in i for i in ex1.infos)
    ex2, hits = _executor(db), _hits()
    again = raw_step_cache.run_exact(ex2, plan, grid)
    assert _hits() == hits + 1
    assert list(ex2.infos) == list(ex1.infos) and list(ex2.warnings) == list(ex1.warnings)
    assert isinstance(again, InstantVector) and isinstance(first, InstantVector)
    np.testing.assert_array_equal(again.values, first.values)
    with pytest.raises(ValueError, match="read-only"):
        again.values[0, 0] = 1.0  # shared with the entry: nobody may write into it


def test_a_write_at_or_before_the_newest_read_timestamp_voids_the_entry():
    db = _plain()
    plan, grid = _exact_plan(db, "rate(reqs[5m])", 300_000, 600_000, 60_000)
    assert raw_step_cache.reads_until(plan) == 600_000
    first = raw_step_cache.run_exact(_executor(db), plan, grid)
    series = [make_labels({"__name__": "reqs", "i": "0"})]
    db.append(SampleBatch(series, np.zeros(1, np.int64), np.array([600_001]), np.array([1e9])))
    hits, stale = _hits(), raw_step_cache.stats()["stale"]
    raw_step_cache.run_exact(_executor(db), plan, grid)
    assert _hits() == hits + 1  # newer than anything read
    db.append(SampleBatch(series, np.zeros(1, np.int64), np.array([599_000]), np.array([1e9])))
    got = raw_step_cache.run_exact(_executor(db), plan, grid)
    assert _hits() == hits + 1 and raw_step_cache.stats()["stale"] == stale + 1
    assert isinstance(got, InstantVector) and isinstance(first, InstantVector)
    assert got.values[0, -1] != first.values[0, -1]


def test_plans_reading_storage_beyond_series_scans_are_not_kept(engines):
    pre, _ = engines
    planned = pre.plan("avg_over_time(x[5m])", 900_000, 1_800_000, 60_000, range_=True)
    assert "PrecomputedScan" in repr(planned.physical)
    assert raw_step_cache.reads_until(planned.physical) is None
    literal = Engine(_plain()).plan("vector(1)", 0, 60_000, 60_000, range_=True).physical
    assert raw_step_cache.reads_until(literal) is None  # reads nothing: nothing to keep


def test_resolved_series_are_kept_until_a_sample_at_or_before_the_range_end(monkeypatch):
    from planner.nodes import precomputed_scan

    w, _, _ = _world()
    cfg = next(c for c in w.engine.configs.values() if c.metric == "d_total")
    matchers = (Matcher(MatchType.EQUAL, "__name__", "d_total"),)
    calls = []
    real = precomputed_scan._resolve
    monkeypatch.setattr(
        precomputed_scan, "_resolve", lambda *a: calls.append(a) or real(*a), raising=True
    )
    first = precomputed_scan.resolve_series(w.storage, cfg, matchers, 0, END)
    w.scrape(gauge_series(N, "d_total"), END + 10_000, np.ones(N))  # newer than the range
    again = precomputed_scan.resolve_series(w.storage, cfg, matchers, 0, END)
    assert len(calls) == 1 and again[0] == first[0] and again[0] is not first[0]
    newcomer = gauge_series(N + 1, "d_total")[-1:]
    w.scrape(newcomer, END - 30_000, np.ones(1))  # a new series inside the range
    got = precomputed_scan.resolve_series(w.storage, cfg, matchers, 0, END)
    assert len(calls) == 2 and newcomer[0] in got[0] and len(got[0]) == N + 1
