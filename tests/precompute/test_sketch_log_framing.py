"""Sketch store log framing of window batches: pieces written with one ``writev`` (off the
worker's thread) give the same bytes as one framed record, and torn tails are still dropped.
Batch frames coded from the store's scratch buffer are checked by XXH64 (``test_batch_codec``)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

from precompute.window_batch import KeyRows, WindowBatch, columns_of
from storage import sketch_store
from storage.sketch_checksum import xxh64
from storage.sketch_store import _FRAME, _XXH_FRAME, SketchStore, _writev_all


def batch(table, rows, kind="Sum", start=0, seed=0):
    rng = np.random.default_rng(seed)
    names, dtypes = columns_of(kind)
    cols = {n: (rng.random(len(rows)) * 100).astype(d) for n, d in zip(names, dtypes, strict=True)}
    return WindowBatch(7, kind, start, start + 60, KeyRows(table, np.asarray(rows)), cols, 3)


def frames(path):
    data, out, offset = path.read_bytes(), [], 0
    while offset < len(data):
        word, check = _FRAME.unpack_from(data, offset)
        length = word & ~_XXH_FRAME  # the top bit says the check is XXH64's, not CRC-32
        payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
        out.append(((xxh64(payload) & 0xFFFF_FFFF) == check if word & _XXH_FRAME else
                    zlib.crc32(payload) == check, payload))  # fmt: skip
        offset += _FRAME.size + length
    return out


def test_buffers_concatenate_to_the_record_bytes_even_for_strided_and_narrow_columns():
    table = [(f"s{i}",) for i in range(50)]
    b = batch(table, range(0, 50, 2), kind="Increase")
    b.columns["last_v"] = np.arange(50, dtype=np.float32)[::2]  # strided, not float64
    ids = np.arange(25, dtype=np.int32)
    joined = b"".join(bytes(p) for p in b.to_buffers(ids))
    assert joined == b.to_bytes(ids)
    back = WindowBatch.from_bytes(joined, table)
    assert back.columns["last_v"].tolist() == list(range(0, 50, 2))
    assert list(back.keys) == table[:25]


@pytest.mark.parametrize(("fsync", "background"), [(False, False), (False, True), (True, False)])
def test_log_frames_hold_the_same_bytes_and_crc_as_a_single_framed_record(
    tmp_path, fsync, background
):
    table = [(f"s{i}",) for i in range(300)]
    store = SketchStore(tmp_path, fsync=fsync, compact_every=10**9, background_writes=background)
    store.append_outputs([batch(table, range(300), start=s, seed=s) for s in (0, 10, 20)])
    store.flush()
    reference = SketchStore(None)  # the former path: each record built as one bytes object
    expected = [
        p
        for s in (0, 10, 20)
        for p in reference._encode_chunk(batch(table, range(300), start=s, seed=s))
    ]
    got = frames(next(tmp_path.glob("sketches.*.log")))
    assert [p for _, p in got] == expected
    assert all(ok for ok, _ in got)
    store.close()


def test_a_torn_batch_tail_written_by_the_writer_thread_is_truncated_at_reopen(tmp_path):
    table = [(f"s{i}",) for i in range(1000)]
    store = SketchStore(tmp_path, compact_every=10**9, background_writes=True)
    batches = [batch(table, range(1000), start=s, seed=s) for s in range(0, 50, 10)]
    for b in batches:
        store.append_outputs([b])
    store.close()
    log = next(tmp_path.glob("sketches.*.log"))
    size = log.stat().st_size
    with open(log, "r+b") as fh:
        fh.truncate(size - 100)  # the last batch lost its last column's tail
    reopened = SketchStore(tmp_path, compact_every=10**9)
    got, _ = reopened.window_batches(7)
    assert [b.window_start for b in got] == [0, 10, 20, 30]
    for b, want in zip(got, batches, strict=False):
        assert list(b.keys) == list(want.keys)
        assert all(np.array_equal(b.columns[n], want.columns[n]) for n in want.columns)
    assert log.stat().st_size < size - 100
    reopened.close()


def test_writev_writes_more_pieces_than_iov_max_and_resumes_after_short_writes(
    tmp_path, monkeypatch
):
    real = os.writev
    # A disk that accepts at most 1000 bytes per call: every record spans several writes.
    monkeypatch.setattr(
        sketch_store.os, "writev", lambda fd, bufs: real(fd, [bytes(b"".join(bufs))[:1000]])
    )
    pieces = [bytes([i % 251]) * (i % 7) for i in range(3000)]
    fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    _writev_all(fd, pieces)
    os.close(fd)
    assert (tmp_path / "log").read_bytes() == b"".join(pieces)


def test_key_ids_in_one_run_are_written_as_two_numbers_and_other_ids_as_a_column():
    table = [(f"s{i}",) for i in range(100)]
    b = batch(table, range(60))
    run, scattered = np.arange(40, 100), np.array([3, 5, 4, *range(6, 63)])
    short, full = b.to_bytes(run), b.to_bytes(scattered)
    assert (short[0], full[0]) == (5, 6)  # format byte: 5 = id run, 6 = coded id column
    assert len(full) - len(short) < 2 * 60  # ascending ids with small steps: a byte per row
    for data, ids in ((short, run), (full, scattered)):
        back = WindowBatch.from_bytes(data, table)
        assert list(back.keys) == [table[i] for i in ids.tolist()]
        assert all(np.array_equal(back.columns[n], b.columns[n]) for n in b.columns)


def test_a_reopened_store_reads_run_and_column_id_batches_after_a_compaction(tmp_path):
    table = [(f"s{i}",) for i in range(100)]
    store = SketchStore(tmp_path, compact_every=10**9)
    store.append_outputs([batch(table, range(100), start=0), batch(table, [9, 2, 7], start=10)])
    store.compact()
    store.append_outputs([batch(table, range(50, 100), start=20, seed=2)])
    store.close()
    got, _ = SketchStore(tmp_path).window_batches(7)
    assert [len(b) for b in got] == [100, 3, 50]
    assert list(got[1].keys) == [table[9], table[2], table[7]]
    assert list(got[2].keys) == table[50:]
    want = batch(table, range(50, 100), start=20, seed=2).columns
    assert all(np.array_equal(got[2].columns[n], want[n]) for n in want)


def test_close_writes_everything_and_ends_the_writer_thread(tmp_path):
    table = [(f"s{i}",) for i in range(2000)]
    store = SketchStore(tmp_path, compact_every=10**9, background_writes=True)
    for s in range(0, 200, 10):
        store.append_outputs([batch(table, range(2000), start=s, seed=s)])
    writer = store._writer._thread
    store.close()
    assert writer is not None and not writer.is_alive()
    got, _ = SketchStore(tmp_path).window_batches(7)
    assert [b.window_start for b in got] == list(range(0, 200, 10))


def test_appends_are_in_the_os_when_they_return_by_default(tmp_path):
    """No writer thread unless asked for: a process crash right after an append keeps it."""
    table = [(f"s{i}",) for i in range(100)]
    store = SketchStore(tmp_path, compact_every=10**9)
    assert store._writer is None
    store.append_outputs([batch(table, range(100), start=0, seed=0)])
    assert frames(next(tmp_path.glob("sketches.*.log")))  # written before close
    store.close()


def _old_format(b: WindowBatch, ids: np.ndarray, coded: bool = False) -> bytes:
    """A batch as formats 2-3 wrote it (raw 8-byte columns), or 4 (``coded``: raw id column,
    coded state columns)."""
    import struct

    from precompute.window_batch import _code_column

    run = bool(np.all(np.diff(ids) == 1)) and not coded
    version = 4 if coded else 3 if run else 2
    kind = b.kind.encode()
    head = struct.pack("<BIqqq", version, b.aggregation_id, b.window_start,
                       b.window_end, b.max_buffer) + struct.pack("<H", len(kind)) + kind  # fmt: skip
    keys = struct.pack("<Qq", len(ids), int(ids[0])) if run else (
        struct.pack("<Q", len(ids)) + ids.astype("<i8").tobytes()
    )  # fmt: skip
    names, dtypes = columns_of(b.kind)
    if coded:
        pieces = [p for n, d in zip(names, dtypes, strict=True)
                  for p in _code_column(b.columns[n], d, zeros=n == "resets")]  # fmt: skip
        return head + keys + b"".join(bytes(p) for p in pieces)
    cols = b"".join(np.asarray(b.columns[n], d).astype(np.dtype(d).newbyteorder("<")).tobytes()
                    for n, d in zip(names, dtypes, strict=True))  # fmt: skip
    return head + keys + cols


def _counter_batch(table, n, seed):
    rng = np.random.default_rng(seed)
    resets = np.zeros(n)
    resets[rng.integers(0, n, 2)] = [3.5, -0.0]  # rare resets; -0.0 must keep its sign bit
    cols = {
        "n": np.full(n, 6, np.int64),
        "first_t": 50_000 + rng.integers(0, 1000, n),
        "first_v": rng.uniform(0, 1e3, n),
        "last_t": 100_000 + rng.integers(0, 1000, n),
        "last_v": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(1e3, 2e3, n)),
        "resets": resets,
    }
    return WindowBatch(7, "Increase", 40_000, 100_000, KeyRows(table, np.arange(n)), cols, 3)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_coded_columns_are_smaller_and_decode_to_the_same_bits():
    table = [(f"s{i}",) for i in range(1000)]
    b = _counter_batch(table, 1000, 1)
    ids = np.arange(1000)
    coded, old = b.to_bytes(ids), _old_format(b, ids)
    assert len(coded) < 0.55 * len(old)  # 48 → 25 bytes per row: n, resets and times shrink
    for data in (coded, old):  # formats 2-3 are still read
        back = WindowBatch.from_bytes(data, table)
        assert all(_bits_equal(back.columns[c], b.columns[c]) for c in b.columns)


@pytest.mark.parametrize("ids", [np.array([3, 5, 4, 900, 2]), np.arange(0, 1000, 3)])
def test_id_columns_of_every_format_read_back_the_same_keys(ids):
    table = [(f"s{i}",) for i in range(1000)]
    b = _counter_batch(table, ids.shape[0], 2)
    for data in (b.to_bytes(ids), _old_format(b, ids), _old_format(b, ids, coded=True)):
        back = WindowBatch.from_bytes(data, table)
        assert list(back.keys) == [table[i] for i in ids.tolist()]
        assert all(_bits_equal(back.columns[c], b.columns[c]) for c in b.columns)


@pytest.mark.parametrize(
    "column",
    [
        np.array([], np.int64),
        np.array([7], np.int64),
        np.array([-(2**63), 2**63 - 1, 0], np.int64),  # a span no offset width holds
        np.array([5, 5 + 255, 5 + 256], np.int64),  # just past one byte
        np.array([1, 2**32], np.int64),  # just past four bytes
        np.array([0.0, -0.0, 0.0]),
        np.array([np.nan, 1.0, -np.inf]),
        np.zeros(100),
        np.where(np.arange(100) == 3, 2.5, 0.0),
        np.array([2, 3, 3, 300, 301], np.int64),  # ascending: steps of two bytes
        np.array([2, 3, 3, 70_000], np.int64),  # a step no delta width holds
        np.array([5, 4, 6], np.int64),  # not ascending: offsets
    ],
)
def test_every_column_code_round_trips_bit_exactly(column):
    from precompute.window_batch import _code_column, _decode_column

    pieces = _code_column(column, column.dtype, deltas=column.dtype.kind == "i")
    data = memoryview(b"".join(bytes(p) for p in pieces))
    back, end = _decode_column(data, 0, column.dtype, column.shape[0])
    assert end == len(data)
    assert _bits_equal(back, column)
