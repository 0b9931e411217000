"""VictoriaMetrics JSON-lines export of raw samples, values printed to round-trip exactly.

Each series is one line ``{"metric":{..},"values":[..],"timestamps":[..]}`` (``__name__`` first,
as VictoriaMetrics writes it). Finite values are printed by orjson's shortest round-trip
formatting (ryu), so parsing a line back yields the identical float64. JSON has no non-finite
numbers; VictoriaMetrics prints NaN as ``null`` and we do too. Infinities are the strings
``"Infinity"`` / ``"-Infinity"``. VictoriaMetrics drops Prometheus stale markers from exports;
we keep them, as the string ``"StaleNaN"``, so a backup restored through ``/api/v1/import``
(which reads all of these forms) is bit-exact and a stale marker is never mistaken for a NaN.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson

from storage.model import METRIC_NAME, STALE_NAN_BITS

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_CHUNK_BYTES = 1 << 20


def _values_json(values: np.ndarray) -> bytes:
    if np.isfinite(values).all():
        return orjson.dumps(np.ascontiguousarray(values), option=_NUMPY)
    bits = values.view(np.uint64)
    out: list[object] = values.tolist()
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        v = values[i]
        if bits[i] == STALE_NAN_BITS:
            out[i] = "StaleNaN"
        elif np.isnan(v):
            out[i] = None
        else:
            out[i] = "Infinity" if v > 0 else "-Infinity"
    return orjson.dumps(out)


def _metric_json(labels: tuple[tuple[str, str], ...]) -> bytes:
    ordered = {k: v for k, v in labels if k == METRIC_NAME}
    ordered.update((k, v) for k, v in labels if k != METRIC_NAME)
    return orjson.dumps(ordered)


def export_lines(ss: object, seen: set[int]) -> Iterator[bytes]:
    """Chunks of export lines for a ``SeriesSet``, skipping series ids already in ``seen``."""
    labels = ss.labels  # type: ignore[attr-defined]
    ids = ss.series_ids.tolist()  # type: ignore[attr-defined]
    offsets = ss.offsets.tolist()  # type: ignore[attr-defined]
    ts, vals = ss.timestamps, ss.values  # type: ignore[attr-defined]
    buf: list[bytes] = []
    size = 0
    for i, sid in enumerate(ids):
        lo, hi = offsets[i], offsets[i + 1]
        if sid in seen or hi == lo:
            continue
        seen.add(sid)
        line = b"".join(
            (
                b'{"metric":',
                _metric_json(labels[i]),
                b',"values":',
                _values_json(vals[lo:hi]),
                b',"timestamps":',
                orjson.dumps(np.ascontiguousarray(ts[lo:hi]), option=_NUMPY),
                b"}\n",
            )
        )
        buf.append(line)
        size += len(line)
        if size >= _CHUNK_BYTES:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)
