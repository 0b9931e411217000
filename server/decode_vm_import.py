"""VictoriaMetrics JSON-lines import (``/api/v1/import``) → ``SampleBatch``.

One line per series: ``{"metric":{"__name__":..,...},"values":[..],"timestamps":[..]}``.
Values are JSON numbers; for the values JSON cannot express this decoder accepts what
``/api/v1/export`` writes (``server/export.py``): ``null`` or ``"NaN"`` for NaN, ``"Infinity"`` /
``"-Infinity"`` (also ``"+Inf"``, ``"Inf"``, ``"-Inf"``), and ``"StaleNaN"`` for Prometheus'
stale marker. Timestamps are integer milliseconds. All lines are parsed with one orjson call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from server.errors import IngestRejected
from server.validate import canonical_labels, make_batch
from storage.model import STALE_NAN_BITS, Labels, SampleBatch

_SPECIAL: dict[str, int] = {
    "NaN": np.array(math.nan).view(np.uint64).item(),
    "StaleNaN": STALE_NAN_BITS,
    "Infinity": np.array(math.inf).view(np.uint64).item(),
    "+Inf": np.array(math.inf).view(np.uint64).item(),
    "Inf": np.array(math.inf).view(np.uint64).item(),
    "-Infinity": np.array(-math.inf).view(np.uint64).item(),
    "-Inf": np.array(-math.inf).view(np.uint64).item(),
}
_NAN_BITS = _SPECIAL["NaN"]


def _reject(lineno: int, message: str) -> IngestRejected:
    return IngestRejected(f"line {lineno}: {message}", "json")


def _parse_all(body: bytes) -> list[tuple[int, Any]]:
    lines = [(i + 1, ln) for i, ln in enumerate(body.split(b"\n")) if ln.strip()]
    try:
        docs = orjson.loads(b"[" + b",".join(ln for _, ln in lines) + b"]")
        return [(no, doc) for (no, _), doc in zip(lines, docs, strict=True)]
    except orjson.JSONDecodeError:
        pass
    # Find the offending line for a precise message (error path only).
    for no, ln in lines:
        try:
            orjson.loads(ln)
        except orjson.JSONDecodeError as err:
            raise _reject(no, f"invalid JSON: {err}") from err
    raise IngestRejected("invalid JSON lines body", "json")


def _labels(no: int, metric: Any) -> Labels:
    if not isinstance(metric, dict):
        raise _reject(no, '"metric" must be an object of label names to string values')
    for name, value in metric.items():
        if not isinstance(value, str):
            raise _reject(no, f"label {name!r} must have a string value, got {value!r}")
    try:
        return canonical_labels(list(metric.items()))
    except IngestRejected as err:
        raise _reject(no, err.message) from err


def _values(no: int, raw: Any) -> np.ndarray:
    if not isinstance(raw, list):
        raise _reject(no, '"values" must be an array')
    if all(type(v) is float or type(v) is int for v in raw):
        return np.array(raw, dtype=np.float64)  # fast path: plain JSON numbers
    bits = np.empty(len(raw), dtype=np.uint64)
    for i, v in enumerate(raw):
        if v is None:
            bits[i] = _NAN_BITS
        elif isinstance(v, str) and v in _SPECIAL:
            bits[i] = _SPECIAL[v]
        elif isinstance(v, int | float) and not isinstance(v, bool):
            bits[i] = np.array(float(v)).view(np.uint64)
        else:
            raise _reject(no, f"invalid sample value {v!r}")
    return bits.view(np.float64)


def _timestamps(no: int, raw: Any) -> np.ndarray:
    if not isinstance(raw, list) or not all(type(t) is int for t in raw):
        raise _reject(no, '"timestamps" must be an array of integer milliseconds')
    try:
        return np.array(raw, dtype=np.int64)
    except OverflowError as err:
        raise _reject(no, "timestamp out of the int64 range") from err


def decode_vm_import(body: bytes) -> SampleBatch:
    """Decode a JSON-lines body; raises ``IngestRejected`` naming the offending line."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 at byte {err.start}", "utf8") from err
    series: list[Labels] = []
    values: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    for no, doc in _parse_all(body):
        if not isinstance(doc, dict):
            raise _reject(no, "each line must be a JSON object")
        missing = {"metric", "values", "timestamps"} - doc.keys()
        if missing:
            raise _reject(no, f"missing field(s) {sorted(missing)}")
        labels = _labels(no, doc["metric"])
        vals = _values(no, doc["values"])
        ts = _timestamps(no, doc["timestamps"])
        if vals.shape != ts.shape:
            raise _reject(no, f"{vals.size} values but {ts.size} timestamps")
        series.append(labels)
        values.append(vals)
        stamps.append(ts)
    counts = np.array([v.size for v in values], dtype=np.int64)
    sample_series = np.repeat(np.arange(len(series), dtype=np.int64), counts)
    empty_f, empty_i = np.empty(0, np.float64), np.empty(0, np.int64)
    return make_batch(
        series,
        sample_series,
        np.concatenate(stamps) if stamps else empty_i,
        np.concatenate(values) if values else empty_f,
    )
