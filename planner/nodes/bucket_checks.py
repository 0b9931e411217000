"""Annotations of ``histogram_quantile`` over classic buckets that the kernels do not report.

Detects where upstream's ``ensureMonotonicAndIgnoreSmallDeltas`` (``promql/quantile.go``) has to
force monotonicity, and builds its merged info text (buckets, max diff, count, time span).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-12
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
    upper: np.ndarray, counts: np.ndarray, present: np.ndarray, times: np.ndarray
) -> ForcedMonotonicity | None:
    """For one group's buckets (sorted by upper bound): where decreases had to be removed.

    Walks bucket positions (a few dozen), vectorized over steps, as the kernel does.
    """
    prev = np.full(counts.shape[1], np.nan)
    forced_any = np.zeros(counts.shape[1], dtype=bool)
    min_b, max_b, max_d = np.inf, -np.inf, 0.0
    for i in range(counts.shape[0]):
        cur, live = counts[i], present[i]
        first = live & np.isnan(prev)
        with np.errstate(invalid="ignore"):
            differs = live & ~first & (cur != prev)
            tiny = np.abs(cur - prev) <= TOLERANCE * np.maximum(np.abs(cur), np.abs(prev))
            forced = differs & ~tiny & (cur < prev)
        if forced.any():
            forced_any |= forced
            min_b, max_b = min(min_b, upper[i]), max(max_b, upper[i])
            max_d = max(max_d, float(np.max((prev - cur)[forced])))
        prev = np.where(first | (differs & ~tiny & ~forced), cur, prev)
    if not forced_any.any():
        return None
    steps = times[forced_any]
    return ForcedMonotonicity(
        int(forced_any.sum()), min_b, max_b, max_d, int(steps.min()), int(steps.max())
    )
