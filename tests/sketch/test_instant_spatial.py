"""Spatial aggregations over an instant selector answered from MultipleLast windows equal the
exact engine: stale markers, series that stop, samples on window boundaries, offset and @, open
windows, refusals with their reasons."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from precompute.config import load_config
from storage.model import STALE_NAN
from tests.golden import check_explain
from tests.server.conftest import server_factory  # noqa: F401  (fixture)
from tests.sketch.harness import SCRAPE_MS, World, assert_same, gauge_series

HOUR_MS = 3_600_000
GOLDEN = Path(__file__).with_name("golden")
YAML = """
aggregations:
- {aggregationId: 1, aggregationType: MultipleLast, metric: x, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 2, aggregationType: MultipleLast, metric: z, windowSize: 300, slideInterval: 60,
   windowType: sliding, labels: {grouping: [job, instance]}}
- {aggregationId: 3, aggregationType: MultipleSum, metric: s, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 4, aggregationType: MultipleLast, metric: f, spatialFilter: 'job="j0"',
   windowSize: 60, labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 5, aggregationType: MultipleLast, metric: k, windowSize: 60,
   labels: {grouping: [job]}}
- {aggregationId: 6, aggregationType: MultipleLast, metric: y, windowSize: 300, slideInterval: 60,
   windowType: sliding, labels: {grouping: [instance], aggregated: [job]}}
