"""The accumulator contract: merge == update on the union, serialization round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.accumulators.base import Accumulator
from precompute.accumulators.registry import ALL, make_accumulator
from precompute.config import load_config
from tests.precompute.helpers import agg_yaml

PARAMS = {
    "DatasketchesKLL": "{K: 200}",
    "CountMinSketch": "{depth: 3, width: 64}",
    "CountMinSketchWithHeap": "{depth: 3, width: 64, heapsize: 4}",
    "HydraKLL": "{row_num: 2, col_num: 8, K: 200}",
}


def fresh(type_name: str) -> Accumulator:
    cfg = load_config(agg_yaml(type_name, params=PARAMS.get(type_name, "{}")))
    return make_accumulator(cfg.aggregations[0])


def data(seed: int):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 100_000, 150)).astype(np.int64)
    vals = np.cumsum(rng.uniform(0, 3, 150))
    keys = [("x",), ("y",), ('q"u;o',)]
    return vals, ts, keys, rng.integers(0, 3, 150)


def normalize(stats):
    if isinstance(stats, dict):
        out = {k: normalize(v) for k, v in stats.items()}
        if "keys" in out:
            out["keys"] = sorted(out["keys"], key=lambda e: e["key"])
        return out
    if isinstance(stats, list):
        return [normalize(v) for v in stats]
    if isinstance(stats, float):
        return round(stats, 6)
    return stats


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.type_name)
def test_merging_two_halves_equals_updating_with_everything(cls):
    vals, ts, keys, ids = data(1)
    whole = fresh(cls.type_name)
    whole.update(vals, ts, keys, ids)
    first, second = fresh(cls.type_name), fresh(cls.type_name)
    first.update(vals[:70], ts[:70], keys, ids[:70])
    second.update(vals[70:], ts[70:], keys, ids[70:])
    first.merge(second)
    assert normalize(first.stats()) == normalize(whole.stats())


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.type_name)
def test_serialization_round_trips_and_carries_type_and_version(cls):
    vals, ts, keys, ids = data(2)
    acc = fresh(cls.type_name)
    acc.update(vals, ts, keys, ids)
    raw = acc.to_bytes()
    assert raw[:2] == b"TA" and raw[2] == cls.type_code and raw[3] == cls.version
    back = Accumulator.from_bytes(raw)
    assert type(back) is cls
    assert normalize(back.stats()) == normalize(acc.stats())


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.type_name)
def test_take_returns_the_state_and_leaves_an_empty_accumulator(cls):
    vals, ts, keys, ids = data(3)
    acc = fresh(cls.type_name)
    acc.update(vals, ts, keys, ids)
    before = normalize(acc.stats())
    taken = acc.take()
    assert normalize(taken.stats()) == before
    assert acc.is_empty()


def test_a_newer_format_version_is_rejected_with_a_clear_error():
    raw = bytearray(fresh("Sum").to_bytes())
    raw[3] = 99
    with pytest.raises(ValueError, match="newer"):
        Accumulator.from_bytes(bytes(raw))


def test_merging_different_types_is_refused():
    with pytest.raises(TypeError):
        fresh("Sum").merge(fresh("Count"))
