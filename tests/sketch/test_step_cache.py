"""Step answers kept across queries (``planner.step_cache``) stay exactly right as data changes."""

from __future__ import annotations

import numpy as np
import pytest

from planner import raw_step_cache, step_cache
from planner.engine import Engine, EngineOptions
from planner.nodes.precomputed_scan import SketchSource
from tests.sketch.conftest import HOUR_MS, YAML, N, fill
from tests.sketch.harness import SCRAPE_MS, World, assert_same, gauge_series

QUERIES = (
    "sum by (job) (rate(c_total[5m]))",
    "rate(d_total[2m])",
    "avg_over_time(x[10m])",
    "max_over_time(x[5m])",
    "increase(c_total[3m])",
    "quantile_over_time(0.9, x[5m])",
)


def _engines(w: World) -> tuple[Engine, Engine]:
    source = SketchSource(w.store, lambda: list(w.engine.configs.values()), w.engine.coverage)
    exact = Engine(w.storage, EngineOptions(precompute=False), source)
    return Engine(w.storage, EngineOptions(), source), exact


def _cached_steps(engine: Engine, query: str, start: int, end: int, step: int) -> int:
    """Steps read from the cache: by an aggregation over the inference (its own answers) plus
    by the inference for the steps the aggregation computed."""
    text = engine.explain(query, start, end, step, analyze=True).text
    return sum(int(part.split("]")[0]) for part in text.split("cached_steps=[")[1:])


@pytest.mark.parametrize("query", QUERIES)
def test_a_repeated_query_reads_its_steps_from_the_cache_and_answers_the_same(engines, query):
    pre, exact = engines
    first = pre.range_query(query, 900_000, 3_000_000, 60_000)
    assert _cached_steps(pre, query, 900_000, 3_000_000, 60_000) == 36
    again = pre.range_query(query, 900_000, 3_000_000, 60_000)
    assert_same(again, first, rtol=0)
    assert_same(again, exact.range_query(query, 900_000, 3_000_000, 60_000))


def test_an_aggregation_keeps_its_own_answers_and_skips_the_inference_when_all_steps_hit(engines):
    pre, exact = engines
    q = "sum by (job) (rate(c_total[5m]))"
    first = pre.range_query(q, 900_000, 3_000_000, 60_000)
    text = pre.explain(q, 900_000, 3_000_000, 60_000, analyze=True).text
    aggregate = next(x for x in text.splitlines() if x.lstrip().startswith("PromAggregate"))
    infer = next(x for x in text.splitlines() if x.lstrip().startswith("SummaryInfer"))
    assert "cached_steps=[36]" in aggregate and "not executed" in infer
    again = pre.range_query(q, 900_000, 3_000_000, 60_000)
    assert_same(again, first, rtol=0)
    assert again.infos == first.infos
    assert_same(again, exact.range_query(q, 900_000, 3_000_000, 60_000))


def test_an_approximate_quantile_answered_from_the_cache_alone_still_says_so(engines):
    pre, _ = engines
    q = "quantile_over_time(0.5, y[5m])"  # K=8 sketches over 30 samples: approximate
    first = pre.range_query(q, 900_000, 3_000_000, 60_000)
    assert any("approximate" in text for text in first.infos)
    assert _cached_steps(pre, q, 900_000, 3_000_000, 60_000) == 36
    again = pre.range_query(q, 900_000, 3_000_000, 60_000)
    assert_same(again, first, rtol=0)
    assert again.infos == first.infos
    exact_first = pre.range_query("quantile_over_time(0.5, x[5m])", 900_000, 3_000_000, 60_000)
    assert not any("approximate" in text for text in exact_first.infos)  # K=200: every value kept


def test_quantiles_of_the_same_series_keep_their_steps_apart(engines):
    pre, exact = engines
    for q in ("quantile_over_time(0.9, x[5m])", "quantile_over_time(0.1, x[5m])"):
        pre.range_query(q, 900_000, 3_000_000, 60_000)
        assert_same(pre.range_query(q, 900_000, 3_000_000, 60_000),
                    exact.range_query(q, 900_000, 3_000_000, 60_000))  # fmt: skip


def test_a_quantile_whose_q_changes_by_step_is_not_cached(engines):
    pre, exact = engines
    q = "quantile_over_time(time() / 10000, x[5m])"
    first = pre.range_query(q, 900_000, 3_000_000, 60_000)
    assert _cached_steps(pre, q, 900_000, 3_000_000, 60_000) == 0
    assert_same(first, exact.range_query(q, 900_000, 3_000_000, 60_000))