"""
METRICS = ("x", "z", "s", "f", "k", "y")
N = 12
PHASE_MS = {0: 0, 1: 3_000, 2: 0, 3: 7_000}  # by series index % 4: some off the window grid
STALE_AT, RESUME_AT = 1_500_000, 2_400_000  # series 10: a stale marker, silence, then back
STOP_AT = 2_000_000  # series 11: stops without a marker (gone once the lookback passes it)
REVIVE_AT = 2_700_000  # series 8: a marker immediately followed by a new sample


def _emits(i: int, t: int) -> float | None:
    """The value series ``i`` sends at scrape time ``t`` (None: no sample)."""
    if i == 9 and t % 300_000:  # sparse, and exactly on window boundaries / lookback edges
        return None
    if i == 10 and STALE_AT < t < RESUME_AT:
        return None
    if i == 11 and t >= STOP_AT:
        return None
    if (i == 10 and t == STALE_AT) or (i == 8 and t == REVIVE_AT):
        return STALE_NAN
    return 0.0


def fill(world: World, seed: int, start_ms: int, end_ms: int) -> None:
    rng = np.random.default_rng(seed)
    per_metric = {m: gauge_series(N, m) for m in METRICS}
    for t in range(start_ms, end_ms, SCRAPE_MS):
        values = rng.normal(10, 3, N).round(3)
        for phase in sorted(set(PHASE_MS.values())):
            series, vals = [], []
            for i in range(N):
                marker = _emits(i, t)
                if PHASE_MS[i % 4] != phase or marker is None:
                    continue
                v = marker if np.isnan(marker) else values[i]
                for m in METRICS:
                    series.append(per_metric[m][i])
                    vals.append(v)
            if series:
                world.scrape(series, t + phase, np.array(vals))
        # The flush timer: a series that stops is its own group (z is keyed per series), and
        # its last windows close only when the idle group advances to the aggregation's time.
        world.engine.flush()


@pytest.fixture(scope="module")
def world() -> World:
    w = World(YAML)
    fill(w, 1, 0, HOUR_MS)
    return w


SHAPES = [
    "sum(X)",
    "sum by (job) (X)",
    "avg without (instance) (X)",
    "count(X)",
    "min(X)",
    "max by (job) (X)",
    "quantile by (job) (0.9, X)",
    "topk(3, X)",
    "bottomk(2, X)",
    "group by (job) (X)",
    "stddev(X)",
    'count_values("v", X)',
    "sum(X offset 5m)",
    "topk(3, X offset 10m)",
    "sum by (job) (X @ 1800)",
]
INSTANTS = (STALE_AT, 1_560_000, 2_280_000, 2_340_000, RESUME_AT, REVIVE_AT, HOUR_MS)


def _rewritten(engine, query: str, start: int, end: int, step: int) -> str:
    text = engine.explain(query, start, end, step).text
    assert "LatestSample" in text, text
    return text


@pytest.mark.parametrize("query", SHAPES)
@pytest.mark.parametrize("metric", ["x", "z"], ids=["tumbling", "sliding"])
def test_range_query_from_windows_equals_the_exact_answer(world, query, metric):
    query = query.replace("X", metric)
    pre, exact = world.engines()
    _rewritten(pre, query, 600_000, HOUR_MS, 60_000)
    want = exact.range_query(query, 600_000, HOUR_MS, 60_000)
    assert want.series
    assert_same(pre.range_query(query, 600_000, HOUR_MS, 60_000), want)


@pytest.mark.parametrize("query", SHAPES)
@pytest.mark.parametrize("metric", ["x", "z"], ids=["tumbling", "sliding"])
def test_instant_queries_take_the_same_path_and_equal_the_exact_answer(world, query, metric):
    query = query.replace("X", metric)
    pre, exact = world.engines()
    for t in INSTANTS:
        _rewritten(pre, query, t, t, 0)
        assert_same(pre.instant_query(query, t), exact.instant_query(query, t))


def test_stale_markers_end_series_and_silent_series_vanish_after_the_lookback(world):
    pre, _ = world.engines()

    def count(t: int) -> float:
        (series,) = pre.instant_query("count(x)", t).series
        return float(series.values[0])

    assert count(STALE_AT - 60_000) == N
    assert count(STALE_AT) == N - 1  # the marker is series 10's newest sample
    assert count(2_280_000) == N - 1  # series 11's last sample (1997 s) is still in the lookback
    assert count(2_340_000) == N - 2  # ... and now it is not
    assert count(RESUME_AT) == N - 1  # series 10 is back (11 stays gone)
    assert count(REVIVE_AT) == N - 2  # series 8's marker is its newest sample
    assert count(REVIVE_AT + 60_000) == N - 1  # the sample right after the marker revives it


def test_samples_on_window_boundaries_belong_to_the_window_they_end(world):
    # Series 9 has samples only at multiples of 5 m: at t = 25 m the lookback (20 m, 25 m] holds
    # just the one at 25 m (the window ending there), at 24 m just the one at 20 m.
    pre, exact = world.engines()
    q = 'sum(x{instance="i9"})'
    for t in (1_200_000, 1_440_000, 1_500_000, 1_560_000):
        _rewritten(pre, q, t, t, 0)
        assert_same(pre.instant_query(q, t), exact.instant_query(q, t))
    assert_same(
        pre.range_query(q, 600_000, 1_800_000, 60_000),
        exact.range_query(q, 600_000, 1_800_000, 60_000),
    )


def test_open_newest_window_comes_from_raw_samples_or_the_exact_subtree(world):
    pre, exact = world.engines()
    tumbling = pre.explain("sum(x)", HOUR_MS, HOUR_MS, 0, analyze=True)
    assert "raw_windows=[1]" in tumbling.text and "raw_steps" not in tumbling.text
    assert (
        "fallback" not in tumbling.text
        and "InstantManipulate: lookback=[300000] | not executed" in tumbling.text
    )
    sliding = pre.explain("sum(z)", 3_000_000, HOUR_MS, 60_000, analyze=True)
    assert "raw_steps=[1]" in sliding.text and "fallback" not in sliding.text
    assert_same(tumbling.result, exact.instant_query("sum(x)", HOUR_MS))
    assert_same(sliding.result, exact.range_query("sum(z)", 3_000_000, HOUR_MS, 60_000))


def test_steps_after_the_data_ends_are_answered_like_the_exact_engine(world):
    pre, exact = world.engines()
    for q in ("sum by (job) (x)", "count(z)"):
        end = HOUR_MS + 600_000
        assert_same(
            pre.range_query(q, 3_000_000, end, 60_000), exact.range_query(q, 3_000_000, end, 60_000)
        )


def test_a_filtered_query_on_an_unfiltered_per_series_config_is_answered_exactly(world):
    pre, exact = world.engines()
    q = 'sum by (job) (x{job=~"j1|j2"})'
    _rewritten(pre, q, 600_000, HOUR_MS, 60_000)
    assert_same(
        pre.range_query(q, 600_000, HOUR_MS, 60_000), exact.range_query(q, 600_000, HOUR_MS, 60_000)
    )


def _notes(engine, query: str, start: int, end: int, step: int, lookback_ms=None) -> str:
    planned = engine.plan(query, start, end, step, lookback_ms=lookback_ms, range_=step > 0)
    return "\n".join(n for s in planned.steps for n in s.notes)


def test_refusals_say_why_and_answers_stay_exact(world):
    pre, exact = world.engines()
    cases = [
        (
            "sum(x)",
            600_000,
            1_200_000,
            60_000,
            90_000,
            "lookback 1m30s is not a multiple of window 1m",
        ),
        ("sum(x)", 600_000, 1_200_000, 30_000, None, "step 30s is not a multiple of slide 1m"),
        ("sum(x)", 1_234_567, 1_234_567, 0, None, "is not on the window grid"),
        ("sum(x @ 1234.5)", 1_200_000, 1_200_000, 0, None, "@ 1234500 minus offset is not on"),
        ("sum(f)", 600_000, 1_200_000, 60_000, None, 'its filter job="j0" is not among'),
        ('sum(f{job="j1"})', 600_000, 1_200_000, 60_000, None, 'its filter job="j0" is not'),
        ("sum by (job) (s)", 600_000, 1_200_000, 60_000, None, "MultipleLast aggregation answers"),
        (
            "sum(z)",
            600_000,
            1_200_000,
            60_000,
            240_000,
            "lookback 4m is not a multiple of window 5m",
        ),
    ]
    for q, start, end, step, lookback, reason in cases:
        notes = _notes(pre, q, start, end, step, lookback)
        assert "not precomputed" in notes and reason in notes, (q, notes)
        assert "precomputed: {" not in notes.replace("not precomputed", ""), (q, notes)
        if step:
            got = pre.range_query(q, start, end, step, lookback_ms=lookback)
            want = exact.range_query(q, start, end, step, lookback_ms=lookback)
        else:
            got = pre.instant_query(q, start, lookback_ms=lookback)
            want = exact.instant_query(q, start, lookback_ms=lookback)
        assert want.series
        assert_same(got, want)


def test_plain_window_sums_never_answer_a_sum_of_newest_values(world):
    pre, _ = world.engines()
    text = pre.explain("sum by (job) (s)", 600_000, 1_200_000, 60_000).text
    assert "LatestSample" not in text and "SummaryInfer" not in text
    assert "aggregation 3 (MultipleSum): an instant selector reads each series' newest" in text


def test_the_filtered_config_answers_a_query_with_its_filter(world):
    pre, exact = world.engines()
    q = 'max(f{job="j0"})'
    _rewritten(pre, q, 600_000, HOUR_MS, 60_000)
    assert_same(
        pre.range_query(q, 600_000, HOUR_MS, 60_000), exact.range_query(q, 600_000, HOUR_MS, 60_000)
    )


def test_keys_that_do_not_identify_series_fall_back_to_the_exact_subtree(world):
    pre, exact = world.engines()
    out = pre.explain("sum(k)", 600_000, 1_200_000, 60_000, analyze=True)
    assert "LatestSample" in out.text and "do not identify series" in out.text
    assert_same(out.result, exact.range_query("sum(k)", 600_000, 1_200_000, 60_000))


def test_time_before_the_aggregation_existed_comes_from_raw_data():
    w = World("aggregations: []")
    fill(w, 3, 0, 1_200_000)
    w.engine.update_config(load_config(YAML))
    fill(w, 4, 1_200_000, 2_400_000)
    pre, exact = w.engines()
    out = pre.explain("sum by (job) (x)", 900_000, 2_100_000, 60_000, analyze=True)
    assert "LatestSample" in out.text and "raw_windows=[" in out.text
    for q in ("sum by (job) (x)", "quantile(0.5, z)", "count(x offset 3m)"):
        want = exact.range_query(q, 900_000, 2_400_000, 60_000)
        assert_same(pre.range_query(q, 900_000, 2_400_000, 60_000), want)


def test_several_workers_and_a_restart_do_not_change_answers():
    w = World(YAML, workers=2)
    fill(w, 5, 0, 1_500_000)
    w.restart()
    fill(w, 6, 1_500_000, 2_400_000)
    pre, exact = w.engines()
    for q in ("sum by (job) (x)", "topk(2, z)", "count(x)"):
        want = exact.range_query(q, 600_000, 2_400_000, 60_000)
        assert_same(pre.range_query(q, 600_000, 2_400_000, 60_000), want)


def test_explain_golden_for_a_rewritten_instant_aggregation(world):
    pre, _ = world.engines()
    out = pre.explain("quantile by (job) (0.9, x offset 5m)", 1_800_000, 3_000_000, 60_000)
    check_explain(out, GOLDEN, "instant_quantile_by_rewritten")


HTTP_CONFIG = """
aggregations:
  - {aggregationId: 1, aggregationType: MultipleLast, metric: lat, windowSize: 60,
     labels: {grouping: [job], aggregated: [instance]}}
