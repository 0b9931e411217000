"""Coverage and robustness: time not covered by closed windows comes from raw data; late data,
several workers and a restart in between do not change answers."""

from __future__ import annotations

import numpy as np
import pytest

from storage.model import make_labels
from tests.sketch.conftest import HOUR_MS, YAML, fill
from tests.sketch.harness import SCRAPE_MS, World, assert_same, counter_values, gauge_series
from tests.sketch.test_equivalence import EXACT_SHAPES

SHAPES = [
    "sum_over_time(x[5m])",
    "avg_over_time(x[10m])",
    "max_over_time(x[5m])",
    "increase(c_total[5m])",
    "rate(d_total[4m])",
    "quantile_over_time(0.5, x[5m])",
    "sum by (job) (rate(c_total[5m]))",
]


def _compare(world: World, queries, start: int, end: int, step: int = 60_000) -> None:
    pre, exact = world.engines()
    for q in queries:
        want = exact.range_query(q, start, end, step)
        assert want.series, q
        assert_same(pre.range_query(q, start, end, step), want)
        assert_same(pre.instant_query(q, end), exact.instant_query(q, end))


def test_open_newest_window_is_combined_from_raw_samples(world):
    # The last scrape is at 59:50, so the window ending at 60:00 is still open: with tumbling
    # windows only that window is rebuilt from raw samples; with sliding windows (they overlap)
    # the steps that need it are evaluated by the exact subtree.
    pre, _ = world.engines()
    text = pre.explain("sum_over_time(x[5m])", 3_000_000, HOUR_MS, 60_000, analyze=True).text
    assert "raw_windows=[1]" in text and "raw_steps" not in text
    text = pre.explain("quantile_over_time(0.5, x[5m])", 3_000_000, HOUR_MS, 60_000, analyze=True)
    assert "raw_steps=[1]" in text.text
    _compare(world, SHAPES, 3_000_000, HOUR_MS)


def test_steps_after_the_data_ends_are_not_silently_missing(world):
    _compare(world, SHAPES, 3_300_000, HOUR_MS + 240_000)


def test_time_before_the_aggregation_existed_comes_from_raw_data():
    w = World("aggregations: []")
    fill(w, seed=3, end_ms=1_200_000)
    from precompute.config import load_config

    w.engine.update_config(load_config(YAML))
    fill(w, seed=4, start_ms=1_200_000, end_ms=HOUR_MS)
    pre, _ = w.engines()
    text = pre.explain("sum_over_time(x[5m])", 600_000, 3_000_000, 60_000, analyze=True).text
    assert "SummaryInfer" in text and "raw_windows=[" in text
    _compare(w, SHAPES, 600_000, 3_000_000)


def test_windows_dropped_by_retention_are_answered_from_raw_data():
    w = World(YAML)
    fill(w, seed=5)
    w.store.retention_ms = 1_800_000
    assert w.store.apply_retention(now_ms=HOUR_MS) > 0
    _compare(w, SHAPES, 900_000, 3_000_000)


def _fill_with_late_data(world: World, restart_at_ms: int) -> None:
    """Scrapes where three series of each metric arrive three minutes late every 7th scrape."""
    rng = np.random.default_rng(11)
    steps = HOUR_MS // SCRAPE_MS
    xs, cs = gauge_series(12, "x"), gauge_series(12, "c_total")
    ds = gauge_series(12, "d_total")
    c, d = counter_values(rng, 12, steps), counter_values(rng, 12, steps)
    held: list[tuple[int, list, int, np.ndarray]] = []
    for i in range(steps):
        t = i * SCRAPE_MS
        x = rng.normal(10, 3, 12)
        late = i % 7 == 3
        cut = 3 if late else 0
        for series, values in ((xs, x), (cs, c[i]), (ds, d[i])):
            world.scrape(series[cut:], t, values[cut:])
            if late:
                held.append((i + 18, series[:cut], t, values[:cut]))
        for _due, series, ts, values in [h for h in held if h[0] == i]:
            world.scrape(series, ts, values)
        held = [h for h in held if h[0] != i]
        if t == restart_at_ms:
            world.restart()


def test_late_data_several_workers_and_a_restart_do_not_change_answers():
    w = World(YAML, workers=3, policy="ForwardToStore")
    _fill_with_late_data(w, restart_at_ms=1_500_000)
    assert any(len(v) > 1 for v in w.store.windows(1).values()), "late entries were forwarded"
    _compare(w, SHAPES, 900_000, 3_000_000)


