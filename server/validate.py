"""Checks shared by every ingest decoder, and the one constructor of their ``SampleBatch``.

Label names follow Prometheus 3's UTF-8 scheme: any non-empty valid UTF-8 string (the decoders
reject invalid UTF-8 while decoding). Labels with empty values are dropped, as Prometheus does,
so a series whose ``__name__`` is missing or empty is rejected. Timestamps must lie in the years
0001–9999 (what RFC 3339 can express); anything else is a client bug, not data.
"""

from __future__ import annotations

import numpy as np

from server.errors import IngestRejected
from storage.model import METRIC_NAME, Labels, MetricMetadata, SampleBatch

MIN_TIMESTAMP_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def canonical_labels(pairs: list[tuple[str, str]]) -> Labels:
    """Sorted label set with empty values dropped; raises ``IngestRejected`` when invalid."""
    names = set()
    for name, _ in pairs:
        if not name:
            raise IngestRejected(f"invalid label name: empty name in {_show(pairs)}", "labels")
        if name in names:
            raise IngestRejected(f"duplicate label name {name!r} in {_show(pairs)}", "labels")
        names.add(name)
    labels = tuple(sorted(p for p in pairs if p[1] != ""))
    if not any(name == METRIC_NAME for name, _ in labels):
        raise IngestRejected(f"missing or empty metric name (__name__) in {_show(pairs)}", "labels")
    return labels


def _show(pairs: list[tuple[str, str]]) -> str:
    text = "{" + ", ".join(f"{n}={v!r}" for n, v in pairs) + "}"
    return text if len(text) <= 200 else text[:197] + "..."


def check_timestamps(timestamps: np.ndarray) -> None:
    """Vectorized range check of int64 millisecond timestamps."""
    if timestamps.size == 0:
        return
    lo, hi = int(timestamps.min()), int(timestamps.max())
    if lo < MIN_TIMESTAMP_MS or hi > MAX_TIMESTAMP_MS:
        bad = lo if lo < MIN_TIMESTAMP_MS else hi
        raise IngestRejected(
            f"timestamp {bad} ms is outside the accepted range "
            f"[{MIN_TIMESTAMP_MS}, {MAX_TIMESTAMP_MS}] (years 0001-9999)",
            "timestamps",
        )


def make_batch(
    series: list[Labels],
    sample_series: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
    metadata: list[MetricMetadata] | None = None,
    series_keys: list[bytes] | None = None,
) -> SampleBatch:
    """Final checks and the ``SampleBatch``; series without samples are dropped."""
    check_timestamps(timestamps)
    sample_series = np.ascontiguousarray(sample_series, dtype=np.int64)
    used = np.bincount(sample_series, minlength=len(series)) > 0 if len(series) else None
    if used is not None and not used.all():
        # Remap to the series that carry samples, so the store creates no empty series.
        keep = np.flatnonzero(used)
        remap = np.full(len(series), -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        sample_series = remap[sample_series]
        series = [series[i] for i in keep.tolist()]
        if series_keys is not None:
            series_keys = [series_keys[i] for i in keep.tolist()]
    return SampleBatch(
        series=series,
        sample_series=sample_series,
        timestamps=np.ascontiguousarray(timestamps, dtype=np.int64),
        values=np.ascontiguousarray(values, dtype=np.float64),
        metadata=list(metadata or []),
        series_keys=series_keys,
    )
