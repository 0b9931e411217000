"""Compiled window batch coding (``precompute/batch_codec.py``): the record a store writes from
one scratch buffer is, byte for byte, the record ``WindowBatch.to_bytes`` builds from pieces, for
every column code and its edge cases; the store's log holds the same bytes either way."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from precompute import batch_codec
from precompute.accumulators.registry import BY_NAME
from precompute.output import PrecomputedOutput
from precompute.window_batch import KeyRows, WindowBatch, _is_run, columns_of
from storage.sketch_checksum import xxh64
from storage.sketch_store import _FRAME, _KIND_BATCH, _XXH_FRAME, SketchStore


def encoded(b: WindowBatch, ids: np.ndarray, run: bool, pad: int = 0) -> bytes:
    out = np.full(b.record_bound() + pad + 16, 0xAB, dtype=np.uint8)
    end = b.encode_into(out, pad, ids, run)
    assert (out[:pad] == 0xAB).all() and (out[end:] == 0xAB).all()  # nothing outside written
    return bytes(out[pad:end])


def make(kind: str, cols: dict[str, np.ndarray], width: int | None = None) -> WindowBatch:
    n = len(next(iter(cols.values())))
    table = [(f"s{i}", "x") for i in range(max(n, 1) * 3)]
    return WindowBatch(5, kind, 10, 70, KeyRows(table, np.arange(n)), cols, 2, width)


def random_columns(kind: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    names, dtypes = columns_of(kind)
    cols = {}
    for name, dtype in zip(names, dtypes, strict=True):
        if np.dtype(dtype).kind == "i":
            span = int(rng.choice([0, 1, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**62]))
            cols[name] = rng.integers(-(2**40), 2**40) + rng.integers(0, span + 1, n)
        else:
            col = rng.uniform(-1e6, 1e6, n)
            col[rng.random(n) < rng.choice([1.0, 0.99, 0.5, 0.0])] = 0.0
            col[rng.random(n) < 0.05] = rng.choice([np.nan, -0.0, np.inf])
            cols[name] = col
    return cols


@pytest.mark.parametrize("kind", ["Sum", "Increase", "MultipleLast"])
@pytest.mark.parametrize("seed", range(12))
def test_compiled_record_equals_the_piecewise_record_for_random_columns_and_ids(kind, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 3, 17, 1000]))
    b = make(kind, random_columns(kind, n, rng), width=1 if kind == "MultipleLast" else None)
    first = int(rng.integers(0, 1000))
    run_ids = np.arange(first, first + n, dtype=np.int64)
    steps = rng.choice([1, 2, 255, 256, 70_000], size=n)
    gappy = first + np.cumsum(steps) - steps[0]
    shuffled = rng.permutation(gappy)
    assert encoded(b, run_ids, True, pad=int(seed)) == b.to_bytes(run_ids)
    for ids in (gappy, shuffled):  # one row: still a run
        assert encoded(b, ids, _is_run(ids), pad=3) == b.to_bytes(ids)
        back = WindowBatch.from_bytes(encoded(b, ids, _is_run(ids)), [("k",)])  # keys unread
        for name in b.columns:
            assert back.columns[name].tobytes() == b.columns[name].tobytes()


@pytest.mark.parametrize(
    "column",
    [
        np.zeros(9),  # all zero: one constant
        np.array([0.0] * 8 + [-0.0]),  # -0.0 is a non-zero bit pattern: sparse, sign kept
        np.array([0.0] * 20 + [1.5, 2.5]),  # rare values: sparse
        np.array([1.0, 0.0, 2.0]),  # 2 of 3 non-zero: raw (12 * 2 >= 8 * 3)
        np.array([0.0, 0.0, 2.0]),  # 1 of 3: sparse would be 12 bytes < 24
        np.full(5, np.nan),
    ],
)
def test_resets_column_codes_match_for_zero_sparse_and_raw_cases(column):
    n = column.shape[0]
    cols = {
        "n": np.full(n, 6, np.int64),
        "first_t": np.arange(n, dtype=np.int64) * 7,
        "first_v": np.linspace(0, 1, n),
        "last_t": np.full(n, 2**63 - 1, np.int64),
        "last_v": np.linspace(1, 2, n),
        "resets": column,
    }
    b = make("Increase", cols)
    ids = np.arange(n, dtype=np.int64)
    assert encoded(b, ids, True) == b.to_bytes(ids)


@pytest.mark.parametrize(
    "ints",
    [
        [5],
        [-(2**63), 2**63 - 1],  # the whole int64 range: raw
        [2**63 - 1, -(2**63), 0],
        [0, 255],
        [0, 256],
        [7, 7 + 65_535],
        [7, 7 + 65_536],
        [-5, -5 + 2**32 - 1],
        [-5, -5 + 2**32],
    ],
)
def test_int_column_codes_match_at_every_width_boundary(ints):
    col = np.array(ints, dtype=np.int64)
    n = col.shape[0]
    b = make("Sum", {"sum": np.ones(n), "count": col, "min": np.ones(n), "max": np.ones(n)})
    for ids in (np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64) * 3 + 1):
        assert encoded(b, ids, _is_run(ids)) == b.to_bytes(ids)


def test_id_columns_take_delta_offset_or_raw_codes_as_the_numpy_coder_does():
    b = make("Sum", {"sum": np.ones(4), "count": np.ones(4, np.int64),
                     "min": np.ones(4), "max": np.ones(4)})  # fmt: skip
    for ids in ([0, 1, 2, 4], [0, 300, 600, 900], [0, 70_000, 140_000, 210_000], [9, 3, 4, 5],
                [0, 2**40, 2**41, 2**62]):  # fmt: skip
        ids = np.array(ids, dtype=np.int64)
        assert encoded(b, ids, False) == b.to_bytes(ids)


def test_strided_and_narrow_columns_are_coded_as_their_declared_dtype():
    n = 40
    b = make("Increase", {
        "n": np.arange(2 * n, dtype=np.int32)[::2], "first_t": np.arange(n, dtype=np.int64),
        "first_v": np.arange(n, dtype=np.float32), "last_t": np.arange(n, dtype=np.int64) + 9,
        "last_v": np.arange(2 * n, dtype=np.float64)[1::2], "resets": np.zeros(n, np.float32),
    })  # fmt: skip
    ids = np.arange(3, 3 + n, dtype=np.int64)
    assert encoded(b, ids, True) == b.to_bytes(ids)


def test_a_buffer_without_room_for_the_bound_is_refused_before_any_kernel_writes():
    b = make("Sum", {"sum": np.ones(100), "count": np.ones(100, np.int64),
                     "min": np.ones(100), "max": np.ones(100)})  # fmt: skip
    out = np.zeros(b.record_bound() - 1, dtype=np.uint8)
    with pytest.raises(ValueError, match="too small"):
        b.encode_into(out, 0, np.arange(100, dtype=np.int64), True)


def test_columns_longer_than_the_keys_are_refused_not_written_past_the_bound():
    b = make("Sum", {"sum": np.ones(10), "count": np.ones(10, np.int64),
                     "min": np.ones(10), "max": np.ones(10)})  # fmt: skip
    b.columns["sum"] = np.ones(10_000)
    out = np.zeros(b.record_bound(), dtype=np.uint8)
    with pytest.raises(ValueError, match="differ in length"):
        b.encode_into(out, 0, np.arange(10, dtype=np.int64), True)


def test_map_ids_names_rows_and_reports_unknown_rows_and_runs():
    mapping = np.array([4, 5, 6, -1, 9], dtype=np.int64)
    ids, known, run = batch_codec.map_ids(mapping, np.array([0, 1, 2]))
    assert ids.tolist() == [4, 5, 6] and known and run
    ids, known, run = batch_codec.map_ids(mapping, np.array([0, 2, 4]))
    assert known and not run
    assert not batch_codec.map_ids(mapping, np.array([1, 3]))[1]  # -1: not named yet
    assert not batch_codec.map_ids(mapping, np.array([1, 7]))[1]  # past the mapping's end
    assert not batch_codec.map_ids(mapping, np.array([], dtype=np.int64))[2]


def _frames(path) -> list[tuple[bool, int, bytes]]:
    """(checked by XXH64, check, payload) of every frame of a store's logs."""
    out = []
    for log in sorted(path.glob("sketches.*.log")):
        data, offset = log.read_bytes(), 0
        while offset < len(data):
            word, check = _FRAME.unpack_from(data, offset)
            length = word & ~_XXH_FRAME
            payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
            out.append((bool(word & _XXH_FRAME), check, payload))
            offset += _FRAME.size + length
    return out


