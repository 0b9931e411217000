"""The router's one-pass sample selection (``precompute/router.py``): per aggregation, only the
samples of matching series, stale markers dropped except for newest-sample types, arrays that
do not alias the batch, sub-key ids that follow their samples."""

from __future__ import annotations

import numpy as np

from precompute.config import load_config
from precompute.router import Router
from storage.model import STALE_NAN, DurableBatch, SampleBatch, make_labels


def _router(agg_type: str, aggregated: str, workers: int = 1) -> Router:
    config = load_config(
        f"""
aggregations:
  - {{aggregationId: 1, aggregationType: {agg_type}, parameters: {{}},
     labels: {{grouping: [job], aggregated: {aggregated}}}, metric: m,
     windowSize: 60, slideInterval: 10, windowType: sliding}}
"""
    )
    return Router(config.aggregations, workers)


def _batch() -> DurableBatch:
    """Six samples of four series (one of another metric), one stale marker."""
    series = [
        make_labels({"__name__": "m", "job": "a", "instance": "x"}),
        make_labels({"__name__": "other", "job": "a", "instance": "x"}),
        make_labels({"__name__": "m", "job": "b", "instance": "y"}),
        make_labels({"__name__": "m", "job": "a", "instance": "z"}),
    ]
    sample_series = np.array([0, 1, 2, 3, 0, 2], dtype=np.int64)
    ts = np.array([10, 11, 12, 13, 14, 15], dtype=np.int64)
    vals = np.array([1.0, 2.0, STALE_NAN, 4.0, np.nan, 6.0])
    store_ids = np.arange(4, dtype=np.int64)
    return DurableBatch(SampleBatch(series, sample_series, ts, vals), store_ids, sample_series)


def test_route_keeps_matching_samples_and_drops_stale_markers() -> None:
    batch = _batch()
    (item,) = _router("Sum", "[]").route(batch)[0]
    np.testing.assert_array_equal(item.timestamps, [10, 13, 14, 15])
    np.testing.assert_array_equal(item.values, [1.0, 4.0, np.nan, 6.0])  # a plain NaN stays
    assert [item.new_group_keys[g] for g in item.group_ids] == [("a",), ("a",), ("a",), ("b",)]
    assert item.sub_ids is None
    assert not np.shares_memory(item.values, batch.batch.values)
    assert not np.shares_memory(item.timestamps, batch.batch.timestamps)


def test_route_keeps_stale_markers_for_newest_sample_types_with_their_sub_keys() -> None:
    (item,) = _router("MultipleLast", "[instance]").route(_batch())[0]
    np.testing.assert_array_equal(item.timestamps, [10, 12, 13, 14, 15])
    assert item.values[1].view(np.uint64) == np.float64(STALE_NAN).view(np.uint64)
    subs = [item.new_sub_keys[s] for s in item.sub_ids]
    assert subs == [("x",), ("y",), ("z",), ("x",), ("y",)]


def test_route_splits_matching_samples_over_workers_without_losing_any() -> None:
    per_worker = _router("Sum", "[]", workers=2).route(_batch())
    got = sorted(t for items in per_worker for item in items for t in item.timestamps.tolist())
    assert got == [10, 13, 14, 15]


def test_a_batch_without_matching_series_routes_nothing() -> None:
    series = [_batch().batch.series[1]]  # metric "other"
    sample_series = np.zeros(2, dtype=np.int64)
    ts, vals = np.array([1, 2], np.int64), np.array([1.0, 2.0])
    other = DurableBatch(
        SampleBatch(series, sample_series, ts, vals),
        np.array([1], np.int64),
        np.array([1, 1], np.int64),
    )
    assert _router("Sum", "[]").route(other) == [[]]
