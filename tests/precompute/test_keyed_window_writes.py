"""Keyed counter windows on the write path: pane merges in one chain, serialization from column
views, and store entries whose bytes are built when first read — all equal to the general path."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from precompute.accumulators.base import Accumulator, pack_array, pack_keys
from precompute.accumulators.increase import (
    _COLS,
    CounterColumns,
    MultipleIncreaseAccumulator,
    fold_sorted,
    merge_pair,
    merge_stack,
)
from precompute.output import PrecomputedOutput
from storage.sketch_store import SketchEntry, SketchStore

PANE_MS = 10_000


def _panes(seed: int, n_panes: int, table_size: int, density: float):
    """Panes in time order over one worker-style key table (table mode), some keys missing
    from some panes, tables of different lengths (keys appended while the window was open)."""
    rng = np.random.default_rng(seed)
    table = [(f"host{i}",) for i in range(table_size)]
    parts = []
    for k in range(n_panes):
        acc = MultipleIncreaseAccumulator()
        size = max(1, table_size - (n_panes - 1 - k) * rng.integers(0, 3))
        ids = np.flatnonzero(rng.random(size) < density)
        if ids.shape[0] == 0:  # a worker creates a pane with its first sample
            ids = np.array([int(rng.integers(0, size))])
        reps = rng.integers(1, 4, ids.shape[0])
        kid = np.repeat(ids, reps)
        ts = k * PANE_MS + 1 + rng.integers(0, PANE_MS - 1, kid.shape[0])
        # Whole numbers with drops: counter resets inside panes and across pane seams.
        vals = rng.integers(0, 50, kid.shape[0]).astype(np.float64)
        acc.update(vals, ts, table, kid)
        parts.append(acc)
    return parts


def _general(parts):
    merged = parts[0].empty_like()
    for part in parts:
        merged.merge(part)
    return merged


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_panes=st.integers(1, 6),
    size=st.integers(1, 40),
    density=st.sampled_from([0.2, 0.7, 1.0]),
)
def test_a_window_merged_in_one_chain_serializes_like_the_pane_by_pane_merge(
    seed, n_panes, size, density
):
    parts = _panes(seed, n_panes, size, density)
    before = [p.to_bytes() for p in parts]
    fast = MultipleIncreaseAccumulator.merged_panes(parts)
    assert fast is not None
    assert fast.to_bytes() == _general(_panes(seed, n_panes, size, density)).to_bytes()
    assert [p.to_bytes() for p in parts] == before  # panes are not changed


def test_the_merged_window_does_not_alias_the_panes_that_stay_open():
    parts = _panes(1, 3, 20, 1.0)
    fast = MultipleIncreaseAccumulator.merged_panes(parts)
    snapshot = fast.to_bytes()
    parts[-1].update(np.array([1e6]), np.array([3 * PANE_MS - 1]), parts[-1].interner.table,
                     np.array([0]))  # fmt: skip
    parts[-1]._fold()
    assert fast.to_bytes() == snapshot


def test_panes_from_different_key_tables_take_the_general_merge():
    a, b = _panes(2, 1, 5, 1.0)[0], _panes(3, 1, 5, 1.0)[0]
    assert MultipleIncreaseAccumulator.merged_panes([a, b]) is None


def test_keyed_counter_bytes_are_the_generic_framing_of_the_present_rows():
    (acc,) = _panes(4, 1, 50, 0.5)
    acc._fold()
    rows = acc._present()
    expected = (
        b"TA"
        + bytes([acc.type_code, acc.version])
        + np.array([acc.max_buffer, acc.out_of_order], dtype="<i8").tobytes()
        + pack_keys([acc.interner.keys[i] for i in rows.tolist()])
        + b"".join(pack_array(getattr(acc.cols, c)[rows]) for c in _COLS)
    )
    assert acc.to_bytes() == expected
    assert b"".join(bytes(p) for p in acc.to_pieces()) == expected
    back = Accumulator.from_bytes(expected)
    assert back.keys() == acc.keys()


def test_keyed_windows_read_from_the_store_equal_entries_built_from_their_bytes(tmp_path):
    store = SketchStore(tmp_path)
    windows = []
    for k, acc in enumerate(_panes(5, 3, 30, 0.8)):
        out = PrecomputedOutput(3, ("job",), k * PANE_MS, (k + 1) * PANE_MS)
        windows.append(SketchEntry(3, ("job",), k * PANE_MS, (k + 1) * PANE_MS, acc.to_bytes()))
        store.append_outputs([(out, acc)])
    read = store.log_view(3)
    assert read == windows and windows == read
    assert {hash(e) for e in read} == {hash(e) for e in windows}
    assert [e.accumulator().keys() for e in read] == [w.accumulator().keys() for w in windows]
    store.close()
    reopened = SketchStore(tmp_path)
    assert reopened.log_view(3) == windows  # the log holds the same bytes
    reopened.compact()
    reopened.close()
    assert SketchStore(tmp_path).log_view(3) == windows


def _run_keyed_stream(batches, general: bool, monkeypatch) -> list[tuple]:
    from precompute.worker import Worker
    from tests.precompute.helpers import Harness, agg_yaml

    with monkeypatch.context() as m:
        if general:  # the reference: every window merged pane by pane
            m.setattr(Worker, "_keyed_window", lambda *a: None)
        h = Harness(
            agg_yaml("MultipleIncrease", window=60, slide=10, grouping=["job"],
                     aggregated=["instance"]),
            allowed_lateness_ms=5_000,
        )  # fmt: skip
        for batch in batches:
            h.send(batch)
        h.close_all()
    return [(o.key, o.window_start, o.window_end, acc.to_bytes()) for o, acc in h.emits]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # monkeypatch is only used through monkeypatch.context(), undone per example
@given(seed=st.integers(0, 10_000), shuffle=st.booleans())
def test_sliding_keyed_counter_windows_equal_pane_by_pane_merges_under_reordering_and_gaps(
    seed, shuffle, monkeypatch
):
    """Two-stack window merges of MultipleIncrease panes give the windows of the general merge:
    series that come and go, counter resets, batches swapped past the allowed lateness (late for
    closed windows, new samples in panes already merged), series added while windows are open."""
    rng = np.random.default_rng(seed)
    batches, value = [], {}
    for k in range(14):
        t0 = k * PANE_MS
        batch = []
        for i in range(int(rng.integers(2, 12)) + k):
            if rng.random() < 0.2:
                continue  # a missed scrape: gaps in some panes
            inst = f"h{i}"
            v = value.get(inst, 0.0) + float(rng.integers(0, 5))
            value[inst] = 0.0 if rng.random() < 0.05 else v  # a counter reset
            labels = {"__name__": "m", "job": f"j{i % 2}", "instance": inst}
            batch.append((labels, t0 + int(rng.integers(0, PANE_MS)), value[inst]))
        batches.append(batch)
    if shuffle:  # swap neighbours: late for closed windows, on time for open ones (touch)
        for k in range(0, len(batches) - 1, 2):
            if rng.random() < 0.5:
                batches[k], batches[k + 1] = batches[k + 1], batches[k]
    fast = _run_keyed_stream(batches, general=False, monkeypatch=monkeypatch)
    assert fast and fast == _run_keyed_stream(batches, general=True, monkeypatch=monkeypatch)


def _state(rng, size: int, t0: int, present: float) -> CounterColumns:
    has = rng.random(size) < present
    n = np.where(has, rng.integers(1, 4, size), 0)
    first_t = np.where(has, t0 + rng.integers(0, 4000, size), 0)
    last_t = np.where(has, first_t + rng.integers(0, 5000, size), 0)
    vals = lambda: np.where(has, rng.integers(0, 20, size).astype(np.float64), 0.0)  # noqa: E731
    return CounterColumns(n, first_t, vals(), last_t, vals(), vals())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 50))
def test_merging_two_fully_present_states_equals_the_stacked_merge(seed, size):
    rng = np.random.default_rng(seed)
    early = _state(rng, size, 0, 1.0)
    late = _state(rng, size, 10_000, 1.0)
    if seed % 3 == 0:  # a boundary sample shared by both sides in some rows
        late.first_t[::2] = early.last_t[::2]
    stacked = merge_stack({c: np.stack([getattr(early, c), getattr(late, c)]) for c in _COLS})
    merged = merge_pair(early, late)
    for c in _COLS:
        assert np.array_equal(getattr(merged, c), getattr(stacked, c)), c


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.integers(2, 60),
    present=st.sampled_from([0, 0.5, 1]),
    gaps=st.sampled_from([0, 1, 3]),
)
def test_a_scrape_in_table_order_folds_like_the_same_scrape_in_any_order(seed, size, present, gaps):
    """One sample per key over a run of rows, or a run with a few rows missing (slices) == the
    same samples shuffled (gathers): new keys, counter drops, samples older than the folded
    state (skipped), rows without a sample untouched."""
    rng = np.random.default_rng(seed)
    base = _state(rng, size + 5, 0, present)
    lo = int(rng.integers(0, 5))
    kid = np.arange(lo, lo + size)
    if gaps:  # series that missed this scrape (never the first or last of the span)
        kid = np.delete(kid, rng.choice(np.arange(1, size - 1), min(gaps, size - 2), False))
        size = kid.shape[0]
    t = rng.integers(0, 12_000, size)
    v = rng.integers(-5, 20, size).astype(np.float64)  # negative: not counters, still exact
    run = CounterColumns(*(getattr(base, c).copy() for c in _COLS))
    shuffled = CounterColumns(*(getattr(base, c).copy() for c in _COLS))
    order = rng.permutation(size)
    if size > 1 and (order == np.arange(size)).all():
        order = order[::-1]
    skipped = fold_sorted(run, kid, t, v)
    assert skipped == fold_sorted(shuffled, kid[order], t[order], v[order])
    for c in _COLS:
        assert np.array_equal(getattr(run, c), getattr(shuffled, c)), c


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    groups=st.sampled_from([1, 10, 70_000]),
    spread=st.sampled_from([1, 3, 200]),  # 200 panes apart: the general sort
)
def test_samples_are_ordered_by_group_pane_and_arrival_like_lexsort(seed, n, groups, spread):
    from precompute.worker import _group_pane_order

    rng = np.random.default_rng(seed)
    gids = rng.integers(0, groups, n)
    panes = (7 + rng.integers(0, spread, n)) * PANE_MS
    order = _group_pane_order(gids, panes, PANE_MS)
    assert np.array_equal(order, np.lexsort((panes, gids)))
