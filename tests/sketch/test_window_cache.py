"""The window table decodes lazily per block of window ends, under one memory budget."""

from __future__ import annotations

import numpy as np
import pytest

from planner import sketch_cache, sketch_table
from planner.sketch_table import WindowTable, cache_stats, configure
from precompute.config import load_config
from tests.sketch.conftest import HOUR_MS, YAML, N
from tests.sketch.harness import SCRAPE_MS, World, as_dict, assert_same, gauge_series

QUERIES = (
    "quantile_over_time(0.9, x[5m])",
    "quantile_over_time(0.5, y[10m])",
    "sum by (job) (sum_over_time(x[10m]))",
    "max_over_time(x[5m])",
    "sum by (job) (rate(c_total[5m]))",
    "rate(d_total[10m])",
)


@pytest.fixture(autouse=True)
def _reads_every_run(no_step_cache):
    """These tests look at the decoded-window cache run after run: no step answers kept."""


@pytest.fixture
def budget():
    """Set the cache budget for one test; the default comes back afterwards."""
    before = sketch_table._BUDGET[0]
    yield configure
    configure(before)


def _config(agg_id: int):
    return next(a for a in load_config(YAML).aggregations if a.aggregation_id == agg_id)


def _run(engine, query: str):
    return as_dict(engine.range_query(query, 600_000, HOUR_MS - 60_000, 60_000))


@pytest.mark.parametrize("query", QUERIES)
def test_answers_are_identical_with_a_tiny_budget_and_a_large_one(engines, budget, query):
    pre, _ = engines
    budget(1 << 30)
    large = _run(pre, query)
    assert large, "the comparison must not be vacuous"
    budget(1)  # every block is evicted once the query has read it
    evictions = cache_stats()["evictions"]
    tiny, again = _run(pre, query), _run(pre, query)
    assert sketch_cache.settle()
    assert cache_stats()["evictions"] > evictions
    assert cache_stats()["bytes"] == 0
    for got in (tiny, again):
        assert got.keys() == large.keys()
        for k in large:
            assert got[k][0] == large[k][0]
            np.testing.assert_array_equal(got[k][1], large[k][1])


