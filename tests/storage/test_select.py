"""Append and select semantics of the store (head only, in memory and on disk)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from promql.errors import BadDataError
from storage.db import Storage, StorageOptions
from storage.model import STALE_NAN, STALE_NAN_BITS, MetricMetadata, SampleBatch, is_stale
from tests.storage.helpers import as_dict, batch, eq, everything, lab

A = lab("m", i="a")
B = lab("m", i="b")


@pytest.fixture(params=["memory", "disk"])
def db(request, tmp_path):
    store = Storage.in_memory() if request.param == "memory" else Storage.open(tmp_path)
    yield store
    store.close()


def test_duplicate_timestamp_keeps_last_written_value(db):
    db.append(batch([(A, 10, 1.0), (A, 10, 2.0)]))
    db.append(batch([(A, 20, 5.0)]))
    db.append(batch([(A, 10, 3.0)]))
    s = db.select([eq("i", "a")], 0, 100)
    assert s.timestamps.tolist() == [10, 20]
    assert s.values.tolist() == [3.0, 5.0]


def test_out_of_order_samples_are_visible_in_time_order(db):
    db.append(batch([(A, 30, 3.0), (B, 5, 0.5)]))
    db.append(batch([(A, 10, 1.0), (A, 20, 2.0)]))
    s = db.select([eq("__name__", "m")], 0, 100)
    assert s.labels == [A, B]
    assert s.offsets.tolist() == [0, 3, 4]
    assert s.timestamps.tolist() == [10, 20, 30, 5]
    assert s.values.tolist() == [1.0, 2.0, 3.0, 0.5]


def test_select_bounds_are_inclusive_and_drop_series_without_samples(db):
    db.append(batch([(A, 10, 1.0), (A, 20, 2.0), (A, 30, 3.0), (B, 50, 1.0)]))
    s = db.select([eq("__name__", "m")], 10, 20)
    assert s.labels == [A]
    assert s.timestamps.tolist() == [10, 20]
    assert s.series_ids.dtype == np.int64 and s.offsets.dtype == np.int64


def test_stale_marker_is_kept_bit_exact_and_distinct_from_plain_nan(db):
    db.append(batch([(A, 10, float("nan")), (A, 20, STALE_NAN)]))
    s = db.select([eq("i", "a")], 0, 100)
    assert is_stale(s.values).tolist() == [False, True]
    assert int(s.values.view(np.uint64)[1]) == STALE_NAN_BITS


def test_many_appends_across_frozen_segments_select_like_one_batch(tmp_path):
    db = Storage.open(tmp_path, StorageOptions(head_freeze_samples=64))
    rng = np.random.default_rng(7)
    rows = [
        (lab("m", i=str(k % 17)), int(t), float(t))
        for k, t in enumerate(rng.integers(0, 500, 3000))
    ]
    for lo in range(0, len(rows), 37):
        db.append(batch(rows[lo : lo + 37]))
    ref = Storage.in_memory()
    ref.append(batch(rows))
    assert len(db.stats()) and db.stats()["head_segments"] >= 2
    assert as_dict(everything(db)) == as_dict(everything(ref))


def test_invalid_batch_stores_nothing(db):
    good = lab("m", i="ok")
    bad = SampleBatch(
        series=[good, (("i", "x"),)],
        sample_series=np.array([0, 1]),
        timestamps=np.array([1, 2]),
        values=np.array([1.0, 2.0]),
    )
    with pytest.raises(BadDataError, match="metric name"):
        db.append(bad)
    assert db.series([[eq("__name__", "m")]]) == []
    assert db.stats()["series"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_series": np.array([0, 3])},
        {"timestamps": np.array([1.0, np.nan])},
        {"timestamps": np.array([1, 2, 3])},
        {"values": np.array(["x", "y"])},
    ],
)
def test_malformed_arrays_are_bad_data(db, kwargs):
    fields = {
        "series": [A],
        "sample_series": np.array([0, 0]),
        "timestamps": np.array([1, 2]),
        "values": np.array([1.0, 2.0]),
    }
    fields.update(kwargs)
    with pytest.raises(BadDataError):
        db.append(SampleBatch(**fields))
    assert everything(db).labels == []


def test_listeners_receive_durable_batches_with_store_ids(db):
    got = []
    db.add_listener(got.append)
    durable = db.append(batch([(A, 1, 1.0), (B, 1, 2.0), (A, 2, 3.0)]))
    db.remove_listener(got.append)
    db.append(batch([(A, 3, 1.0)]))
    assert got == [durable]
    assert durable.sample_series_ids.tolist() == [
        durable.series_ids[0],
        durable.series_ids[1],
        durable.series_ids[0],
    ]
    s = db.select([eq("i", "b")], 0, 10)
    assert s.series_ids.tolist() == [durable.series_ids[1]]


def test_series_labels_and_values_respect_matchers_and_time(db):
    db.append(batch([(A, 10, 1.0), (B, 100, 1.0), (lab("up", job="x"), 100, 1.0)]))
    assert db.series([[eq("__name__", "m")]]) == [A, B]
    assert db.series([[eq("__name__", "m")]], 0, 50) == [A]
    assert db.series([[eq("i", "a")], [eq("job", "x")]]) == [A, lab("up", job="x")]
    assert db.series([[eq("__name__", "m")]], limit=1) == [A]
    assert db.label_names() == ["__name__", "i", "job"]
    assert db.label_names([[eq("__name__", "up")]]) == ["__name__", "job"]
    assert db.label_values("i") == ["a", "b"]
    assert db.label_values("i", None, 50, 200) == ["b"]
    assert db.label_values("__name__", [[eq("i", "a")]]) == ["m"]


def test_metadata_is_kept_per_metric_family(db):
    meta = [MetricMetadata("m", "counter", "Help.", "seconds"), MetricMetadata("up", "gauge")]
    db.append(batch([(A, 1, 1.0)], metadata=meta))
    db.append(batch([(A, 2, 1.0)], metadata=[MetricMetadata("m", "counter", "Help.", "seconds")]))
    assert db.metadata() == {"m": [meta[0]], "up": [meta[1]]}
    assert db.metadata("up") == {"up": [meta[1]]}
    assert db.metadata(limit=1) == {"m": [meta[0]]}


def test_concurrent_appenders_with_fsync_lose_nothing(tmp_path):
    db = Storage.open(tmp_path, StorageOptions(fsync=True))

    def writer(w: int) -> None:
        for t in range(50):
            db.append(batch([(lab("m", w=str(w)), t, float(t))]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    before = as_dict(everything(db))
    db.close()
    reopened = Storage.open(tmp_path)
    assert as_dict(everything(reopened)) == before
    assert sum(len(v) for v in before.values()) == 200


def test_a_failing_listener_does_not_fail_the_durable_append(db, caplog):
    def broken(_batch):
        raise RuntimeError("listener bug")

    seen = []
    db.add_listener(broken)
    db.add_listener(seen.append)
    db.append(batch([(A, 1, 1.0)]))
    assert len(seen) == 1
    assert "listener bug" in caplog.text
    assert db.select([eq("i", "a")], 0, 10).timestamps.tolist() == [1]


def test_group_commit_shares_one_fsync_among_waiting_appenders(tmp_path, monkeypatch):
    import os
    import time

    import storage.wal as wal_module

    real_fsync = os.fsync

    def slow_fsync(fd):  # a disk with 20 ms flushes: appenders pile up behind each one
        time.sleep(0.02)
        real_fsync(fd)

    monkeypatch.setattr(wal_module.os, "fsync", slow_fsync)
    db = Storage.open(tmp_path, StorageOptions(fsync=True))

    def writer(w: int) -> None:
        for t in range(25):
            db.append(batch([(lab("m", w=str(w)), t, float(t))]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    fsyncs = db.stats()["wal_fsyncs"]
    assert 0 < fsyncs < 100 * 0.75, fsyncs
    assert everything(db).timestamps.shape[0] == 100
