"""Eviction runs off the query's clock: a read may overshoot the budget, the evictor restores it
after the reads end, compacting only the tables that lost blocks, copying without their lock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from planner import sketch_cache, sketch_table
from planner.sketch_table import WindowTable, cache_stats
from precompute.config import load_config
from tests.sketch.conftest import HOUR_MS, YAML

ALL_ENDS = np.arange(0, HOUR_MS + 1, 60_000, dtype=np.int64)


def _config(agg_id: int):
    return next(a for a in load_config(YAML).aggregations if a.aggregation_id == agg_id)


@pytest.fixture
def empty_cache():
    """Everything evicted, a large budget; the budget before afterwards."""
    before = sketch_cache.budget_info()
    sketch_cache.configure(1)
    assert sketch_cache.settle()
    sketch_cache.configure(1 << 30)
    yield
    sketch_cache.configure(before)
    assert sketch_cache.settle()


def _select(table: WindowTable, world, ends: np.ndarray = ALL_ENDS):
    with table.lock:
        return table.select(world.store, ends)


def _spy(monkeypatch, table: WindowTable, names: list[str]) -> None:
    """Record the thread doing each drop and compaction of ``table`` (the real methods run)."""
    for method in ("drop", "compact"):
        real = getattr(table, method)

        def spy(*args, _real=real):
            names.append(threading.current_thread().name)
            return _real(*args)

        monkeypatch.setattr(table, method, spy)


def test_a_read_overflowing_the_budget_returns_before_eviction_and_the_budget_holds_after(
    world, empty_cache, monkeypatch
):
    monkeypatch.setattr(sketch_cache, "IDLE_WAIT_S", 60.0)  # wait for the reads, however long
    kll = WindowTable(_config(3))
    _select(kll, world)
    full, blocks = kll.footprint, len(kll.blocks)
    assert blocks > 2
    sketch_cache.configure(1)
    assert not kll.blocks
    budget = full // 2
    sketch_cache.configure(budget)
    names: list[str] = []
    _spy(monkeypatch, kll, names)
    before = cache_stats()
    with sketch_cache.reading():  # another query is still reading: the evictor must wait
        got = _select(kll, world)
        assert sketch_cache.held_bytes() > budget, "the read overshoots the budget"
        assert len(kll.blocks) == blocks and not names, "no eviction work before the read ends"
        assert sketch_cache.status()["eviction_pending"]
        totals = got.segments.totals(np.arange(got.kid.shape[0]))
        time.sleep(0.2)
        assert not names, "still nothing while a read is in flight"
    assert sketch_cache.settle()
    after = cache_stats()
    assert 0 < sketch_cache.held_bytes() <= budget
    assert after["evictions"] > before["evictions"]
    assert after["compactions"] == before["compactions"] + 1, "one compaction per table per pass"
    assert names and set(names) == {"sketch-evictor"}, "the evictor did it, not the query"
    # The selection read before eviction still reads the old buffers.
    np.testing.assert_array_equal(got.segments.totals(np.arange(got.kid.shape[0])), totals)


def test_a_query_thread_never_drops_or_compacts(world, empty_cache, monkeypatch):
    sums, kll = WindowTable(_config(1)), WindowTable(_config(3))
    names: list[str] = []
    for t in (sums, kll):
        _spy(monkeypatch, t, names)
    _select(sums, world)
    sketch_cache.configure(sums.footprint)  # room for the sums only
    for _ in range(3):  # each read overflows; the evictor drops what the other one read
        _select(kll, world)
        _select(sums, world)
    assert sketch_cache.settle()
    assert names and set(names) == {"sketch-evictor"}
    assert sketch_cache.held_bytes() <= sketch_cache.budget()


def test_the_evictor_keeps_the_budget_of_a_server_that_is_never_idle(
    world, empty_cache, monkeypatch
):
    monkeypatch.setattr(sketch_cache, "IDLE_WAIT_S", 0.1)
    kll = WindowTable(_config(3))
    _select(kll, world)
    budget = kll.footprint // 3
    sketch_cache.configure(1)
    sketch_cache.configure(budget)
    with sketch_cache.reading():  # reads never end
        _select(kll, world)
        deadline = time.monotonic() + 20
        while sketch_cache.held_bytes() > budget and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sketch_cache.held_bytes() <= budget


def test_only_the_table_that_lost_blocks_is_compacted(world, empty_cache):
    kll, sums = WindowTable(_config(3)), WindowTable(_config(1))
    _select(kll, world)  # least recently used: its blocks go first
    _select(sums, world)
    sums_pool = sums.row_pool["end"].buf
    sums_slack, kll_blocks = sums.slack_bytes(), len(kll.blocks)
    assert sums_slack > 0, "the sums' pool has spare capacity a needless compaction would drop"
    held = sketch_cache.held_bytes()
    assert kll.footprint > held * (1 - sketch_cache.LOW_WATER), "the KLL blocks suffice"
    sketch_cache.configure(held - 1)  # over by one byte: down to the low-water mark
    assert sketch_cache.held_bytes() <= sketch_cache.budget() * sketch_cache.LOW_WATER
    assert 0 < len(kll.blocks) < kll_blocks and kll.dead_rows == 0 and kll.slack_bytes() == 0
    assert sums.row_pool["end"].buf is sums_pool and sums.slack_bytes() == sums_slack


def test_a_compaction_copy_overtaken_by_a_decode_is_dropped_and_redone(world, monkeypatch):
    kll = WindowTable(_config(3))
    first = ALL_ENDS[ALL_ENDS < HOUR_MS // 2]
    _select(kll, world, first)
    with kll.lock:
        kll.drop(min(kll.blocks))
    real = sketch_table.compact_copy
    done = threading.Event()

    def copy_while_a_query_decodes(*args, **kwargs):
        # A query on the table runs to completion during the copy: the lock is not held.
        query = threading.Thread(target=lambda: (_select(kll, world), done.set()), daemon=True)
        query.start()
        query.join(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(sketch_table, "compact_copy", copy_while_a_query_decodes)
    assert kll.compact() is None, "the table changed during the copy: nothing installed"
    assert done.is_set(), "the query waited for the compaction"
    assert kll.dead_rows > 0
    monkeypatch.setattr(sketch_table, "compact_copy", real)
    want = _rows(WindowTable(_config(3)), world)
    assert kll.compact() is True and kll.dead_rows == 0
    assert _rows(kll, world) == want


def _rows(table: WindowTable, world) -> list[tuple]:
    got = _select(table, world)
    seg = got.segments
    assert seg is not None
    cells = (
        tuple(seg.items[a:z].tolist())
        for a, z in zip(seg.lo.tolist(), seg.hi.tolist(), strict=True)
    )
    keys = zip(ALL_ENDS[got.col].tolist(), got.kid.tolist(), strict=True)
    return sorted(k + c for k, c in zip(keys, cells, strict=True))


def test_rows_for_is_kept_per_mapping_until_a_key_id_is_added_or_renumbered():
    table = WindowTable(_config(1))
    a, b, c = ("j0",), ("j1",), ("j2",)
    for key in (a, b):
        table._kid(key)
    keys = {b: 0, c: 1}
    first = table.rows_for(keys, 2)
    assert first.tolist() == [-1, 0] and not first.flags.writeable
    assert table.rows_for(keys, 2) is first  # the same mapping, the same ids: kept
    table._kid(c)  # a key decoded since: its row must show
    assert table.rows_for(keys, 2).tolist() == [-1, 0, 1]
    table._reset()  # ids renumbered from scratch
    table._kid(c)
    assert table.rows_for(keys, 2).tolist() == [1]
    assert table.rows_for({a: 5}, 1).tolist() == [-1]  # another mapping
