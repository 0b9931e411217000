"""Batch decoding of stored windows equals the per-window datasketches path, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sketch_decode import decode_kll, sort_segments
from planner.sketch_table import WindowTable
from precompute.accumulators.base import Accumulator
from precompute.accumulators.kll import KLLAccumulator
from precompute.config import load_config
from storage.sketch_store import SketchEntry
from tests.sketch.conftest import HOUR_MS, YAML, fill
from tests.sketch.harness import World
from udfs.weighted_quantile import kll_items

SIZES = (0, 1, 2, 7, 8, 9, 150, 200, 201, 1_000, 20_000)


def _reference(blob: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """The per-window path the table used before: datasketches, then split by level."""
    acc = Accumulator.from_bytes(blob)
    assert isinstance(acc, KLLAccumulator)
    if acc.exact is not None:
        items = np.sort(acc.exact, kind="stable")
        return items, np.ones(items.shape[0], np.int64), acc.k
    items, weights = kll_items(acc.sketch.serialize())
    return items, weights, acc.k


def _library(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Items and weights as datasketches itself lists them, stably sorted by value."""
    acc = Accumulator.from_bytes(blob)
    assert isinstance(acc, KLLAccumulator)
    if acc.exact is not None:
        values = np.asarray(acc.exact, dtype=np.float64)
        return np.sort(values, kind="stable"), np.ones(values.shape[0], np.int64)
    pairs = list(acc.sketch)
    items = np.array([p[0] for p in pairs], dtype=np.float64)
    weights = np.array([p[1] for p in pairs], dtype=np.int64)
    order = np.argsort(items, kind="stable")
    return items[order], weights[order]


def _blobs(seed: int, rounds: int = 3) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rounds):
        for n in rng.permutation(SIZES).tolist():
            acc = KLLAccumulator(int(rng.choice([8, 50, 200])))
            values = rng.normal(0, 10, n)
            if rng.random() < 0.5:  # ties across levels
                values = np.round(values) + 0.0
            for part in np.array_split(values, int(rng.integers(1, 4))):
                acc.update(part, np.zeros(part.shape[0], np.int64))
            out.append(acc.to_bytes())
    for n, k in ((5, 200), (100, 8), (3_000, 50)):  # many windows of one size: one matrix
        for _ in range(12):
            acc = KLLAccumulator(k)
            acc.update(np.round(rng.normal(0, 10, n)) + 0.0, np.zeros(n, np.int64))
            out.append(acc.to_bytes())
    return out


def _windows(got, i: int) -> tuple[np.ndarray, np.ndarray]:
    start = int(got.starts[i])
    stop = start + int(got.sizes[i])
    return got.items[start:stop], got.weights[start:stop]


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_decode_equals_datasketches_and_the_per_window_path_bit_for_bit(seed):
    blobs = _blobs(seed)
    got = decode_kll(blobs)
    assert got.parsed == len(blobs), "every window of this build is parsed without fallback"
    forms = set()
    for i, blob in enumerate(blobs):
        items, weights = _windows(got, i)
        ref_items, ref_weights, k = _reference(blob)
        lib_items, lib_weights = _library(blob)
        np.testing.assert_array_equal(_bits(items), _bits(ref_items))
        np.testing.assert_array_equal(weights, ref_weights)
        np.testing.assert_array_equal(_bits(items), _bits(lib_items))
        np.testing.assert_array_equal(weights, lib_weights)
        assert got.k[i] == k
        assert bool(got.exact[i]) == bool((ref_weights == 1).all())
        forms.add((items.shape[0] > 1, int(weights.max()) if weights.shape[0] else 0))
    assert {w for _, w in forms} >= {0, 1, 2, 4}, "empty, exact and multi-level windows seen"


def test_windows_the_parser_does_not_recognise_go_through_datasketches_in_place():
    acc32 = KLLAccumulator(200)
    acc32.exact = np.array([3.0, 1.0, 2.0], dtype=np.float32)  # stored with dtype "<f4"
    bad_version = bytearray(_blobs(4, rounds=1)[9])
    good = _blobs(5, rounds=1)
    blobs = [good[0], acc32.to_bytes(), good[1], good[2]]
    got = decode_kll(blobs)
    assert got.parsed == 3
    for i, blob in enumerate(blobs):
        items, weights = _windows(got, i)
        ref_items, ref_weights, _ = _reference(blob)
        np.testing.assert_array_equal(_bits(items), _bits(ref_items))
        np.testing.assert_array_equal(weights, ref_weights)
    bad_version[3] = 99  # a format newer than this build: datasketches' path refuses it too
    with pytest.raises(ValueError, match="newer"):
        decode_kll([good[0], bytes(bad_version)])


