"""Warm-up after a start, per-table locks and the shared budget under concurrent queries."""

from __future__ import annotations

import threading
import time
import urllib.request

import numpy as np
import pytest

from planner import sketch_cache, sketch_warmup
from planner.sketch_table import cache_stats, configure, table_for
from planner.sketch_warmup import Warmup, warmup_stats
from precompute.config import EngineOptions, load_config
from server.routes_precompute import WARMUP, attach
from server.routes_query import QueryAPIConfig
from storage.db import Storage, StorageOptions
from storage.model import SampleBatch
from storage.sketch_store import SketchStore
from tests.api.conftest import QueryServer
from tests.sketch.conftest import HOUR_MS, YAML, fill
from tests.sketch.harness import World, as_dict

QUERIES = (
    "quantile_over_time(0.9, x[5m])",
    "quantile_over_time(0.5, y[10m])",
    "sum by (job) (rate(c_total[5m]))",
    "sum by (job) (sum_over_time(x[10m]))",
)
BIG = 1 << 30


@pytest.fixture(scope="module")
def own() -> World:
    w = World(YAML)
    fill(w, seed=3)
    return w


@pytest.fixture
def cold():
    """An empty cache (everything evicted) with a large budget; the old budget afterwards."""
    before = sketch_cache.budget()
    configure(1)
    configure(BIG)
    yield
    configure(before)


def _configs(world: World):
    return lambda: list(world.engine.configs.values())


def _tables(world: World):
    return [table_for(world.store, cfg) for cfg in world.engine.configs.values()]


def _run(engine, query: str) -> dict:
    return as_dict(engine.range_query(query, 600_000, HOUR_MS - 60_000, 60_000))


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k][0] == b[k][0]
        np.testing.assert_array_equal(a[k][1], b[k][1])


def _warm(world: World, share: float = 1.0) -> Warmup:
    warmup = Warmup(world.store, _configs(world), share=share, pause_s=0).start()
    assert warmup.finished.wait(60)
    return warmup


def test_a_full_warmup_decodes_every_stored_block_so_queries_decode_nothing(own, cold):
    pre, _ = own.engines()
    _warm(own)
    assert warmup_stats()["state"] == 2 and warmup_stats()["blocks"] > 0
    for table in _tables(own):
        assert set(table.blocks) == set(table.index)
    decoded = cache_stats()["decoded_records"]
    for q in QUERIES:
        _run(pre, q)
    assert cache_stats()["decoded_records"] == decoded


def test_warmup_decodes_the_newest_blocks_first_and_stops_at_its_share(own, cold):
    _warm(own)
    full = cache_stats()["bytes"]
    configure(1)
    configure(int(full))
    _warm(own, share=0.4)
    held = cache_stats()["bytes"]
    assert 0.4 * full <= held < full
    decoded, missing = [], []
    for table in _tables(own):
        for b in table.index:
            (decoded if b in table.blocks else missing).append(b * table.block_ms)
    assert missing, "a share below one must leave blocks undecoded"
    assert min(decoded) >= max(missing)


def test_answers_are_the_same_cold_warmed_and_with_a_one_byte_budget(own, cold):
    pre, _ = own.engines()
    cold_answers = {q: _run(pre, q) for q in QUERIES}
    configure(1)
    tiny = {q: _run(pre, q) for q in QUERIES}
    configure(BIG)
    _warm(own)
    warm = {q: _run(pre, q) for q in QUERIES}
    for q in QUERIES:
        _same(tiny[q], cold_answers[q])
        _same(warm[q], cold_answers[q])


