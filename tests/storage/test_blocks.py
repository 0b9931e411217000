"""Head cuts into blocks, compaction, retention, and reads across blocks and head."""

from __future__ import annotations

import numpy as np

from storage.block import Block, list_block_dirs
from storage.db import Storage, StorageOptions
from storage.model import STALE_NAN, STALE_NAN_BITS
from tests.storage.helpers import as_dict, batch, everything, lab

BD = 1000  # block duration in ms for these tests
A = lab("m", i="a")
B = lab("m", i="b")


def opts(**kw) -> StorageOptions:
    return StorageOptions(
        block_duration_ms=BD, late_cut_interval_s=0.0, background_maintenance=False, **kw
    )


def scrape(db: Storage, t0: int, t1: int, step: int = 100) -> None:
    for t in range(t0, t1, step):
        v = STALE_NAN if t % 700 == 0 else float(t)
        db.append(batch([(A, t, v), (B, t, -float(t))]))


def test_head_is_cut_into_aligned_blocks_and_reads_span_blocks_and_head(tmp_path):
    db = Storage.open(tmp_path, opts(compaction_levels=1))
    scrape(db, 0, 3000)
    stats = db.stats()
    assert stats["blocks"] >= 1
    assert stats["head_samples"] < 60
    for b in db._blocks:
        assert b.meta.mint // BD == b.meta.maxt // BD  # never straddles a window
    s = everything(db)
    assert s.timestamps[: s.offsets[1]].tolist() == list(range(0, 3000, 100))
    assert (s.values.view(np.uint64) == STALE_NAN_BITS).sum() == 5


def test_block_round_trips_every_bit_pattern(tmp_path):
    db = Storage.open(tmp_path, opts())
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**63, 500, dtype=np.int64).astype(np.uint64)
    bits[::7] = STALE_NAN_BITS
    bits[3] = 0x7FF8000000000001  # a NaN with payload
    values = bits.view(np.float64)
    rows = [(A, int(t), float(v)) for t, v in zip(range(500), values, strict=True)]
    b = batch(rows)
    db.append(type(b)(b.series, b.sample_series, b.timestamps, values))
    db.append(batch([(A, 5000, 1.0)]))  # pushes everything before 4000 into blocks
    assert db.stats()["blocks"] >= 1
    s = everything(db, 0, 499)
    assert s.values.view(np.uint64).tolist() == bits.tolist()


def test_late_samples_for_a_persisted_window_are_visible_and_win_duplicates(tmp_path):
    db = Storage.open(tmp_path, opts(compaction_levels=1))
    scrape(db, 0, 3000)
    assert db.stats()["blocks"] >= 2
    db.append(batch([(A, 150, 42.0), (A, 100, 43.0)]))  # late: new and duplicate timestamps
    s = everything(db, 100, 200)
    assert s.timestamps[: s.offsets[1]].tolist() == [100, 150, 200]
    assert s.values[: s.offsets[1]].tolist() == [43.0, 42.0, 200.0]
    # Force the late samples into a block: overlap compaction merges them, newest wins.
    scrape(db, 3000, 4500)
    assert db.stats()["compactions"] >= 1
    metas = [b.meta for b in db._blocks]
    assert all(a.maxt < b.mint or b.maxt < a.mint for a in metas for b in metas if a is not b), (
        "overlapping blocks remain after compaction"
    )
    s = everything(db, 100, 200)
    assert s.values[: s.offsets[1]].tolist() == [43.0, 42.0, 200.0]


def test_level_compaction_merges_complete_windows(tmp_path):
    db = Storage.open(tmp_path, opts(compaction_levels=3))
    scrape(db, 0, 12000)
    levels = sorted(b.meta.level for b in db._blocks)
    assert max(levels) >= 1
    assert db.stats()["compactions"] >= 1
    s = everything(db)
    assert s.timestamps[: s.offsets[1]].tolist() == list(range(0, 12000, 100))
    assert len(list_block_dirs(tmp_path / "blocks")) == len(db._blocks)


def test_retention_deletes_whole_old_blocks(tmp_path):
    db = Storage.open(tmp_path, opts(compaction_levels=1, retention_ms=2 * BD))
    scrape(db, 0, 8000)
    assert db.stats()["blocks_deleted"] >= 1
    s = everything(db)
    first = int(s.timestamps[0])
    assert first >= 8000 - 100 - 3 * BD
    assert s.timestamps[: s.offsets[1]].tolist() == list(range(first, 8000, 100))


def test_reopen_after_close_reads_the_same_data(tmp_path):
    db = Storage.open(tmp_path, opts())
    scrape(db, 0, 5500)
    db.append(batch([(A, 10, 1.5)]))  # a late one left in the head
    before = as_dict(everything(db))
    series_before = db.series([])
    db.close()
    again = Storage.open(tmp_path, opts())
    assert as_dict(everything(again)) == before
    assert again.series([]) == series_before
    assert again.label_values("i") == ["a", "b"]


def test_leftover_temp_block_from_a_crash_is_ignored_and_removed(tmp_path):
    db = Storage.open(tmp_path, opts())
    scrape(db, 0, 3000)
    db.close()
    junk = tmp_path / "blocks" / "0000009999.tmp"
    junk.mkdir()
    (junk / "chunks.arrow").write_bytes(b"half written")
    again = Storage.open(tmp_path, opts())
    assert not junk.exists()
    assert everything(again).timestamps.shape[0] == 60