engine: {num_workers: 1, flush_interval_ms: 50}
"""


def test_http_explain_shows_the_rewrite_and_windows_show_newest_samples(server_factory):  # noqa: F811
    from server.routes_precompute import attach
    from storage.db import Storage
    from storage.sketch_store import SketchStore
    from tests.server.payloads import RW_HEADERS, snappy, write_request

    storage = Storage.in_memory()
    attach(storage, load_config(HTTP_CONFIG), SketchStore())
    client, _ = server_factory(storage)
    series = [
        (
            [("__name__", "lat"), ("job", "api"), ("instance", f"i{i}")],
            [(t * 1000, float((t * 7 + i) % 50)) for t in range(0, 540 if i == 0 else 600, 5)]
            + ([(537_500, STALE_NAN)] if i == 0 else []),  # i0 ends with a marker
        )
        for i in range(3)
    ]
    reply = client.post("/api/v1/write", snappy(write_request(series)), RW_HEADERS)
    assert reply.status == 204, reply.body
    params = [("query", "sum by (job) (lat)"), ("start", "300"), ("end", "660"), ("step", "60")]
    body = client.get("/api/v1/query_range", [*params, ("explain", "true")]).json()
    text = body["data"]["explain"]["text"]
    assert "LatestSample: aggregation=[1], type=[MultipleLast]" in text
    assert 'Note: precomputed: {__name__="lat"} (instant selector, lookback 5m)' in text
    off = client.get("/api/v1/query_range", [*params, ("explain", "true"), ("precompute", "off")])
    assert "LatestSample" not in off.json()["data"]["explain"]["text"]
    window = [("aggregation_id", "1"), ("start", "480"), ("end", "540")]
    deadline = time.monotonic() + 10
    while True:  # windows close asynchronously (flush timer)
        rows = client.get("/api/v1/precompute/windows", window).json()["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stats = {k["key"]["instance"]: k["stats"] for k in rows[0]["stats"]["keys"]}
    assert stats["i0"] == {"last": "NaN", "timestamp": 537.5, "stale": True}
    assert stats["i1"] == {"last": float((540 * 7 + 1) % 50), "timestamp": 540.0, "stale": False}
    got = client.get("/api/v1/query_range", params).json()["data"]["result"]
    want = client.get("/api/v1/query_range", [*params, ("precompute", "off")]).json()
    assert got == want["data"]["result"] and got


def test_the_advisor_proposes_newest_samples_for_aggregated_instant_selectors():
    from planner.advise import AdviseOptions, advise

    queries = ["sum by (job) (x)", "quantile(0.9, x offset 5m)", 'count_values("v", x)']
    advice = advise([*queries, "x > 3"], AdviseOptions())
    (agg,) = advice.config["aggregations"]
    assert agg["aggregationType"] == "MultipleLast" and agg["windowType"] == "tumbling"
    assert agg["windowSize"] == 60.0
    assert agg["labels"] == {"grouping": ["job"], "aggregated": ["instance"]}
    assert [q for q, _ in advice.helped] == queries
    assert "feeds no aggregation" in dict(advice.unhelped)["x > 3"]
    w = World(advice.yaml())
    fill(w, 8, 0, 1_800_000)
    pre, exact = w.engines()
    for q in queries:
        _rewritten(pre, q, 600_000, 1_800_000, 60_000)
        want = exact.range_query(q, 600_000, 1_800_000, 60_000)
        assert_same(pre.range_query(q, 600_000, 1_800_000, 60_000), want)


def test_late_samples_forwarded_to_closed_windows_merge_to_the_newest_sample():
    # Two series arrive three scrapes late every 7th scrape: their samples land in windows that
    # already closed, as extra entries that must merge by newest timestamp (ties: later entry).
    w = World(YAML, policy="ForwardToStore")
    xs = gauge_series(N, "x")
    rng = np.random.default_rng(12)
    held: list[tuple[int, int, np.ndarray]] = []
    for step in range(180):
        t = step * SCRAPE_MS
        vals = rng.normal(10, 3, N)
        late = step % 7 == 3
        now = [i for i in range(N) if not (late and i in (1, 5))]
        w.scrape([xs[i] for i in now], t, vals[now])
        if late:
            held.append((step + 3, t, vals[[1, 5]]))
        for _, t_old, v_old in [h for h in held if h[0] == step]:
            w.scrape([xs[1], xs[5]], t_old, v_old)
        held = [h for h in held if h[0] != step]
        w.engine.flush()
    pre, exact = w.engines()
    out = pre.explain("sum by (job) (x)", 600_000, 1_740_000, 60_000, analyze=True)
    assert "LatestSample" in out.text and "fallback" not in out.text
    for q in ("sum by (job) (x)", "max(x)", "topk(2, x)"):
        want = exact.range_query(q, 600_000, 1_740_000, 60_000)
        assert_same(pre.range_query(q, 600_000, 1_740_000, 60_000), want)


def _newest_reference(cells, cols, stride: int, m: int):
    """Slow oracle: per (series, step) walk the windows newest first."""
    n, k = len(cells.labels), cols.shape[0]
    values, present, ok = np.zeros((n, k)), np.zeros((n, k), bool), np.ones((n, k), bool)
    for i in range(n):
        for j, c in enumerate(cols.tolist()):
            for back in range(m):
                col = c - back * stride
                if not cells.covered[col]:
                    ok[i, j] = False
                    break
                if cells.has[i, col]:
                    present[i, j] = not cells.stale[i, col]
                    values[i, j] = cells.value[i, col] if present[i, j] else 0.0
                    break
    return values, present, ok


@pytest.mark.parametrize("seed", range(6))
def test_newest_window_lookup_matches_a_brute_force_walk(seed):
    from planner.nodes.latest_sample import LastCells, newest_in_lookback

    rng = np.random.default_rng(seed)
    n, w = 7, 40
    stride, m = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    cells = LastCells(
        [(("i", str(i)),) for i in range(n)],
        np.arange(w, dtype=np.int64) * 1000,
        rng.random((n, w)) < 0.3,
        rng.normal(size=(n, w)),
        rng.random((n, w)) < 0.2,
        rng.random(w) < 0.9,
    )
    cols = np.sort(rng.integers((m - 1) * stride, w, 15))
    got = newest_in_lookback(cells, cols, stride, m)
    want = _newest_reference(cells, cols, stride, m)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)


def test_with_the_engines_coverage_a_series_that_stopped_in_its_own_group_is_not_misread():
    # Grouped per series and no flush timer: the stopped series' last windows never close. The
    # store's newest window says "closed" (other groups went on); the engine's coverage (every
    # group's watermark) does not, so those windows come from raw samples.
    from planner.engine import Engine, EngineOptions
    from planner.nodes.precomputed_scan import SketchSource

    yaml = """