def test_warmup_stops_after_the_block_it_is_decoding(own, cold):
    warmup = Warmup(own.store, _configs(own), share=1.0, pause_s=30).start()
    deadline = time.monotonic() + 30
    while warmup_stats()["blocks"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    warmup.stop()
    assert time.perf_counter() - t0 < 5
    assert not warmup.alive
    assert warmup_stats()["state"] == 3


def test_warmup_is_off_when_the_environment_says_so(monkeypatch):
    monkeypatch.setenv("TIDEMARK_SKETCH_WARMUP", "0")
    assert not sketch_warmup.enabled()
    monkeypatch.setenv("TIDEMARK_SKETCH_WARMUP", "1")
    assert sketch_warmup.enabled()


class _Scraper:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def scrape(self, series, t_ms: int, values: np.ndarray) -> None:
        n = len(series)
        self.storage.append(
            SampleBatch(list(series), np.arange(n), np.full(n, t_ms, np.int64), values)
        )


def test_the_server_warms_up_after_start_reports_it_and_stops_it_on_shutdown(cold):
    storage = Storage.in_memory(StorageOptions(background_maintenance=False))
    cfg = load_config(YAML)
    cfg = type(cfg)(cfg.aggregations, EngineOptions(backend="inline", flush_interval_ms=0))
    runtime = attach(storage, cfg, SketchStore())
    fill(_Scraper(storage), seed=5, end_ms=HOUR_MS // 2)  # type: ignore[arg-type]
    server = QueryServer(storage, QueryAPIConfig()).start()
    try:
        assert server.app is not None
        warmup = server.app[WARMUP]
        assert warmup.finished.wait(60)
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
        assert "tidemark_sketch_warmup_state 2" in text
        blocks = next(line for line in text.splitlines() if line.startswith("tidemark_sketch_warmup_blocks "))  # fmt: skip
        assert float(blocks.split()[1]) > 0
    finally:
        server.stop()
    assert not warmup.alive
    assert runtime.closed


def _hold(lock, release: threading.Event, held: threading.Event) -> threading.Thread:
    def run() -> None:
        with lock:
            held.set()
            release.wait(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


def test_a_busy_table_delays_neither_another_tables_query_nor_the_cache_stats(own, cold):
    kll, counter = (table_for(own.store, own.engine.configs[i]) for i in (3, 5))
    ends = np.arange(600_000, HOUR_MS, 60_000, dtype=np.int64)
    release, held = threading.Event(), threading.Event()
    holder = _hold(kll.lock, release, held)
    try:
        done = threading.Event()

        def query() -> None:
            with counter.lock:
                counter.select(own.store, ends)
            done.set()

        threading.Thread(target=query, daemon=True).start()
        assert done.wait(10), "a query on another aggregation waited for the busy table"
        assert cache_stats()["bytes"] > 0
    finally:
        release.set()
        holder.join(10)


def test_evicting_a_busy_tables_blocks_waits_until_that_table_is_free(own, cold):
    kll = table_for(own.store, own.engine.configs[3])
    ends = np.arange(600_000, HOUR_MS, 60_000, dtype=np.int64)
    with kll.lock:
        kll.select(own.store, ends)
    assert kll.footprint > 0
    release, held = threading.Event(), threading.Event()
    holder = _hold(kll.lock, release, held)
    evictions = cache_stats()["evictions"]
    t0 = time.perf_counter()
    configure(1)  # from a thread holding no table lock: kll's blocks must wait
    assert time.perf_counter() - t0 < 5, "configure waited for the busy table"
    assert kll.blocks, "a busy table's blocks are not dropped under its holder"
    release.set()
    holder.join(10)
    # The evictor retries once the table is free: no query on it is needed.
    assert sketch_cache.settle()
    assert cache_stats()["evictions"] > evictions
    assert not kll.blocks and kll.footprint == 0


def test_concurrent_queries_on_two_aggregations_complete_and_agree(own, cold):
    pre, _ = own.engines()
    want = {q: _run(pre, q) for q in QUERIES[:3]}
    configure(int(cache_stats()["bytes"] // 3))  # evictions across tables while querying
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(6):
                q = QUERIES[(offset + i) % 3]
                _same(_run(pre, q), want[q])
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a query thread hung"
    assert not errors, errors[0]


def test_queries_sent_while_the_warmup_runs_answer_as_without_it(own, cold):
    pre, _ = own.engines()
    want = {q: _run(pre, q) for q in QUERIES}
    configure(1)
    configure(BIG)
    warmup = Warmup(own.store, _configs(own), share=1.0, pause_s=0).start()
    got = {q: _run(pre, q) for q in QUERIES}
    assert warmup.finished.wait(60)
    for q in QUERIES:
        _same(got[q], want[q])
    for table in _tables(own):
        assert set(table.blocks) == set(table.index)


def test_the_warmup_starts_no_block_while_a_query_reads_a_table(own, cold):
    with sketch_cache.reading():
        warmup = Warmup(own.store, _configs(own), share=1.0, pause_s=0).start()
        time.sleep(0.3)
        assert warmup_stats()["blocks"] == 0 and warmup.alive
    assert warmup.finished.wait(60)
    assert warmup_stats()["state"] == 2 and warmup_stats()["blocks"] > 0