@pytest.mark.parametrize("query", EXACT_SHAPES[:6])
def test_several_workers_give_the_same_answers_as_one(query):
    w = World(YAML, workers=2)
    fill(w, seed=9, end_ms=1_800_000)
    _compare(w, [query], 900_000, 1_500_000)


def test_key_labels_that_do_not_identify_series_fall_back_to_raw_data():
    yaml = """
aggregations:
- {aggregationId: 1, aggregationType: Sum, metric: x, windowSize: 60,
   labels: {grouping: [job]}}
"""
    w = World(yaml)
    series = gauge_series(6, "x")
    for i in range(60):
        w.scrape(series, i * SCRAPE_MS, np.arange(6, dtype=np.float64) + i)
    pre, exact = w.engines()
    text = pre.explain("sum_over_time(x[2m])", 300_000, 480_000, 60_000, analyze=True).text
    assert "fallback=[key labels ['job'] do not identify series" in text
    got = pre.range_query("sum_over_time(x[2m])", 300_000, 480_000, 60_000)
    assert_same(got, exact.range_query("sum_over_time(x[2m])", 300_000, 480_000, 60_000))
    extra = make_labels({"__name__": "x", "job": "j0", "instance": "i0"})
    assert extra in [dict_labels for dict_labels in series]


# --- the precompute engine's coverage (complete from, closed through) --------------------------


def _fresh_engine(w: World, history_ms: int | None) -> None:
    """Replace the world's engine by one told what the storage held when it started."""
    from precompute.config import load_config
    from precompute.engine import PrecomputeEngine
    from precompute.output import StoreSink

    w.storage.remove_listener(w.engine.on_batch)
    w.engine.stop(snapshot=False)
    cfg = load_config(w.yaml)
    opts = type(w.engine.options)(backend="inline", flush_interval_ms=0)
    w.engine = PrecomputeEngine(
        type(cfg)(cfg.aggregations, opts), StoreSink(w.store), history_through_ms=history_ms
    )
    w.storage.add_listener(w.engine.on_batch)


def _engines_with_coverage(w: World):
    from planner.engine import Engine, EngineOptions
    from planner.nodes.precomputed_scan import SketchSource

    source = SketchSource(w.store, lambda: list(w.engine.configs.values()), w.engine.coverage)
    exact = Engine(w.storage, EngineOptions(precompute=False), source)
    return Engine(w.storage, EngineOptions(), source), exact


def test_an_engine_that_saw_all_data_answers_the_first_window_of_steps_from_the_store():
    from precompute.engine import NO_HISTORY_MS

    w = World(YAML)
    _fresh_engine(w, NO_HISTORY_MS)
    fill(w, seed=21)
    pre, exact = _engines_with_coverage(w)
    q = "quantile_over_time(0.5, x[5m])"
    text = pre.explain(q, 60_000, 1_200_000, 60_000, analyze=True).text
    assert "SummaryInfer" in text and "raw_steps" not in text and "fallback" not in text
    store_only, _ = (
        w.engines()
    )  # no engine coverage: steps whose window starts before the oldest stored window ends go raw
    text = store_only.explain(q, 60_000, 1_200_000, 60_000, analyze=True).text
    assert "raw_steps=[4]" in text
    for query in SHAPES:
        assert_same(pre.range_query(query, 60_000, 1_200_000, 60_000),
                    exact.range_query(query, 60_000, 1_200_000, 60_000))  # fmt: skip


def test_engine_coverage_sends_time_before_a_config_was_added_to_raw_data():
    w = World("aggregations: []")
    fill(w, seed=3, end_ms=1_200_000)
    from precompute.config import load_config

    w.engine.update_config(load_config(YAML))
    fill(w, seed=4, start_ms=1_200_000, end_ms=HOUR_MS)
    complete_from, closed, holes, empty_before = w.engine.coverage(1)
    assert complete_from == 1_190_001 and closed == HOUR_MS - 60_000 and holes == ()
    # Older windows are not known to be empty: samples before the config went unseen by it.
    assert empty_before == 1_200_000
    pre, exact = _engines_with_coverage(w)
    for query in SHAPES:
        assert_same(pre.range_query(query, 600_000, 3_000_000, 60_000),
                    exact.range_query(query, 600_000, 3_000_000, 60_000))  # fmt: skip