def test_block_files_are_compact(tmp_path):
    db = Storage.open(tmp_path, opts(compaction_levels=1))
    series = [lab("m", i=str(k)) for k in range(500)]
    for t in range(0, 2600, 10):  # regular interval; counters and a constant gauge
        rows = [(s, t, float(t // 10 * (k % 7) if k % 2 else 1.0)) for k, s in enumerate(series)]
        db.append(batch(rows))
    block = Block(db._blocks[0].path)
    assert block.meta.n_samples == 500 * 100
    per_sample = block.disk_bytes() / block.meta.n_samples
    assert per_sample < 2.0


def test_cuts_trim_the_wal_without_rewriting_samples_and_replay_matches(tmp_path):
    db = Storage.open(tmp_path, opts(wal_segment_bytes=4096))
    scrape(db, 0, 20000)
    wal = tmp_path / "wal"
    segs = [p for p in wal.iterdir() if p.name.isdigit()]
    checkpoints = [p for p in wal.iterdir() if p.name.startswith("checkpoint.")]
    assert len(checkpoints) == 1
    assert checkpoints[0].stat().st_size < 1024  # definitions only, no samples
    # Only segments holding samples newer than the last cut remain.
    assert sum(p.stat().st_size for p in segs) < 40 * 200
    before = as_dict(everything(db))
    db._wal._fd = -1  # simulate a crash: no close, no flush
    db._dir_lock.release()  # the kernel drops a dead process's flock
    again = Storage.open(tmp_path, opts(wal_segment_bytes=4096))
    assert as_dict(everything(again)) == before


def test_overlapping_blocks_left_by_a_crash_mid_compaction_are_merged_on_open(tmp_path):
    import shutil

    db = Storage.open(tmp_path, opts(compaction_levels=1))
    scrape(db, 0, 3000)
    before = as_dict(everything(db))
    n_blocks = db.stats()["blocks"]
    db.close()
    src = list_block_dirs(tmp_path / "blocks")[0]
    shutil.copytree(src, tmp_path / "blocks" / "0000000999")  # the merged output, inputs kept
    meta = (tmp_path / "blocks" / "0000000999" / "meta.json").read_text()
    (tmp_path / "blocks" / "0000000999" / "meta.json").write_text(
        meta.replace(f'"seq":{int(src.name)}', '"seq":999')
    )
    again = Storage.open(tmp_path, opts(compaction_levels=1))
    assert again.stats()["blocks"] == n_blocks
    assert again.stats()["compactions"] >= 1
    assert as_dict(everything(again)) == before


def test_background_cuts_never_hide_acknowledged_samples_from_readers(tmp_path):
    import threading

    db = Storage.open(
        tmp_path,
        StorageOptions(block_duration_ms=BD, late_cut_interval_s=0.0, head_freeze_samples=64),
    )
    acked = {"a": -1, "b": -1}
    errors: list[str] = []
    done = threading.Event()

    def writer(name: str) -> None:
        for t in range(0, 12000, 10):
            db.append(batch([(lab("m", i=name), t, float(t))]))
            acked[name] = t
        done.set()

    def reader() -> None:
        while not done.is_set():
            floor = dict(acked)
            s = everything(db)
            seen = {dict(labels)["i"] for labels in s.labels}
            errors.extend(f"{n} vanished" for n, t in floor.items() if t >= 0 and n not in seen)
            for i, labels in enumerate(s.labels):
                _, ts, _ = s.series(i)
                want = floor[dict(labels)["i"]] // 10 + 1
                if ts.shape[0] < want or np.any(np.diff(ts) <= 0):
                    errors.append(f"{labels}: {ts.shape[0]} samples, expected >= {want}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in acked]
    threads.append(threading.Thread(target=reader))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    db.wait_for_maintenance()
    assert not errors, errors[:3]
    # Cuts really ran while readers read (compaction may since have merged their blocks).
    assert db.stats()["blocks_cut"] >= 2
    s = everything(db)
    assert s.timestamps.shape[0] == 2 * 1200
    db.close()
    assert as_dict(everything(Storage.open(tmp_path))) == as_dict(s)


def test_a_sample_from_the_far_future_does_not_trigger_retention_of_everything(tmp_path):
    import time

    now = int(time.time() * 1000) // BD * BD
    db = Storage.open(tmp_path, opts(compaction_levels=1, retention_ms=10 * BD))
    for t in range(now - 5000, now, 100):
        db.append(batch([(A, t, 1.0)]))
    db.append(batch([(B, now + 10**12, 1.0)]))  # decades ahead
    assert db.stats()["blocks_deleted"] == 0
    s = everything(db)
    assert s.series(0)[1].shape[0] == 50


def test_a_failing_cut_keeps_everything_in_the_head_and_leaves_no_block_behind(
    tmp_path, monkeypatch, caplog
):
    import storage.maintenance as maintenance

    real_write_block = maintenance.write_block
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write_block(*args, **kwargs)

    monkeypatch.setattr(maintenance, "write_block", fail_on_second)
    db = Storage.open(tmp_path, opts(compaction_levels=1))
    for t in range(0, 1500, 100):
        db.append(batch([(A, t, float(t))]))
    db.append(batch([(A, 2500, 1.0), (A, 3500, 2.0)]))  # a cut of two windows, the second fails
    assert "storage maintenance failed" in caplog.text
    assert db.stats()["blocks"] == 0
    assert list_block_dirs(tmp_path / "blocks") == []
    assert everything(db).timestamps.shape[0] == 17
    db._maint._failed_at = -float("inf")  # skip the retry pause
    db.append(batch([(A, 3600, 3.0)]))
    assert db.stats()["blocks"] >= 1
    assert everything(db).timestamps.shape[0] == 18