aggregations:
- {aggregationId: 1, aggregationType: MultipleLast, metric: x, windowSize: 60,
   labels: {grouping: [job, instance]}}
"""
    w = World(yaml)
    xs = gauge_series(3, "x")
    rng = np.random.default_rng(4)
    for t in range(0, 1_200_000, SCRAPE_MS):
        live = xs if t < 600_000 else xs[:2]
        w.scrape(live, t, rng.normal(10, 3, len(live)))
    configs = lambda: list(w.engine.configs.values())  # noqa: E731
    source = SketchSource(w.store, configs, w.engine.coverage)
    pre = Engine(w.storage, EngineOptions(), source)
    _, exact = w.engines()
    out = pre.explain("sum(x)", 300_000, 1_140_000, 60_000, analyze=True)
    assert "LatestSample" in out.text and "raw_windows=[" in out.text
    assert_same(out.result, exact.range_query("sum(x)", 300_000, 1_140_000, 60_000))


@pytest.mark.parametrize(
    "query", ["sum by (job) (y)", "count(y)", "max by (job) (y)", "topk(3, y)"]
)
def test_small_keyed_groups_run_as_cells_and_equal_the_exact_answer(world, query):
    """One group per instance keyed by job: the worker keeps MultipleLast columnar over
    (group, sub key) cells; stale markers, stops and revivals read as from raw data."""
    from precompute.window_batch import WindowBatch

    log = world.store.chunk_view(6)
    assert log and all(isinstance(r, WindowBatch) and r.group_width == 1 for r in log)
    pre, exact = world.engines()
    _rewritten(pre, query, 600_000, HOUR_MS, 60_000)
    want = exact.range_query(query, 600_000, HOUR_MS, 60_000)
    assert want.series
    assert_same(pre.range_query(query, 600_000, HOUR_MS, 60_000), want)
    for t in INSTANTS:
        _rewritten(pre, query, t, t, 0)
        assert_same(pre.instant_query(query, t), exact.instant_query(query, t))
