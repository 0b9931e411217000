"""``storage.append_log``: the earliest timestamp written since a mark, as the storage keeps it."""

from __future__ import annotations

import numpy as np
import pytest

from storage.append_log import EVERYTHING, NOTHING, AppendLog
from storage.db import Storage, StorageOptions
from tests.storage.helpers import batch, lab

BD = 1000
A = lab("m", i="a")
B = lab("m", i="b")


FULL = AppendLog.KEPT


@pytest.mark.parametrize("kept", [FULL, 8])
def test_the_earliest_since_any_mark_is_the_true_one_or_earlier(monkeypatch, kept):
    """Against a full history: exact while nothing was merged; merged (a small ``KEPT``) it may
    only be earlier, never later, and it is exact for marks at most 4 writes old."""
    monkeypatch.setattr(AppendLog, "KEPT", kept)
    rng = np.random.default_rng(3)
    log, history = AppendLog(), []
    for _ in range(300):
        # Mostly rising timestamps (live ingest) with late and far-back writes among them.
        ts = int(rng.integers(-50, 10)) + len(history) * 5
        if rng.random() < 0.05:
            ts = int(rng.integers(-1000, 0))
        log.wrote(ts)
        history.append(ts)
        for mark in range(len(history) + 1):
            want = min(history[mark:], default=NOTHING)
            got = log.earliest_since(mark)
            assert got <= want
            if kept == FULL or len(history) - mark <= 4:
                assert got == want, (mark, len(history))
    assert len(log) <= kept


def test_a_mark_taken_now_sees_nothing_until_the_next_write():
    log = AppendLog()
    log.wrote(100)
    mark = log.mark()
    assert log.earliest_since(mark) == NOTHING
    log.wrote(500)
    log.wrote(300)
    assert log.earliest_since(mark) == 300
    log.wrote(EVERYTHING)
    assert log.earliest_since(mark) == EVERYTHING


def test_storage_notes_each_appended_batch_by_its_earliest_sample():
    db = Storage.in_memory(StorageOptions(background_maintenance=False))
    mark = db.appends.mark()
    db.append(batch([(A, 2000, 1.0), (B, 1500, 2.0)]))
    assert db.appends.earliest_since(mark) == 1500
    after = db.appends.mark()
    db.append(batch([], metadata=None))  # nothing written: nothing noted
    assert db.appends.earliest_since(after) == NOTHING


def test_retention_deleting_blocks_voids_every_mark(tmp_path):
    db = Storage.open(
        tmp_path,
        StorageOptions(
            block_duration_ms=BD, late_cut_interval_s=0.0, background_maintenance=False,
            compaction_levels=1, retention_ms=2 * BD,
        ),
    )  # fmt: skip
    for t in range(0, 3000, 100):
        db.append(batch([(A, t, float(t))]))
    mark = db.appends.mark()
    deleted = db.stats()["blocks_deleted"]
    for t in range(3000, 8000, 100):
        db.append(batch([(A, t, float(t))]))
    assert db.stats()["blocks_deleted"] > deleted
    assert db.appends.earliest_since(mark) == EVERYTHING
    db.close()


def test_a_read_mark_holds_until_a_write_at_or_before_what_was_read():
    log, other = AppendLog(), AppendLog()
    read = log.before_read(1_000)
    log.wrote(1_001)  # newer than anything read
    assert read.holds(log) and not read.holds(other)
    log.wrote(1_000)
    assert not read.holds(log)