def test_new_windows_add_steps_and_leave_the_cached_ones_valid():
    w = World(YAML)
    fill(w, seed=3, end_ms=1_800_000)
    pre, exact = _engines(w)
    q = "sum by (job) (rate(c_total[5m]))"
    pre.range_query(q, 600_000, 1_500_000, 60_000)
    fill(w, seed=4, start_ms=1_800_000, end_ms=2_700_000)  # 15 more minutes close new windows
    # The old steps are still cached; the new ones are computed (the newest goes raw).
    assert _cached_steps(pre, q, 600_000, 2_400_000, 60_000) == 16
    assert_same(pre.range_query(q, 600_000, 2_400_000, 60_000),
                exact.range_query(q, 600_000, 2_400_000, 60_000))  # fmt: skip


def test_late_entries_forwarded_into_cached_windows_recompute_those_steps():
    w = World(YAML, policy="ForwardToStore", lateness_ms=0)
    fill(w, seed=5, end_ms=1_800_000)
    pre, exact = _engines(w)
    q = "avg_over_time(x[5m])"
    before = pre.range_query(q, 600_000, 1_500_000, 60_000)
    assert _cached_steps(pre, q, 600_000, 1_500_000, 60_000) == 16
    # Late samples for every x series at 16:40 (window (960 s, 1020 s]): forwarded as late
    # entries into windows already closed and cached.
    late_t = 1_000_000 + 5_000
    w.scrape(gauge_series(N, "x"), late_t, np.full(N, 1e6))
    got = pre.range_query(q, 600_000, 1_500_000, 60_000)
    want = exact.range_query(q, 600_000, 1_500_000, 60_000)
    assert_same(got, want)
    assert not np.allclose(next(iter(before.series)).values, next(iter(got.series)).values), (
        "the late samples changed the answer"
    )
    # Only the steps whose 5 minutes include 16:45 were recomputed.
    assert _cached_steps(pre, q, 600_000, 1_500_000, 60_000) == 16


def test_a_window_that_becomes_a_hole_is_answered_from_raw_data_again():
    w = World(YAML, policy="Drop", lateness_ms=0)
    fill(w, seed=6, end_ms=1_800_000)
    pre, exact = _engines(w)
    q = "sum_over_time(x[5m])"
    pre.range_query(q, 600_000, 1_500_000, 60_000)
    # A sample for a closed window is dropped as late: its window becomes a hole, and the raw
    # path must answer the steps spanning it, not the cached answer without the sample.
    w.scrape(gauge_series(N, "x")[:1], 1_000_000 + 5_000, np.array([1e6]))
    assert w.engine.coverage(1)[2], "the drop made a hole"
    assert_same(pre.range_query(q, 600_000, 1_500_000, 60_000),
                exact.range_query(q, 600_000, 1_500_000, 60_000))  # fmt: skip


def test_a_new_series_replaces_the_entry_and_answers_stay_exact():
    w = World(YAML)
    fill(w, seed=8, end_ms=1_800_000)
    pre, exact = _engines(w)
    q = "max_over_time(x[5m])"
    pre.range_query(q, 600_000, 1_500_000, 60_000)
    newcomer = [gauge_series(N + 1, "x")[-1]]
    for t in range(1_800_000, 2_400_000, SCRAPE_MS):
        w.scrape(newcomer, t, np.array([float(t)]))
        fill_t = gauge_series(N, "x")
        w.scrape(fill_t, t, np.ones(N))
    assert_same(pre.range_query(q, 600_000, 2_100_000, 60_000),
                exact.range_query(q, 600_000, 2_100_000, 60_000))  # fmt: skip


def test_a_tiny_budget_evicts_and_answers_stay_exact(engines):
    pre, exact = engines
    before = step_cache.stats()["budget"]
    step_cache.configure(1)
    try:
        for q in QUERIES:
            assert_same(pre.range_query(q, 900_000, HOUR_MS - 60_000, 60_000),
                        exact.range_query(q, 900_000, HOUR_MS - 60_000, 60_000))  # fmt: skip
        assert step_cache.stats()["bytes"] <= 1
    finally:
        step_cache.configure(before)


