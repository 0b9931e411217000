"""Compiled window batch coding (``precompute/batch_codec.py``): the record a store writes from
one scratch buffer is, byte for byte, the record ``WindowBatch.to_bytes`` builds from pieces, for
every column code and its edge cases; the store's log holds the same bytes either way."""

from __future__ import annotations

import numpy as np
import pytest

from precompute import batch_codec
from precompute.accumulators.registry import BY_NAME
from precompute.output import PrecomputedOutput
from precompute.window_batch import KeyRows, WindowBatch, _is_run, columns_of
from storage.sketch_store import SketchStore


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
        back = WindowBatch.from_bytes(
            encoded(b, ids, _is_run(ids)), [("k",)] * (int(ids.max()) + 1)
        )
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


def test_map_ids_names_rows_and_reports_unknown_rows_and_runs():
    mapping = np.array([4, 5, 6, -1, 9], dtype=np.int64)
    ids, known, run = batch_codec.map_ids(mapping, np.array([0, 1, 2]))
    assert ids.tolist() == [4, 5, 6] and known and run
    ids, known, run = batch_codec.map_ids(mapping, np.array([0, 2, 4]))
    assert known and not run
    assert not batch_codec.map_ids(mapping, np.array([1, 3]))[1]  # -1: not named yet
    assert not batch_codec.map_ids(mapping, np.array([1, 7]))[1]  # past the mapping's end
    assert not batch_codec.map_ids(mapping, np.array([], dtype=np.int64))[2]


def _log_bytes(path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.glob("sketches.*.log")))


@pytest.mark.parametrize("background", [False, True])
def test_store_log_bytes_are_the_same_with_and_without_the_compiled_coder(
    tmp_path, monkeypatch, background
):
    """Batches, new keys in the middle, and single entries between them: the scratch-buffer path
    writes exactly the records the piecewise path wrote, in the same order."""
    rng = np.random.default_rng(3)
    table = [(f"s{i}",) for i in range(500)]

    def appends():
        out = []
        for step, rows in enumerate([range(200), range(100, 400), [450, 2, 3], range(500)]):
            cols = random_columns("Increase", len(rows), rng)
            b = WindowBatch(7, "Increase", step * 10, step * 10 + 60,
                            KeyRows(table, np.array(list(rows))), cols, 0)  # fmt: skip
            acc = BY_NAME["Sum"].from_moments(float(step), 1, 0.0, 9.0)
            entry = (PrecomputedOutput(8, ("k",), step, step + 1), acc)
            out.append([b, entry, b] if step % 2 else [entry, b])
        return out

    logs = []
    for enabled in (False, True):
        monkeypatch.setattr(batch_codec, "ENABLED", enabled)
        rng = np.random.default_rng(3)
        path = tmp_path / str(enabled)
        store = SketchStore(path, compact_every=10**9, background_writes=background)
        store.append_outputs([])
        for group in appends():
            store.append_outputs(group)
        store.close()
        logs.append(_log_bytes(path))
    assert logs[0] == logs[1]
    reopened = SketchStore(tmp_path / "True")
    batches, _ = reopened.window_batches(7)
    assert [len(b) for b in batches] == [200, 300, 300, 3, 500, 500]
    assert len(reopened.log_view(8)) == 4
    reopened.close()
