"""Shared fixtures: an in-memory store loaded from compact series descriptions, and an engine.

While ``udfs.binary`` is not yet committed by the kernels engineer, a tiny temporary kernel with
the agreed signature is installed for these tests only (Go semantics for ``%``: ``math.Mod``).
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

from planner.engine import Engine, EngineOptions
from storage.db import Storage
from storage.model import SampleBatch, make_labels


def _install_temporary_binary_kernel() -> None:
    try:
        importlib.import_module("udfs.binary")
        return
    except ImportError:
        pass
    mod = types.ModuleType("udfs.binary")
    ops = {
        "+": np.add,
        "-": np.subtract,
        "*": np.multiply,
        "/": np.divide,
        "%": np.fmod,
        "^": np.power,
        "atan2": np.arctan2,
    }
    cmp = {
        "==": np.equal,
        "!=": np.not_equal,
        ">": np.greater,
        "<": np.less,
        ">=": np.greater_equal,
        "<=": np.less_equal,
    }

    def arith(op, a, b):
        with np.errstate(all="ignore"):
            return ops[op](np.asarray(a, np.float64), np.asarray(b, np.float64))

    def compare(op, a, b):
        return cmp[op](np.asarray(a, np.float64), np.asarray(b, np.float64))

    mod.arith, mod.compare = arith, compare
    sys.modules["udfs.binary"] = mod
    import udfs

    udfs.binary = mod  # type: ignore[attr-defined]


_install_temporary_binary_kernel()


def load(storage: Storage, data: dict[str, tuple[list[int], list[float]]]) -> None:
    """``{'name{a="1"}': (timestamps_ms, values)}`` into ``storage``."""
    series, sample_series, ts, vs = [], [], [], []
    for i, (text, (times, values)) in enumerate(data.items()):
        series.append(_labels(text))
        sample_series.append(np.full(len(times), i, dtype=np.int64))
        ts.append(np.asarray(times, dtype=np.int64))
        vs.append(np.asarray(values, dtype=np.float64))
    storage.append(
        SampleBatch(series, np.concatenate(sample_series), np.concatenate(ts), np.concatenate(vs))
    )


def _labels(text: str):
    name, _, rest = text.partition("{")
    pairs = {"__name__": name} if name else {}
    rest = rest.rstrip("}")
    for part in filter(None, (p.strip() for p in rest.split(","))):
        k, _, v = part.partition("=")
        pairs[k.strip()] = v.strip().strip('"')
    return make_labels(pairs)


def every(step_s: int, n: int, start_s: int = 0) -> list[int]:
    return [(start_s + i * step_s) * 1000 for i in range(n)]


@pytest.fixture
def storage():
    st = Storage.in_memory()
    yield st
    st.close()


@pytest.fixture
def engine(storage):
    return Engine(storage, EngineOptions())


def as_dict(result) -> dict:
    """``{labels-tuple: values-list}`` of a vector or matrix result."""
    return {s.labels: [float(v) for v in s.values] for s in result.series}
