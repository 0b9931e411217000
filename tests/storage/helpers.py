"""Small builders shared by the storage tests."""

from __future__ import annotations

import numpy as np

from promql.types import Matcher, MatchType
from storage.db import SeriesSet, Storage
from storage.model import SampleBatch, make_labels


def lab(name: str, **labels: str):
    return make_labels({"__name__": name, **labels})


def batch(rows: list[tuple[tuple, int, float]], metadata=None) -> SampleBatch:
    """A batch from ``(labels, ts, value)`` rows."""
    series: list = []
    where: dict = {}
    idx = []
    for labels, _, _ in rows:
        if labels not in where:
            where[labels] = len(series)
            series.append(labels)
        idx.append(where[labels])
    return SampleBatch(
        series=series,
        sample_series=np.array(idx, dtype=np.int64),
        timestamps=np.array([r[1] for r in rows], dtype=np.int64),
        values=np.array([r[2] for r in rows], dtype=np.float64),
        metadata=list(metadata or []),
    )


def eq(name: str, value: str) -> Matcher:
    return Matcher(MatchType.EQUAL, name, value)


def everything(db: Storage, mint: int = -(1 << 60), maxt: int = 1 << 60) -> SeriesSet:
    return db.select([Matcher(MatchType.REGEX, "__name__", ".+")], mint, maxt)


def as_dict(s: SeriesSet) -> dict:
    """``{labels: [(ts, value bits), ...]}``: bit-exact comparable content of a select."""
    out = {}
    bits = s.values.view(np.uint64)
    for i, labels in enumerate(s.labels):
        lo, hi = int(s.offsets[i]), int(s.offsets[i + 1])
        out[labels] = list(zip(s.timestamps[lo:hi].tolist(), bits[lo:hi].tolist(), strict=True))
    return out
