"""Columnar window emits: a WindowBatch stands for one entry per group, in the store and on disk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from precompute.accumulators.increase import IncreaseAccumulator
from precompute.accumulators.scalar import SumAccumulator
from precompute.window_batch import WindowBatch, expand
from storage.sketch_store import SketchEntry, SketchStore
from tests.precompute.helpers import Harness, agg_yaml


def sum_batch(end: int, keys: list[tuple[str, ...]], sums: list[float]) -> WindowBatch:
    n = len(keys)
    cols = {
        "sum": np.array(sums, dtype=np.float64),
        "count": np.ones(n, np.int64),
        "min": np.array(sums, dtype=np.float64),
        "max": np.array(sums, dtype=np.float64),
    }
    return WindowBatch(1, "Sum", end - 10, end, keys, cols)


def single(key, start, end, value) -> SketchEntry:
    return SketchEntry(1, key, start, end, SumAccumulator.with_sum(value).to_bytes())


def test_per_series_windows_leave_the_worker_as_one_batch_per_close_event():
    h = Harness(agg_yaml("Sum", window=10, grouping=["instance"]))
    samples = [({"__name__": "m", "instance": f"h{i}"}, 5_000, float(i)) for i in range(50)]
    h.send(samples)
    out = h.worker.process(
        h.router.route(h.ids.batch([(s[0], 15_000, 0.0) for s in samples]))[0][0]
    )
    (batch,) = out
    assert isinstance(batch, WindowBatch) and len(batch) == 50
    assert (batch.window_start, batch.window_end) == (0, 10_000)
    got = {o.key: acc.stats()["sum"] for o, acc in expand(out)}
    assert got == {(f"h{i}",): float(i) for i in range(50)}
    assert h.worker.status()[1]["windows_emitted"] == 50


def test_store_entries_from_batches_equal_per_entry_appends_in_order_and_bytes():
    batched, plain = SketchStore(), SketchStore()
    b1 = sum_batch(10, [("a",), ("b",)], [1.0, 2.0])
    late = single(("a",), 0, 10, 5.0)
    b2 = sum_batch(20, [("b",)], [3.0])
    batched.append_outputs([b1])
    batched.append([late])
    batched.append_outputs([b2])
    for o, acc in expand([b1]):
        plain.append([SketchEntry(1, o.key, o.window_start, o.window_end, acc.to_bytes())])
    plain.append([late])
    for o, acc in expand([b2]):
        plain.append([SketchEntry(1, o.key, o.window_start, o.window_end, acc.to_bytes())])
    assert batched.log_view(1) == plain.log_view(1)
    assert batched.entries(1) == plain.entries(1)
    assert batched.windows(1, 0, 10) == plain.windows(1, 0, 10)
    assert batched.stats()["sketch_entries"] == 4.0


def test_log_view_keeps_entry_identity_across_reads_and_appends():
    store = SketchStore()
    store.append_outputs([sum_batch(10, [("a",), ("b",)], [1.0, 2.0])])
    first = store.log_view(1)
    store.append_outputs([sum_batch(20, [("a",)], [3.0])])
    second = store.log_view(1)
    assert len(second) == 3
    assert all(x is y for x, y in zip(first, second[:2], strict=False))


def test_window_batches_reads_columns_and_single_entries_in_range():
    store = SketchStore()
    store.append_outputs([sum_batch(10, [("a",)], [1.0]), sum_batch(20, [("a",)], [2.0])])
    store.append([single(("a",), 10, 20, 9.0)])
    batches, singles = store.window_batches(1, 10, 20)
    assert [b.columns["sum"].tolist() for b in batches] == [[2.0]]
    assert [s.window_end for s in singles] == [20]


def test_batches_survive_log_replay_and_compaction_and_retention(tmp_path):
    store = SketchStore(tmp_path, retention_ms=15, compact_every=1_000)
    store.append_outputs([sum_batch(10, [("a",), ("b",)], [1.0, 2.0])])
    store.append([single(("a",), 0, 10, 5.0)])
    store.append_outputs([sum_batch(20, [("a",)], [math.nan])])
    expected = [(e.key, e.window_end, e.data) for e in store.log_view(1)]
    store.close()
    replayed = SketchStore(tmp_path, retention_ms=15)
    assert [(e.key, e.window_end, e.data) for e in replayed.log_view(1)] == expected
    replayed.compact(now_ms=1_000)  # retention keeps nothing that ended before 985
    assert replayed.log_view(1) == [] and replayed.stats()["sketch_entries"] == 0.0
    replayed.close()
    kept = SketchStore(tmp_path, retention_ms=15)
    kept.append_outputs([sum_batch(30, [("c",)], [4.0])])
    kept.compact(now_ms=40)  # drops nothing: ends at 30 ≥ 25
    kept.close()
    reopened = SketchStore(tmp_path)
    assert [(e.key, e.accumulator().stats()["sum"]) for e in reopened.entries(1)] == [(("c",), 4.0)]


def test_increase_batches_round_trip_their_counter_state(tmp_path):
    acc = IncreaseAccumulator(100)
    acc.update(np.array([1.0, 5.0, 2.0]), np.array([1_000, 2_000, 3_000]))
    h = Harness(agg_yaml("Increase", window=10, grouping=["instance"]))
    series = {"__name__": "m", "instance": "x"}
    h.send([(series, 1_000, 1.0), (series, 2_000, 5.0), (series, 3_000, 2.0)])
    out = h.worker.process(h.router.route(h.ids.batch([(series, 25_000, 9.0)]))[0][0])
    (batch,) = out
    store = SketchStore(tmp_path)
    store.append_outputs(out)
    store.close()
    (entry,) = SketchStore(tmp_path).entries(1)
    restored = entry.accumulator()
    assert restored.extrapolated(0, 10_000, False) == acc.extrapolated(0, 10_000, False)
    assert entry.data == batch.pairs()[0][1].to_bytes()


@pytest.mark.parametrize("per_pane", [400, 3000])  # sparse panes (gaps), dense (most full)
def test_ordered_pane_merge_equals_folding_merge_rows_pane_by_pane(per_pane):
    from precompute.accumulators.increase import _COLS, CounterColumns, fold_sorted, merge_rows
    from precompute.columnar import merge_ordered

    rng = np.random.default_rng(7)
    n_rows, n_panes = 200, 6
    parts = []
    for p in range(n_panes):
        cols = CounterColumns.zeros(n_rows)
        k = rng.integers(0, per_pane)
        kid = rng.integers(0, n_rows, k)
        # Pane p covers (p·10, (p+1)·10]; a sample may sit on the boundary of the next pane.
        t = p * 10 + rng.integers(0, 11, k)
        v = rng.choice([0.0, 1.0, 5.0, 9.0], k)  # drops are counter resets
        fold_sorted(cols, kid, t, v)
        parts.append(cols)
    rows = rng.permutation(n_rows)[:150]
    expected = CounterColumns.zeros(rows.shape[0])
    local = np.arange(rows.shape[0])
    for part in parts:
        merge_rows(expected, local, CounterColumns(*(getattr(part, c)[rows] for c in _COLS)))
    got = merge_ordered(parts, rows)
    has = expected.n > 0
    assert np.array_equal(got.n > 0, has)
    for c in _COLS:
        assert np.array_equal(getattr(got, c)[has], getattr(expected, c)[has]), c


def test_counter_fold_fast_path_for_single_sample_keys_equals_the_sorting_fold():
    from precompute.accumulators.increase import _COLS, CounterColumns, _fold_general, fold_sorted

    rng = np.random.default_rng(3)
    fast, slow = CounterColumns.zeros(300), CounterColumns.zeros(300)
    for step in range(8):
        k = int(rng.integers(50, 400))
        kid = rng.integers(0, 300, k)  # some keys once, some several times, some absent
        t = step * 100 + rng.integers(-30, 100, k)  # a few older than the folded state
        v = rng.choice([0.0, 2.0, 7.0, 7.5], k)
        assert fold_sorted(fast, kid, t, v) == _fold_general(slow, kid, t, v)
    for c in _COLS:
        assert np.array_equal(getattr(fast, c), getattr(slow, c)), c


def test_counter_merge_over_a_shared_key_table_equals_the_gathering_merge():
    from precompute.accumulators.increase import _COLS, CounterColumns, fold_sorted, merge_rows

    rng = np.random.default_rng(11)
    n = 120

    def pane(p: int) -> CounterColumns:
        cols = CounterColumns.zeros(n)
        k = int(rng.integers(20, 200))
        fold_sorted(cols, rng.integers(0, n, k), p * 10 + rng.integers(0, 11, k),
                    rng.choice([0.0, 3.0, 8.0], k))  # fmt: skip
        return cols

    dense, shifted = CounterColumns.zeros(n), CounterColumns.zeros(n + 1)
    for p in range(5):
        src = pane(p)
        merge_rows(dense, np.arange(n), src)  # prefix views
        merge_rows(shifted, np.arange(1, n + 1), src)  # gathers
    for c in _COLS:
        assert np.array_equal(getattr(dense, c), getattr(shifted, c)[1:]), c


def test_batches_naming_keys_by_row_persist_them_once_in_a_key_table(tmp_path):
    from precompute.window_batch import KeyRows

    def rows_batch(table, end, rows):
        rows = np.array(rows, dtype=np.int64)
        plain = sum_batch(end, [table[r] for r in rows.tolist()], [float(r) for r in rows])
        return WindowBatch(1, "Sum", end - 10, end, KeyRows(table, rows), plain.columns)

    worker_table = [("a",), ("b",), ("c",)]
    store = SketchStore(tmp_path, compact_every=1_000)
    store.append_outputs([rows_batch(worker_table, 10, [0, 2]), rows_batch(worker_table, 20, [1])])
    worker_table.append(("d",))  # the worker learns a key later
    store.append_outputs([rows_batch(worker_table, 30, [3, 0])])
    expected = [(e.key, e.window_end, e.data) for e in store.log_view(1)]
    store.close()

    def seen(s: SketchStore) -> list:
        return [(e.key, e.window_end, e.data) for e in s.log_view(1)]

    replayed = SketchStore(tmp_path, compact_every=1_000)
    assert seen(replayed) == expected
    # A restarted worker's fresh table, in another order: the store's ids stay put.
    restarted = [("d",), ("e",), ("a",)]
    replayed.append_outputs([rows_batch(restarted, 40, [1, 2, 0])])
    expected = seen(replayed)
    assert [k for k, end, _ in expected if end == 40] == [("e",), ("a",), ("d",)]
    replayed.compact()
    replayed.close()
    compacted = SketchStore(tmp_path)
    assert seen(compacted) == expected
    compacted.close()


def test_chunk_mark_reads_the_count_and_the_records_a_reader_checks_without_a_copy():
    store = SketchStore(retention_ms=15)
    store.append_outputs([sum_batch(10, [("a",)], [1.0]), sum_batch(20, [("a",)], [2.0])])
    view = store.chunk_view(1)
    n, first, last = store.chunk_mark(1, 2)
    assert n == 2 and first is view[0] and last is view[1]
    store.append_outputs([sum_batch(30, [("a",)], [3.0])])
    n, first, last = store.chunk_mark(1, 2)
    assert n == 3 and first is view[0] and last is view[1]
    store.apply_retention(now_ms=35)  # drops the window ending at 10: the log is rebuilt
    n, first, last = store.chunk_mark(1, 2)
    assert n == 2 and first is view[1] and last is not view[1]
    assert store.chunk_mark(7, 0) == (0, None, None)