def test_memory_held_stays_within_the_budget_and_counts_array_bytes(engines, budget):
    pre, _ = engines
    budget(1 << 30)
    _run(pre, "quantile_over_time(0.9, x[5m])")
    full = cache_stats()["bytes"]
    assert full > 0
    budget(int(full // 3))
    for query in QUERIES:
        _run(pre, query)
        assert sketch_cache.settle()  # the evictor's pass after the read
        assert 0 < cache_stats()["bytes"] <= full // 3


def test_a_query_over_the_last_quarter_hour_decodes_only_its_blocks(world):
    cfg = _config(3)  # KLL, 5 min windows sliding by 1 min: 15 min blocks
    table = WindowTable(cfg)
    records = len(world.store.chunk_view(cfg.aggregation_id))
    ends = np.arange(HOUR_MS - 840_000, HOUR_MS + 1, 60_000, dtype=np.int64)
    got = table.select(world.store, ends)
    assert table.block_ms == 900_000
    assert 0 < table.decoded_records <= records // 3
    whole = WindowTable(cfg).select(world.store, np.arange(0, HOUR_MS + 1, 60_000))
    want = np.isin(whole.col, (ends // 60_000))
    assert got.kid.shape[0] == int(want.sum()) > 0
    assert sorted(zip(ends[got.col].tolist(), got.kid.tolist(), strict=True)) == sorted(
        zip((whole.col[want] * 60_000).tolist(), whole.kid[want].tolist(), strict=True)
    )
    assert got.segments is not None
    np.testing.assert_array_equal(
        np.sort(got.segments.totals(np.arange(got.kid.shape[0]))),
        np.sort(whole.segments.totals(np.flatnonzero(want))),
    )
    decoded = table.decoded_records
    table.select(world.store, ends)  # warm: nothing decoded again
    assert table.decoded_records == decoded


def test_late_entries_appended_after_a_decode_are_seen(budget):
    # Two series arrive three scrapes late every 7th scrape; the late samples are forwarded to
    # the store as extra entries of windows that closed — after a query decoded those windows.
    budget(1 << 30)
    w = World(YAML, policy="ForwardToStore")
    xs = gauge_series(N, "x")
    rng = np.random.default_rng(5)
    held: list[tuple[int, np.ndarray]] = []
    pre, exact = w.engines()
    queries = ("quantile_over_time(0.5, x[5m])", "sum by (job) (sum_over_time(x[5m]))")
    for step in range(120):
        t = step * SCRAPE_MS
        vals = rng.normal(10, 3, N)
        if step % 7 == 3:
            held.append((t, vals[[1, 5]]))
            w.scrape([xs[i] for i in range(N) if i not in (1, 5)], t, np.delete(vals, [1, 5]))
        else:
            w.scrape(xs, t, vals)
        if step == 90:  # decode every block, before most late samples arrive
            w.engine.flush()
            for q in queries:
                pre.range_query(q, 300_000, 840_000, 60_000)
            misses = cache_stats()["misses"]
            for t_old, v_old in held:  # samples of windows that closed long ago
                w.scrape([xs[1], xs[5]], t_old, v_old)
            held = []
    w.engine.flush()
    assert any(len(v) > 1 for v in w.store.windows(3).values()), "late entries were forwarded"
    for q in queries:
        got = pre.range_query(q, 300_000, 1_140_000, 60_000)
        assert_same(got, exact.range_query(q, 300_000, 1_140_000, 60_000))
    assert cache_stats()["misses"] > misses  # the blocks that got late entries were re-read


def test_cache_counters_are_exposed_on_metrics(engines):
    from server.metrics import ServerMetrics

    pre, _ = engines
    _run(pre, "quantile_over_time(0.9, x[5m])")
    text = ServerMetrics().render({})
    stats = cache_stats()
    assert f"tidemark_sketch_cache_bytes {int(stats['bytes'])}" in text
    assert "tidemark_sketch_cache_hits_total" in text
    assert "tidemark_sketch_cache_misses_total" in text


def _rows(table: WindowTable, world, ends: np.ndarray) -> list[tuple]:
    """Every selected row as (end, key id, statistics…) or, for KLL, (end, key id, items…)."""
    got = table.select(world.store, ends)
    every = np.arange(got.kid.shape[0])
    if got.segments is None:
        cols = got.take(every, table.names)
        stats = zip(*(cols[n].tolist() for n in table.names), strict=True)
    else:
        seg = got.segments
        stats = (
            tuple(seg.items[a:z].tolist()) + tuple(seg.cumw[a:z].tolist())
            for a, z in zip(seg.lo.tolist(), seg.hi.tolist(), strict=True)
        )
    keys = zip(ends[got.col].tolist(), got.kid.tolist(), strict=True)
    return sorted(k + tuple(s) for k, s in zip(keys, stats, strict=True))


@pytest.mark.parametrize("agg_id", [1, 3, 5])
def test_rows_read_after_evicting_half_the_blocks_and_compacting_the_pool_are_unchanged(
    world, agg_id
):
    table = WindowTable(_config(agg_id))
    ends = np.arange(0, HOUR_MS + 1, table.config.slide_interval_ms, dtype=np.int64)
    before = _rows(table, world, ends)
    assert before, "the comparison must not be vacuous"
    with table.lock:
        for b in sorted(table.blocks)[::2]:  # every other block: live blocks move in the pool
            table.drop(b)
    assert table.dead_rows > 0, "dropping only marks rows dead"
    assert table.compact() is True
    assert table.dead_rows == 0 and table.slack_bytes() == 0
    live = sum(blk.rows[1] - blk.rows[0] for blk in table.blocks.values())
    assert table.row_pool["end"].size == live
    assert _rows(table, world, ends) == before  # kept blocks read in place, dropped re-decoded
