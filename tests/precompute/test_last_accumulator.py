"""MultipleLast: per key the newest sample (stale markers included), merged like storage."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.accumulators.base import MAGIC, Accumulator
from precompute.accumulators.last import MultipleLastAccumulator
from precompute.config import load_config
from promql.errors import BadDataError
from storage.model import STALE_NAN, is_stale
from tests.precompute.helpers import Harness, agg_yaml

KEYS = [("a",), ("b",), ('q"u;o',)]


def _rows(acc: MultipleLastAccumulator) -> dict:
    """key -> (timestamp ms, value bits, stale) for every key with a sample."""
    out = {}
    for i in acc.present().tolist():
        bits = int(np.float64(acc.last_v[i]).view(np.uint64))
        out[acc.interner.keys[i]] = (int(acc.last_t[i]), bits, bool(acc.stale[i]))
    return out


def _reference(vals, ts, ids) -> dict:
    """Slow oracle: per key the sample with the largest (timestamp, position)."""
    best: dict = {}
    for pos, (v, t, k) in enumerate(zip(vals.tolist(), ts.tolist(), ids.tolist(), strict=True)):
        if k not in best or (t, pos) >= best[k][0]:
            best[k] = ((t, pos), v)
    out = {}
    for k, ((t, _), v) in best.items():
        arr = np.array([v])
        out[KEYS[k]] = (t, int(arr.view(np.uint64)[0]), bool(is_stale(arr)[0]))
    return out


def _random(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    ts = rng.integers(0, 50, n).astype(np.int64) * 1000  # many duplicate timestamps
    vals = rng.normal(size=n)
    vals[rng.random(n) < 0.1] = STALE_NAN
    return vals, ts, rng.integers(0, len(KEYS), n)


@pytest.mark.parametrize("seed", range(5))
def test_batch_update_keeps_per_key_the_newest_sample_and_of_equal_timestamps_the_last_given(seed):
    vals, ts, ids = _random(seed)
    acc = MultipleLastAccumulator()
    acc.update(vals, ts, KEYS, ids)
    assert _rows(acc) == _reference(vals, ts, ids)


@pytest.mark.parametrize("seed", range(5))
def test_merging_later_written_parts_equals_one_update_in_write_order(seed):
    vals, ts, ids = _random(seed)
    cuts = sorted(np.random.default_rng(seed).integers(0, vals.shape[0], 3).tolist())
    parts = np.split(np.arange(vals.shape[0]), cuts)
    merged = MultipleLastAccumulator()
    for part in parts:
        piece = MultipleLastAccumulator()
        piece.update(vals[part], ts[part], KEYS, ids[part])
        merged.merge(Accumulator.from_bytes(piece.to_bytes()))  # keys in own mode too
    assert _rows(merged) == _reference(vals, ts, ids)


def test_a_stale_marker_is_kept_bit_exact_and_a_newer_sample_replaces_it():
    acc = MultipleLastAccumulator()
    acc.update(np.array([1.0, STALE_NAN]), np.array([10, 20]), KEYS, np.array([0, 0]))
    (entry,) = acc.stats()["keys"]
    assert entry["key"] == ("a",) and entry["stats"]["stale"] is True
    assert entry["stats"]["timestamp"] == 0.02 and np.isnan(entry["stats"]["last"])
    assert is_stale(acc.last_v[:1])[0]
    acc.update(np.array([5.0]), np.array([30]), KEYS, np.array([0]))
    assert _rows(acc)[("a",)] == (30, int(np.float64(5.0).view(np.uint64)), False)


def test_an_older_sample_arriving_later_does_not_replace_the_newest():
    acc = MultipleLastAccumulator()
    acc.update(np.array([1.0]), np.array([20]), KEYS, np.array([1]))
    acc.update(np.array([2.0]), np.array([10]), KEYS, np.array([1]))
    assert acc.stats()["keys"][0]["stats"] == {"last": 1.0, "timestamp": 0.02, "stale": False}


def test_serialization_round_trips_and_is_versioned():
    vals, ts, ids = _random(9)
    acc = MultipleLastAccumulator()
    acc.update(vals, ts, KEYS, ids)
    data = acc.to_bytes()
    assert data[:2] == MAGIC and data[2] == MultipleLastAccumulator.type_code and data[3] == 1
    back = Accumulator.from_bytes(data)
    assert isinstance(back, MultipleLastAccumulator) and _rows(back) == _rows(acc)
    newer = data[:3] + bytes([2]) + data[4:]
    with pytest.raises(ValueError, match="newer"):
        Accumulator.from_bytes(newer)
    assert Accumulator.from_bytes(MultipleLastAccumulator().to_bytes()).is_empty()


def test_config_accepts_multiple_last_and_refuses_rolling_up_series():
    cfg = load_config(agg_yaml("MultipleLast", grouping=["job"], aggregated=["instance"]))
    assert cfg.aggregations[0].keyed
    alias = agg_yaml("MultipleSubpopulation", sub_type="Last", grouping=["job"])
    assert load_config(alias).aggregations[0].aggregation_type == "MultipleLast"
    rollup = agg_yaml("MultipleLast", grouping=["job"]).replace("rollup: []", "rollup: [pod]")
    with pytest.raises(BadDataError, match="cannot roll up"):
        load_config(rollup)


def test_stale_markers_reach_multiple_last_windows_but_no_other_accumulator():
    yaml = agg_yaml("MultipleLast", window=10, grouping=["job"], aggregated=["instance"])
    other = agg_yaml("MultipleSum", window=10, grouping=["job"], aggregated=["instance"])
    other = other.replace("aggregationId: 1", "aggregationId: 2").replace("aggregations:\n", "")
    h = Harness(yaml + other)
    s = {"__name__": "m", "job": "j", "instance": "i0"}
    h.send([(s, 1_000, 1.0), (s, 5_000, STALE_NAN)])
    h.send([(s, 25_000, 3.0)])  # closes the window (0, 10s]
    closed = {out.aggregation_id: acc for out, acc in h.emits if out.window_end == 10_000}
    last = closed[1].stats()["keys"][0]["stats"]
    assert last["stale"] is True and last["timestamp"] == 5.0
    assert closed[2].stats()["keys"][0]["stats"] == {"sum": 1.0, "count": 1}


def test_sliding_windows_keep_the_newest_sample_across_their_panes():
    h = Harness(agg_yaml("MultipleLast", window=20, slide=10, grouping=["instance"]))
    s = {"__name__": "m", "instance": "i0"}
    h.send([(s, 12_000, 2.0), (s, 3_000, 1.0)])
    h.send([(s, 45_000, 9.0)])
    by_end = {out.window_end: acc.stats()["keys"][0]["stats"] for out, acc in h.emits}
    assert by_end[10_000]["last"] == 1.0
    assert by_end[20_000] == {"last": 2.0, "timestamp": 12.0, "stale": False}
    assert by_end[30_000]["last"] == 2.0