def _appends(table):
    """Batches, new keys in the middle, and single entries between them."""
    rng = np.random.default_rng(3)
    out = []
    for step, rows in enumerate([range(200), range(100, 400), [450, 2, 3], range(500)]):
        cols = random_columns("Increase", len(rows), rng)
        b = WindowBatch(7, "Increase", step * 10, step * 10 + 60,
                        KeyRows(table, np.array(list(rows))), cols, 0)  # fmt: skip
        acc = BY_NAME["Sum"].from_moments(float(step), 1, 0.0, 9.0)
        entry = (PrecomputedOutput(8, ("k",), step, step + 1), acc)
        out.append([b, entry, b] if step % 2 else [entry, b])
    return out


def _write(path, table, enabled, monkeypatch, background=False) -> None:
    monkeypatch.setattr(batch_codec, "ENABLED", enabled)
    store = SketchStore(path, compact_every=10**9, background_writes=background)
    store.append_outputs([])
    for group in _appends(table):
        store.append_outputs(group)
    store.close()
    monkeypatch.setattr(batch_codec, "ENABLED", True)


@pytest.mark.parametrize("background", [False, True])
def test_store_log_records_are_the_same_with_and_without_the_compiled_coder(
    tmp_path, monkeypatch, background
):
    """The scratch-buffer path writes exactly the records the piecewise path wrote, in the same
    order; only its batch frames are checked by XXH64 instead of CRC-32."""
    table = [(f"s{i}",) for i in range(500)]
    for enabled in (False, True):
        _write(tmp_path / str(enabled), table, enabled, monkeypatch, background)
    old, new = _frames(tmp_path / "False"), _frames(tmp_path / "True")
    assert [p for *_, p in old] == [p for *_, p in new]
    assert not any(x for x, *_ in old)
    assert all(check == zlib.crc32(p) for _, check, p in old)
    batch_frames = [p[0] == _KIND_BATCH for *_, p in new]
    assert [x for x, *_ in new] == batch_frames and sum(batch_frames) == 6
    for x, check, p in new:
        assert check == (xxh64(p) & 0xFFFF_FFFF if x else zlib.crc32(p))


