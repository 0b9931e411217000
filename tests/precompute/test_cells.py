"""Keyed types over cells (``precompute/cells.py``) give the windows the keyed object path gives:
same windows, same statistics, same counters, on shuffled streams with late samples, stale
markers, timestamp ties and restarts in the middle."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from precompute.cells import CellTable
from precompute.config import EngineOptions, LateDataPolicy, load_config
from precompute.router import Router
from precompute.window_batch import WindowBatch, expand
from precompute.worker import Worker
from storage.model import STALE_NAN
from tests.precompute.helpers import SeriesIds, agg_yaml

KEYED = ("MultipleSum", "MultipleMinMax", "MultipleIncrease", "MultipleLast")
SHAPES = {
    "small groups": (("job", "instance"), ("code",)),
    "one key per group": (("instance",), ("job",)),
    "few big groups": (("job",), ("instance", "code")),
}


def _stream(seed: int, n: int = 1500):
    """Shuffled samples of 2 jobs × 5 instances × 3 codes: counters with resets, jittered
    times, duplicate timestamps, stale markers and some samples far behind (late)."""
    rng = np.random.default_rng(seed)
    series = [
        {"__name__": "m", "job": f"j{j}", "instance": f"i{i}", "code": c}
        for j in range(2)
        for i in range(5)
        for c in ("200", "404", "500")
    ]
    pick = rng.integers(0, len(series), n)
    ts = np.sort(rng.integers(0, 120_000, n))
    jitter = rng.integers(-4_000, 4_000, n)
    late = rng.random(n) < 0.03
    ts = np.where(late, ts - 40_000, ts + jitter)
    dup = rng.random(n) < 0.1  # the previous sample's series and time again: a tie
    ts[dup], pick[dup] = np.roll(ts, 1)[dup], np.roll(pick, 1)[dup]
    vals = np.floor(np.cumsum(rng.integers(0, 5, n)) % 97).astype(float)
    vals[rng.random(n) < 0.03] = STALE_NAN
    samples = [(series[p], int(t), float(v)) for p, t, v in zip(pick, ts, vals, strict=True)]
    # Batches of irregular sizes, each a little shuffled (arrival order ≠ event order).
    out, i = [], 0
    while i < n:
        size = int(rng.integers(1, 120))
        chunk = samples[i : i + size]
        perm = rng.permutation(len(chunk))
        out.append([chunk[j] for j in perm])
        i += size
    return out


def _canonical(emits) -> dict:
    """Per (aggregation, group key, start, end) the merged state's statistics."""
    merged: dict = {}
    for o, acc in expand(emits):
        key = (o.aggregation_id, o.key, o.window_start, o.window_end)
        if key in merged:
            merged[key].merge(acc)
        else:
            merged[key] = acc.snapshot()
    out = {}
    for key, acc in merged.items():
        rows = sorted((tuple(k["key"]), _clean(k["stats"])) for k in acc.stats()["keys"])
        if rows:
            out[key] = rows
    return out


def _clean(stats: dict) -> tuple:
    # NaN (the stale marker's value) compares equal to itself here.
    return tuple(
        (k, "nan" if isinstance(v, float) and math.isnan(v) else v)
        for k, v in sorted(stats.items())
    )


def _run(yaml_text: str, batches, options: EngineOptions, cells: bool, restart_at: int | None):
    config = load_config(yaml_text)
    router = Router(list(config.aggregations), 1)
    worker = Worker(config.aggregations, options, cells=cells)
    ids, emits = SeriesIds(), []
    for i, samples in enumerate(batches):
        if i == restart_at:  # a restart: the snapshot crosses a process boundary
            snap = pickle.loads(pickle.dumps(worker.snapshot()))
            worker = Worker(config.aggregations, options, cells=cells)
            worker.restore(snap)
        for item in router.route(ids.batch(samples))[0]:
            emits += worker.process(item)
        if i % 7 == 6:
            emits += worker.flush()
    emits += worker.close_all()
    return emits, worker


@pytest.mark.parametrize("policy", [LateDataPolicy.DROP, LateDataPolicy.FORWARD_TO_STORE])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("agg_type", KEYED)
@pytest.mark.parametrize("window", [(10, None), (30, 10)], ids=["tumbling", "sliding"])
def test_cells_give_the_windows_of_keyed_accumulator_objects(agg_type, shape, policy, window):
    grouping, aggregated = SHAPES[shape]
    yaml_text = agg_yaml(agg_type, window[0], window[1], grouping, aggregated)
    # Counter panes fold buffered samples at a window close (or past ``max_buffer`` samples per
    # key: cells count it over the pane's cells, objects per group, so the bound is left high).
    options = EngineOptions(allowed_lateness_ms=5_000, late_data_policy=policy)
    for seed in (1, 2):
        batches = _stream(seed)
        restart = len(batches) // 2 if seed == 2 else None
        got, w_cells = _run(yaml_text, batches, options, True, restart)
        want, w_objects = _run(yaml_text, batches, options, False, restart)
        assert any(isinstance(e, WindowBatch) for e in got), "the cell path ran"
        assert not any(isinstance(e, WindowBatch) for e in want), "the object path ran"
        assert _canonical(want), "the comparison must not be vacuous"
        assert _canonical(got) == _canonical(want)
        s_cells, s_objects = w_cells.status()[1], w_objects.status()[1]
        for name in ("samples_in", "dropped_late", "forwarded_late", "windows_emitted", "holes"):
            assert s_cells[name] == s_objects[name], name
        assert s_objects["dropped_late"] + s_objects["forwarded_late"] > 0, "late samples ran"


