"""Sketch store: append-only entries per window, persistence, torn tails, retention."""

from __future__ import annotations

import numpy as np

from precompute.accumulators.scalar import SumAccumulator
from storage.sketch_store import RawBatch, SketchEntry, SketchStore


def entry(agg, key, start, end, value):
    return SketchEntry(agg, key, start, end, SumAccumulator.with_sum(value).to_bytes())


def test_several_entries_for_one_window_are_all_kept_for_query_time_merging():
    store = SketchStore()
    store.append([entry(1, ("a",), 0, 10, 1.0), entry(1, ("a",), 0, 10, 2.0)])
    (group,) = store.windows(1).values()
    assert sorted(e.accumulator().stats()["sum"] for e in group) == [1.0, 2.0]


def test_entries_are_selected_by_aggregation_and_contained_time_range():
    store = SketchStore()
    store.append([entry(1, (), s, s + 10, 1.0) for s in range(0, 100, 10)])
    store.append([entry(2, (), 0, 10, 1.0)])
    assert [(e.window_start, e.window_end) for e in store.entries(1, 20, 50)] == [
        (20, 30),
        (30, 40),
        (40, 50),
    ]


def test_reopen_replays_log_and_snapshot_and_truncates_a_torn_tail(tmp_path):
    store = SketchStore(tmp_path, compact_every=3)
    store.append([entry(1, ("x",), s, s + 10, float(s)) for s in range(0, 50, 10)])  # compacts
    store.append([entry(1, ("x",), 50, 60, 50.0)])
    store.append_raw(
        RawBatch(7, [(("__name__", "m"),)], np.zeros(2, np.int64), np.array([1, 2]), np.ones(2))
    )
    store.close()
    logs = sorted(tmp_path.glob("sketches.*.log"))
    with open(logs[-1], "ab") as fh:
        fh.write(b"\x40\x00\x00\x00garbage")  # a crash mid-write
    reopened = SketchStore(tmp_path)
    assert [e.window_end for e in reopened.entries(1)] == [10, 20, 30, 40, 50, 60]
    assert reopened.raw(7)[0].timestamps.tolist() == [1, 2]
    reopened.append([entry(1, ("x",), 60, 70, 1.0)])
    reopened.close()
    assert len(SketchStore(tmp_path).entries(1)) == 7


def test_retention_drops_old_windows_at_compaction(tmp_path):
    store = SketchStore(tmp_path, retention_ms=100)
    store.append([entry(1, (), s, s + 10, 1.0) for s in range(0, 300, 10)])
    store.compact(now_ms=300)
    assert min(e.window_end for e in store.entries(1)) == 200
    store.close()
    assert min(e.window_end for e in SketchStore(tmp_path).entries(1)) == 200
