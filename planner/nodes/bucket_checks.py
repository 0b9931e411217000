"""Annotations of ``histogram_quantile`` over classic buckets that the kernels do not report.

Detects where upstream's ``ensureMonotonicAndIgnoreSmallDeltas`` (``promql/quantile.go``) has to
force monotonicity, and builds its merged info text (buckets, max diff, count, time span).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from udfs.histogram_kernels import forced_monotonicity_cells

MONOTONICITY_INFO = (
    "PromQL info: input to histogram_quantile needed to be fixed for monotonicity "
    "(see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
)


@dataclass(frozen=True)
class ForcedMonotonicity:
    cells: int  # (group, step) cells that needed fixing
    min_bucket: float
    max_bucket: float
    max_diff: float
    min_ts: int
    max_ts: int

    def message(self, metric_name: str, position: str | None) -> str:
        text = MONOTONICITY_INFO
        if metric_name:
            text += f' for metric name "{metric_name}"'
        if position is None:
            return text
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.min_ts // 1000))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.max_ts // 1000))
        return (
            f"{text}, from buckets {_g(self.min_bucket)} to {_g(self.max_bucket)}, with a max "
            f"diff of {self.max_diff:.2g}, over {self.cells} samples from {start} to {end} "
            f"({position})"
        )


def _g(v: float) -> str:
    if np.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:g}"


def forced_monotonicity(
    upper: np.ndarray,
    counts: np.ndarray,
    present: np.ndarray,
    offsets: np.ndarray,
    times: np.ndarray,
) -> list[ForcedMonotonicity | None]:
    """Per group of buckets (rows ``offsets[g]:offsets[g+1]``, sorted by upper bound): where
    decreases had to be removed, or ``None`` where none had to be."""
    n_groups = offsets.shape[0] - 1
    forced = np.zeros((n_groups, counts.shape[1]), dtype=bool)
    bucket_range = np.empty((n_groups, 2))
    max_diff = np.empty(n_groups)
    forced_monotonicity_cells(
        np.ascontiguousarray(upper, dtype=np.float64),
        np.asarray(counts, dtype=np.float64),
        np.asarray(present, dtype=bool),
        np.ascontiguousarray(offsets, dtype=np.int64),
        forced,
        bucket_range,
        max_diff,
    )
    found: list[ForcedMonotonicity | None] = [None] * n_groups
    for g in np.flatnonzero(forced.any(axis=1)).tolist():  # only the groups that needed fixing
        steps = times[forced[g]]
        found[g] = ForcedMonotonicity(
            int(forced[g].sum()),
            float(bucket_range[g, 0]),
            float(bucket_range[g, 1]),
            float(max_diff[g]),
            int(steps.min()),
            int(steps.max()),
        )
    return found