def test_segments_sort_stably_with_nan_last_like_a_per_run_stable_argsort():
    rng = np.random.default_rng(0)
    sizes = np.array([0, 1, 5, 3, 40, 0, 17, 1000], dtype=np.int64)
    items = np.round(rng.normal(0, 2, int(sizes.sum())))
    items[rng.random(items.shape[0]) < 0.05] = np.nan
    weights = np.arange(items.shape[0], dtype=np.int64)
    got_i, got_w = sort_segments(items, weights, sizes)
    start = 0
    for n in sizes.tolist():
        order = np.argsort(items[start : start + n], kind="stable") + start
        np.testing.assert_array_equal(_bits(got_i[start : start + n]), _bits(items[order]))
        np.testing.assert_array_equal(got_w[start : start + n], weights[order])
        start += n


class _BytesOnly:
    """The store's records as plain serialized entries (as after a restart from disk): the
    table then decodes every window from bytes, the path that predates the shortcuts."""

    def __init__(self, store) -> None:
        self.store = store

    def chunk_view(self, agg_id: int) -> list:
        out = []
        for rec in self.store.chunk_view(agg_id):
            if isinstance(rec, SketchEntry):
                rec = SketchEntry(rec.aggregation_id, rec.key, rec.window_start,
                                  rec.window_end, bytes(rec.data))  # fmt: skip
            out.append(rec)
        return out


def _rows(table: WindowTable, store, ends: np.ndarray) -> dict[tuple, tuple]:
    """Every selected row keyed by (key, window end, log position): statistics or segment."""
    sel = table.select(store, ends)
    keys = {v: k for k, v in table.key_ids.items()}
    names = table.row_names[3:]
    cols = sel.take(np.arange(sel.kid.shape[0]), ("seq", *names))
    out = {}
    for r in range(sel.kid.shape[0]):
        ident = (keys[int(sel.kid[r])], int(ends[sel.col[r]]), int(cols["seq"][r]))
        if sel.segments is None:
            out[ident] = tuple(_bits(np.array([cols[n][r]])).tolist()[0] for n in names)
            continue
        lo, hi = int(sel.segments.lo[r]), int(sel.segments.hi[r])
        seg = (sel.segments.items[lo:hi].tobytes(), sel.segments.cumw[lo:hi].tobytes())
        out[ident] = (*seg, bool(sel.segments.exact[r]), int(sel.seg_k[r]))
    return out


@pytest.fixture(scope="module")
def fresh() -> World:
    """A world of its own: its engine-emitted entries still hold their accumulators."""
    w = World(YAML)
    fill(w, seed=11)
    return w


@pytest.mark.parametrize("agg", load_config(YAML).aggregations, ids=lambda a: a.aggregation_type)
def test_tables_decode_every_family_as_they_do_from_plain_bytes(fresh, agg):
    ends = np.arange(0, HOUR_MS + 1, agg.slide_interval_ms, dtype=np.int64)
    log = fresh.store.chunk_view(agg.aggregation_id)
    held = sum("_acc" in getattr(r, "__dict__", {}) for r in log)
    table = WindowTable(agg)
    fast = _rows(table, fresh.store, ends)
    slow = _rows(WindowTable(agg), _BytesOnly(fresh.store), ends)
    if held and agg.aggregation_type == "MultipleIncrease":  # emitted as keyed entries
        assert any(prefix for _, prefix in table.worker_maps), "keys mapped via the key table"
    assert fast, "the comparison must not be vacuous"
    assert fast == slow


def test_kll_tables_hold_what_datasketches_reads_from_each_window(world):
    agg = next(a for a in load_config(YAML).aggregations if a.aggregation_id == 4)  # K=8
    table = WindowTable(agg)
    ends = np.arange(0, HOUR_MS + 1, agg.slide_interval_ms, dtype=np.int64)
    sel = table.select(world.store, ends)
    seqs = sel.take(np.arange(sel.kid.shape[0]), ("seq",))["seq"]
    log = world.store.chunk_view(agg.aggregation_id)
    multi_level = 0
    for r in range(sel.kid.shape[0]):
        items, weights, k = _reference(log[int(seqs[r])].data)
        lo, hi = int(sel.segments.lo[r]), int(sel.segments.hi[r])
        np.testing.assert_array_equal(_bits(sel.segments.items[lo:hi]), _bits(items))
        np.testing.assert_array_equal(sel.segments.cumw[lo:hi], np.cumsum(weights))
        assert int(sel.seg_k[r]) == k
        multi_level += int(weights.max(initial=1) > 1)
    assert multi_level > 0