def test_turned_off_no_step_is_cached(engines, no_step_cache):
    pre, _ = engines
    q = QUERIES[0]
    pre.range_query(q, 900_000, 3_000_000, 60_000)
    text = pre.explain(q, 900_000, 3_000_000, 60_000, analyze=True).text
    assert "cached_steps" not in text


def test_an_entry_keeps_only_its_newest_steps(engines, monkeypatch):
    pre, exact = engines
    monkeypatch.setattr(step_cache, "MIN_STEPS_KEPT", 4)
    q = QUERIES[2]
    pre.range_query(q, 900_000, 1_500_000, 60_000)  # 11 steps: 2 × 11 kept
    pre.range_query(q, 1_560_000, 3_000_000, 60_000)  # 25 more: the newest 50 kept of 36
    assert _cached_steps(pre, q, 900_000, 3_000_000, 60_000) == 36
    pre.range_query(q, 3_060_000, 3_240_000, 60_000)  # 4 steps: cap 8, the newest 8 kept
    assert _cached_steps(pre, q, 900_000, 3_240_000, 60_000) == 8
    assert_same(pre.range_query(q, 900_000, 3_240_000, 60_000),
                exact.range_query(q, 900_000, 3_240_000, 60_000))  # fmt: skip


def test_step_cache_counters_are_on_metrics_and_the_precompute_status(engines):
    from server.metrics import ServerMetrics

    pre, _ = engines
    q = QUERIES[2]
    pre.range_query(q, 900_000, 3_000_000, 60_000)
    pre.range_query(q, 900_000, 3_000_000, 60_000)
    stats = step_cache.stats()
    assert stats["hits"] >= 36 and stats["entries"] == 1 and stats["bytes"] > 0
    text = ServerMetrics().render({})
    assert f"tidemark_step_cache_bytes {stats['bytes']}" in text
    assert f"tidemark_step_cache_hits_total {stats['hits']}" in text
    raw = raw_step_cache.stats()
    assert f"tidemark_raw_step_cache_hits_total {raw['hits']}" in text
    assert f"tidemark_raw_step_cache_entries {raw['entries']}" in text
    assert "tidemark_sketch_cache_compactions_total" in text


def test_a_block_changed_by_another_lookup_meanwhile_drops_its_steps():
    """``added_ends`` runs outside the cache lock; when another query moved the block's mark
    meanwhile, every step spanning that block is dropped rather than trusted."""
    labels = [(("a", "1"),), (("a", "2"),)]
    ends = np.array([60_000, 120_000, 960_000], dtype=np.int64)  # blocks 0, 0 and 1 (900 s)
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    first = object()
    step_cache.store("k", labels, first, ends, values, np.ones((2, 3), bool), 900_000, 60_000,
                     {0: 5, 1: 3})  # fmt: skip

    def racing_added_ends(block, old, now):
        # Another query notices the same block first and moves its mark to 6.
        step_cache.lookup("k", labels, first, ends, {0: 6, 1: 3}, lambda *a: [], (), 60_000)
        return np.array([], np.int64)

    got = step_cache.lookup("k", labels, first, ends, {0: 7, 1: 3}, racing_added_ends, (), 60_000)
    assert got.hit.tolist() == [False, False, True]
    np.testing.assert_array_equal(got.values[:, 2], values[:, 2])
    again = step_cache.lookup("k", labels, first, ends, {0: 7, 1: 3}, lambda *a: [], (), 60_000)
    assert again.hit.tolist() == [False, False, True]


def test_a_step_rebuilt_from_raw_samples_is_not_kept_while_its_window_is_open():
    w = World(YAML)
    fill(w, seed=12, end_ms=1_800_000)  # last scrape 29:50: the window ending 30:00 is open
    pre, exact = _engines(w)
    q = "sum_over_time(x[5m])"  # tumbling 1 m windows: the open one is rebuilt from raw samples
    pre.range_query(q, 1_200_000, 1_800_000, 60_000)
    w.scrape(gauge_series(N, "x"), 1_795_000, np.full(N, 1e3))  # still inside the open window
    assert_same(pre.range_query(q, 1_200_000, 1_800_000, 60_000),
                exact.range_query(q, 1_200_000, 1_800_000, 60_000))  # fmt: skip