def test_cell_rows_are_named_by_group_key_then_sub_key():
    text = agg_yaml("MultipleSum", 10, None, ("job",), ("code",))
    config = load_config(text)
    router = Router(list(config.aggregations), 1)
    worker = Worker(config.aggregations, EngineOptions(allowed_lateness_ms=0))
    ids = SeriesIds()
    samples = [({"__name__": "m", "job": j, "code": c}, 1_000, 1.0) for j in "ab" for c in "xy"]
    samples += [({"__name__": "m", "job": j, "code": "x"}, 20_000, 5.0) for j in "ab"]
    out = []
    for item in router.route(ids.batch(samples))[0]:
        out += worker.process(item)
    (batch,) = [e for e in out if isinstance(e, WindowBatch)]
    assert sorted(batch.keys) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert batch.group_width == 1
    again = WindowBatch.from_bytes(batch.to_bytes())
    assert again.group_width == 1 and again.kind == "MultipleSum"
    by_group = {o.key: acc.stats() for o, acc in again.pairs()}
    assert by_group[("a",)] == {
        "keys": [
            {"key": ("x",), "stats": {"sum": 1.0, "count": 1}},
            {"key": ("y",), "stats": {"sum": 1.0, "count": 1}},
        ]
    }
    assert worker.status()[1]["windows_emitted"] == 2  # two groups, four cells


def test_cell_table_interns_pairs_once_and_survives_a_restore():
    groups, subs = [("g0",), ("g1",)], [("s0",), ("s1",), ("s2",)]
    table = CellTable()
    a = table.intern(np.array([1, 0, 1, 1]), np.array([2, 0, 2, 1]), groups, subs)
    b = table.intern(np.array([0, 1, 0]), np.array([0, 1, 2]), groups, subs)
    assert a.tolist() == [a[0], a[1], a[0], a[3]] and len(set(a.tolist())) == 3
    assert b[0] == a[1] and b[1] == a[3] and len(table) == 4
    assert [table.keys[c] for c in b.tolist()] == [("g0", "s0"), ("g1", "s1"), ("g0", "s2")]
    again = CellTable.restore(table.snapshot(), groups, subs)
    assert again.keys == table.keys
    c = again.intern(np.array([1, 0, 1]), np.array([2, 2, 0]), groups, subs)
    assert c[0] == a[0] and c[1] == b[2] and c[2] == 4
    cells, old, target = again.of_groups(np.array([1]), np.array([7]), np.array([9]), 2)
    assert sorted(again.cell_gid[cells].tolist()) == [1, 1, 1] and set(target.tolist()) == {9}
    assert set(old.tolist()) == {7}


def test_process_workers_ship_cell_batches_that_read_as_inline_ones():
    from precompute.engine import PrecomputeEngine
    from precompute.output import CapturingSink

    config = load_config(agg_yaml("MultipleLast", 30, 10, ("job", "instance"), ("code",)))
    batches = _stream(5, n=600)

    def run(backend: str, workers: int) -> dict:
        options = EngineOptions(
            num_workers=workers, backend=backend, flush_interval_ms=0, allowed_lateness_ms=5_000
        )
        sink = CapturingSink()
        engine = PrecomputeEngine(type(config)(config.aggregations, options), sink)
        ids = SeriesIds()
        for samples in batches:
            engine.on_batch(ids.batch(samples))
        engine.close_all()
        engine.stop(snapshot=False)
        return _canonical(sink.outputs)

    inline = run("inline", 1)
    assert inline and run("process", 2) == inline


@pytest.mark.parametrize("agg_type", ["MultipleSum", "MultipleLast"])
def test_a_snapshot_of_keyed_objects_restored_into_cells_loses_no_open_pane(agg_type):
    """An older build's snapshot (open panes as keyed objects) restored by a cell-path worker:
    the object panes still close, and the windows merge to what one uninterrupted run gives."""
    yaml_text = agg_yaml(agg_type, 30, 10, ("job", "instance"), ("code",))
    config = load_config(yaml_text)
    options = EngineOptions(allowed_lateness_ms=5_000)
    batches = _stream(3)
    want, _ = _run(yaml_text, batches, options, False, None)
    router = Router(list(config.aggregations), 1)
    worker = Worker(config.aggregations, options, cells=False)
    ids, got = SeriesIds(), []
    half = len(batches) // 2
    for i, samples in enumerate(batches):
        if i == half:
            snap = pickle.loads(pickle.dumps(worker.snapshot()))
            assert snap[1]["panes"], "object panes were open at the restart"
            worker = Worker(config.aggregations, options, cells=True)
            worker.restore(snap)
        for item in router.route(ids.batch(samples))[0]:
            got += worker.process(item)
    got += worker.close_all()
    assert _canonical(got) == _canonical(want)
