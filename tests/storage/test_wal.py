"""WAL replay, torn tails, corruption and checkpoints."""

from __future__ import annotations

import logging

import numpy as np

from storage.db import Storage, StorageOptions
from storage.model import STALE_NAN, STALE_NAN_BITS, MetricMetadata
from tests.storage.helpers import as_dict, batch, eq, everything, lab

A = lab("m", i="a")
B = lab("m", i="b")


def segments(path):
    return sorted(p for p in (path / "wal").iterdir() if p.name.isdigit())


def test_reopen_replays_samples_metadata_and_stale_markers_bit_exact(tmp_path):
    db = Storage.open(tmp_path)
    db.append(batch([(A, 1, STALE_NAN), (B, 2, 2.5)], [MetricMetadata("m", "gauge", "h")]))
    db.append(batch([(A, 1, 7.0), (A, 3, float("nan"))]))
    before = as_dict(everything(db))
    db.close()
    again = Storage.open(tmp_path)
    assert as_dict(everything(again)) == before
    assert again.metadata() == {"m": [MetricMetadata("m", "gauge", "h")]}
    s = again.select([eq("i", "a")], 0, 10)
    assert s.values[0] == 7.0  # the later duplicate still wins after replay


def test_torn_tail_is_truncated_and_logged(tmp_path, caplog):
    db = Storage.open(tmp_path)
    db.append(batch([(A, 1, 1.0)]))
    db.append(batch([(A, 2, 2.0)]))
    db.close()
    seg = segments(tmp_path)[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 5])  # half of the last record reached the disk
    with caplog.at_level(logging.WARNING):
        again = Storage.open(tmp_path)
    assert "truncating" in caplog.text
    assert everything(again).timestamps.tolist() == [1]
    assert again.stats()["wal_truncated_bytes"] > 0
    # The repaired WAL accepts new writes and replays cleanly again.
    again.append(batch([(A, 5, 5.0)]))
    again.close()
    assert everything(Storage.open(tmp_path)).timestamps.tolist() == [1, 5]


def test_garbage_after_the_last_record_is_ignored(tmp_path):
    db = Storage.open(tmp_path)
    db.append(batch([(A, 1, 1.0)]))
    db.close()
    seg = segments(tmp_path)[-1]
    with open(seg, "ab") as f:
        f.write(b"\xff" * 3 + b"garbage that is not a frame" * 10)
    assert everything(Storage.open(tmp_path)).timestamps.tolist() == [1]


def test_corrupt_record_drops_it_and_everything_after_it(tmp_path):
    db = Storage.open(tmp_path, StorageOptions(wal_segment_bytes=1))  # one record per segment
    for t in range(4):
        db.append(batch([(A, t, float(t))]))
    db.close()
    segs = segments(tmp_path)
    assert len(segs) == 4
    victim = segs[1]  # holds the sample at t=1
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the payload: the CRC no longer matches
    victim.write_bytes(bytes(data))
    assert everything(Storage.open(tmp_path)).timestamps.tolist() == [0]
    assert not segs[2].exists() and not segs[3].exists()


def test_flush_checkpoints_and_deletes_old_segments(tmp_path):
    db = Storage.open(tmp_path, StorageOptions(wal_segment_bytes=1))
    for t in range(10):
        db.append(batch([(A, t, float(t)), (B, t, STALE_NAN)]))
    before = as_dict(everything(db))
    assert len(segments(tmp_path)) >= 10
    db.flush()
    db.append(batch([(A, 100, 1.0)]))
    db.close()
    assert len(segments(tmp_path)) <= 3
    assert any(p.name.startswith("checkpoint.") for p in (tmp_path / "wal").iterdir())
    again = Storage.open(tmp_path)
    after = as_dict(everything(again))
    before[A] = [*before[A], (100, np.float64(1.0).view(np.uint64).item())]
    assert after == before
    bits = everything(again).values.view(np.uint64)
    assert (bits == STALE_NAN_BITS).sum() == 10


def test_series_ids_can_change_across_restarts_without_mixing_series(tmp_path):
    db = Storage.open(tmp_path)
    db.append(batch([(A, 1, 1.0)]))
    db.close()
    db = Storage.open(tmp_path)
    db.append(batch([(B, 2, 2.0), (A, 3, 3.0)]))
    db.close()
    db = Storage.open(tmp_path)
    db.append(batch([(lab("z"), 4, 4.0), (B, 5, 5.0)]))
    db.close()
    got = as_dict(everything(Storage.open(tmp_path)))
    assert {k: [t for t, _ in v] for k, v in got.items()} == {A: [1, 3], B: [2, 5], lab("z"): [4]}


def test_a_failed_wal_write_is_cut_off_so_later_records_survive_replay(tmp_path, monkeypatch):
    import os

    import pytest

    import storage.wal as wal_module

    db = Storage.open(tmp_path)
    db.append(batch([(A, 1, 1.0)]))
    real_write = os.write

    def half_then_disk_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wal_module.os, "write", half_then_disk_full)
    with pytest.raises(OSError):
        db.append(batch([(A, 2, 2.0)]))
    monkeypatch.setattr(wal_module.os, "write", real_write)
    db.append(batch([(A, 3, 3.0)]))
    db.close()
    again = Storage.open(tmp_path)
    assert everything(again).timestamps.tolist() == [1, 3]
    assert again.stats()["wal_truncated_bytes"] == 0