@pytest.mark.parametrize(("policy", "known_history"), [("ForwardToStore", True), ("Drop", False)])
def test_refreshing_dashboards_over_growing_late_and_lost_data_stay_exact(policy, known_history):
    """A dashboard refreshing every scrape while data arrives — on time, late (forwarded or
    dropped into holes) and for new series — answers as the exact path at every refresh."""
    rng = np.random.default_rng(31)
    w = World(YAML, workers=2, policy=policy, known_history=known_history)
    fill(w, seed=13, end_ms=900_000)
    pre, exact = _engines(w)
    xs, cs = gauge_series(N + 2, "x"), gauge_series(N, "c_total")
    counters = np.zeros(N)
    hits = step_cache.stats()["hits"]
    for t in range(900_000, 1_800_000, SCRAPE_MS):
        w.scrape(xs[:N], t, rng.normal(10, 3, N))
        counters += rng.integers(0, 5, N)
        w.scrape(cs, t, counters.copy())
        if rng.random() < 0.15:  # a late sample for a window that may have closed
            w.scrape(xs[:1], t - int(rng.integers(60_000, 300_000)), np.array([99.0]))
        if t == 1_400_000:
            w.scrape(xs[N:], t, np.ones(2))  # two series appear
        if (t // SCRAPE_MS) % 6 == 0:
            end = t - t % 60_000
            for q in ("sum by (job) (rate(c_total[5m]))", "avg_over_time(x[5m])",
                      "max_over_time(x[3m])", "avg by (job) (max_over_time(x[3m]))",
                      "count without (instance) (increase(c_total[3m]))",
                      "quantile_over_time(0.9, x[5m])"):  # fmt: skip
                assert_same(pre.range_query(q, end - 600_000, end, 60_000),
                            exact.range_query(q, end - 600_000, end, 60_000))  # fmt: skip
    assert step_cache.stats()["hits"] > hits + 100, "refreshes reused kept steps"


@pytest.mark.parametrize("query", ["rate(d_total[2m])", "sum by (job) (rate(d_total[2m]))"])
def test_an_instant_query_past_the_newest_closed_window_goes_straight_to_raw_samples(
    engines, query
):
    pre, exact = engines
    # The last scrape is at 59:50: the sliding window ending at 60:00 is still open.
    lines = pre.explain(query, HOUR_MS, HOUR_MS, 0, analyze=True).text.splitlines()
    top = next(x for x in lines if x.startswith(("PromAggregate", "SummaryInfer")))
    assert "raw_steps=[1]" in top
    for node in ("SummaryMergeMultiple", "PrecomputedScan"):  # no window was looked up
        assert "not executed" in next(x for x in lines if x.lstrip().startswith(node))
    assert "not executed" not in next(x for x in lines if x.lstrip().startswith("SeriesScan"))
    got, want = pre.instant_query(query, HOUR_MS), exact.instant_query(query, HOUR_MS)
    assert got.series and got.infos == want.infos
    assert_same(got, want, rtol=0)


def test_steps_whose_range_starts_before_the_first_sample_are_answered_and_kept_from_windows():
    w = World(YAML, known_history=True)
    fill(w, seed=14, start_ms=600_000, end_ms=HOUR_MS)
    pre, exact = _engines(w)
    q = "avg_over_time(x[10m])"  # the first steps reach back before 10:00, the first scrape
    first = pre.range_query(q, 600_000, 1_800_000, 60_000)
    text = pre.explain(q, 600_000, 1_800_000, 60_000, analyze=True).text
    assert "cached_steps=[21]" in text and "raw_windows" not in text
    assert_same(first, exact.range_query(q, 600_000, 1_800_000, 60_000))


@pytest.mark.parametrize("policy", ["ForwardToStore", "Drop"])
def test_a_sample_older_than_any_before_makes_its_windows_not_empty_any_more(policy):
    w = World(YAML, policy=policy, lateness_ms=0, known_history=True)
    fill(w, seed=15, start_ms=600_000, end_ms=1_800_000)
    pre, exact = _engines(w)
    q = "sum_over_time(x[5m])"
    pre.range_query(q, 600_000, 1_500_000, 60_000)
    assert w.engine.coverage(1)[3] == 600_000
    w.scrape(gauge_series(N, "x")[:1], 450_000, np.array([1e6]))  # before every other sample
    assert w.engine.coverage(1)[3] == 450_000
    got = pre.range_query(q, 600_000, 1_500_000, 60_000)
    assert_same(got, exact.range_query(q, 600_000, 1_500_000, 60_000))
    assert np.nanmax(next(iter(got.series)).values) > 1e5, "the old sample counts"