def test_a_group_lagging_behind_others_is_not_read_before_its_windows_close():
    # Job j0 is scraped up to 10 min, jobs j1/j2 only up to 5 min: their windows after 4 min are
    # still open although j0's are stored. Judged from the store alone they would look closed
    # (and j1/j2's samples in them silently missing); the engine's watermark says they are not.
    yaml = """
aggregations:
- {aggregationId: 1, aggregationType: MultipleSum, metric: x, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
"""
    w = World(yaml)
    series = gauge_series(6, "x")
    lead = [s for s in series if dict(s)["job"] == "j0"]
    rng = np.random.default_rng(2)
    for i in range(61):
        t = i * SCRAPE_MS
        now = series if t <= 300_000 else lead
        w.scrape(now, t, rng.normal(10, 3, len(now)))
    closed = w.engine.coverage(1)[1]
    assert closed == 240_000
    pre, exact = _engines_with_coverage(w)
    for query in ("sum_over_time(x[1m])", "count_over_time(x[2m])"):
        assert_same(pre.range_query(query, 120_000, 540_000, 60_000),
                    exact.range_query(query, 120_000, 540_000, 60_000))  # fmt: skip


def test_engine_coverage_survives_a_restart():
    from precompute.engine import NO_HISTORY_MS

    w = World(YAML)
    _fresh_engine(w, NO_HISTORY_MS)
    fill(w, seed=6, end_ms=600_000)
    before = w.engine.coverage(3)
    assert before is not None and before[0] == NO_HISTORY_MS + 1
    w.restart()  # snapshot → new engine (history unknown) → restore
    assert w.engine.coverage(3) == before


def test_coverage_is_the_same_with_worker_threads():
    out = []
    for backend in ("inline", "thread"):
        w = World(YAML, workers=2, backend=backend)
        fill(w, seed=30, end_ms=900_000)
        w.engine.drain()
        out.append([w.engine.coverage(a) for a in (1, 3, 5)])
        w.engine.stop(snapshot=False)
    assert out[0] == out[1] and all(c is not None for c in out[0])


def test_windows_missing_samples_dropped_as_late_are_answered_from_raw_data():
    # Drop policy, no allowed lateness: every 7th scrape three series arrive three minutes
    # late and are dropped from windows their group already closed. Those windows are holes
    # in the engine's coverage (kept across the restart), so the raw path answers them.
    w = World(YAML, workers=2)
    _fill_with_late_data(w, restart_at_ms=1_500_000)
    holes = w.engine.coverage(1)[2]
    assert holes and all(lo < hi for lo, hi in holes)
    status = {a["aggregation_id"]: a for a in w.engine.status()["aggregations"]}
    assert status[1]["dropped_late"] > 0
    assert [(u["after_ms"], u["through_ms"]) for u in status[1]["untrusted_windows"]] == [*holes]
    pre, exact = _engines_with_coverage(w)
    for query in SHAPES:
        want = exact.range_query(query, 900_000, 3_000_000, 60_000)
        assert want.series, query
        assert_same(pre.range_query(query, 900_000, 3_000_000, 60_000), want)
        assert_same(pre.instant_query(query, 2_400_000), exact.instant_query(query, 2_400_000))
    text = pre.explain("sum_over_time(x[5m])", 900_000, 3_000_000, 60_000, analyze=True).text
    assert "SummaryMergeMultiple" in text  # the windows outside the holes come from the store


@pytest.mark.parametrize("backend", ["inline", "thread"])
def test_coverage_is_asked_of_the_workers_again_only_after_a_message_that_can_change_it(
    backend, monkeypatch
):
    from precompute.worker import Worker

    w = World(YAML, workers=2, policy="Drop", backend=backend)
    fill(w, seed=31, end_ms=900_000)
    w.engine.drain()
    asked = []
    real = Worker.coverage
    monkeypatch.setattr(Worker, "coverage", lambda self: asked.append(1) or real(self))
    first = w.engine.coverage(1)
    assert w.engine.coverage(1) == first and w.engine.status()  # status changes nothing
    assert w.engine.coverage(1) == first and len(asked) == 2  # once per worker
    # A scrape three minutes late for a closed window: dropped, a hole the next answer shows.
    w.scrape(gauge_series(3, "x"), 900_000 - 180_000, np.ones(3))
    w.engine.drain()
    after = w.engine.coverage(1)
    assert len(asked) == 4 and after[2] and after != first
    w.engine.stop(snapshot=False)