def _read(path):
    store = SketchStore(path, compact_every=10**9)
    batches, _ = store.window_batches(7)
    got = [(b.window_start, list(b.keys), {n: c.tobytes() for n, c in b.columns.items()})
           for b in batches]  # fmt: skip
    entries = [(e.window_start, e.data) for e in store.log_view(8)]
    store.close()
    return got, entries


def test_a_log_of_crc_frames_written_before_xxh64_frames_reads_the_same(tmp_path, monkeypatch):
    table = [(f"s{i}",) for i in range(500)]
    _write(tmp_path / "old", table, False, monkeypatch)
    _write(tmp_path / "new", table, True, monkeypatch)
    old, new = _read(tmp_path / "old"), _read(tmp_path / "new")
    assert [len(k) for _, k, _ in old[0]] == [200, 300, 300, 3, 500, 500]
    assert old == new
    # An old log, then a restart that appends XXH64 frames to a new log: one history.
    store = SketchStore(tmp_path / "old", compact_every=10**9)
    store.append_outputs(_appends(table)[3])
    store.close()
    got = _read(tmp_path / "old")
    assert len(got[0]) == 8 and got[0][:6] == old[0] and len(got[1]) == 5


@pytest.mark.parametrize("damage", ["torn", "flipped"])
def test_a_damaged_xxh64_frame_ends_the_log_where_it_starts(tmp_path, monkeypatch, damage):
    table = [(f"s{i}",) for i in range(500)]
    _write(tmp_path, table, True, monkeypatch)
    log = sorted(tmp_path.glob("sketches.*.log"))[-1]
    data = bytearray(log.read_bytes())
    frames = _frames(tmp_path)
    last_start = len(data) - _FRAME.size - len(frames[-1][2])
    assert frames[-1][0]  # the last record is an XXH64-checked batch
    if damage == "torn":
        data = data[:-7]
    else:
        data[last_start + _FRAME.size + 40] ^= 0x10
    log.write_bytes(bytes(data))
    got, entries = _read(tmp_path)
    assert len(got) == 5 and len(entries) == 4
    assert log.stat().st_size == last_start  # the damaged record was cut off
