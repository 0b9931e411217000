"""The data model shared by ingest, storage, precompute and the query engine.

A series is identified by its label set: a tuple of ``(name, value)`` pairs sorted by name, which
includes ``__name__``. Samples are ``(int64 milliseconds, float64)``. Prometheus' stale marker is
a NaN with a specific bit pattern and must survive every copy bit-exact, so values are handled as
float64 arrays (never Python floats that might be re-boxed as the canonical NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Labels = tuple[tuple[str, str], ...]
"""A label set, sorted by label name, including ``__name__`` when the series has one."""

METRIC_NAME = "__name__"

STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus' staleness marker (``value.StaleNaN``)."""

STALE_NAN: float = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0].item()


def is_stale(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the stale markers in a float64 array (bit-exact, not just NaN)."""
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64) == STALE_NAN_BITS


def make_labels(pairs: dict[str, str] | list[tuple[str, str]]) -> Labels:
    """Canonical label set: sorted by name, empty values dropped (as Prometheus does)."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return tuple(sorted((k, v) for k, v in items if v != ""))


def metric_name(labels: Labels) -> str | None:
    for name, value in labels:
        if name == METRIC_NAME:
            return value
    return None


@dataclass(frozen=True)
class MetricMetadata:
    """Metric metadata as remote write carries it (``type`` uses Prometheus' lowercase names)."""

    metric_family_name: str
    type: str = "unknown"
    help: str = ""
    unit: str = ""


@dataclass(frozen=True)
class SampleBatch:
    """One decoded ingest request: columnar samples that point at a list of series.

    ``sample_series[i]`` is the index into ``series`` of sample ``i``. Arrays have equal length.
    ``series_keys``, when a decoder has them, are the raw encoded label bytes of each series; the
    store may use them as a cheap intern key before building ``Labels`` tuples.
    """

    series: list[Labels]
    sample_series: np.ndarray  # int32 / int64, index into ``series``
    timestamps: np.ndarray  # int64 milliseconds
    values: np.ndarray  # float64 (stale markers bit-exact)
    metadata: list[MetricMetadata] = field(default_factory=list)
    series_keys: list[bytes] | None = None

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass(frozen=True)
class DurableBatch:
    """What ingest listeners (the precompute engine) receive once a batch is durable.

    ``series_ids[i]`` is the store's id for ``batch.series[i]``; ``sample_series_ids`` is the per
    sample series id (``series_ids[batch.sample_series]``), precomputed once for all listeners.
    """

    batch: SampleBatch
    series_ids: np.ndarray  # int64, one per batch.series entry
    sample_series_ids: np.ndarray  # int64, one per sample
