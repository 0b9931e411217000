"""``InstantManipulate``: per step, the newest sample in ``(t - lookback, t]`` (Prometheus 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.extended_range import smoothed_instant
from planner.nodes.timing import describe_at, selector_times
from planner.values import InstantVector, SeriesData
from promql.types import ValueType
from storage.model import is_stale
from udfs.windows import instant_lookback

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class InstantManipulate(PlanNode):
    """Instant-vector selection; a stale marker as the newest sample means "no value".

    ``keep_timestamps`` also returns each chosen sample's own timestamp (for ``timestamp()``).
    """

    input: PlanNode
    lookback_ms: int
    offset_ms: int = 0
    at_ms: int | None = None
    keep_timestamps: bool = False
    smoothed: bool = False  # experimental: interpolate at t (input without stale markers)

    INPUTS = ("input",)

    def params(self):
        out: list[tuple[str, object]] = [("lookback", self.lookback_ms)]
        out += describe_at(self.offset_ms, self.at_ms)
        if self.keep_timestamps:
            out.append(("timestamps", True))
        if self.smoothed:
            out.append(("smoothed", True))
        return out

    def check(self) -> None:
        require_type(self, self.input, ValueType.NONE)
        if self.lookback_ms <= 0:
            raise PlanError("InstantManipulate: lookback must be positive")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        data = ex.run(self.input, grid)
        assert isinstance(data, SeriesData)
        k = grid.n_steps
        if data.n_series == 0 or k == 0:
            return InstantVector.empty(k)
        ex.check_cells(data.n_series, k)
        times = selector_times(grid, self.offset_ms, self.at_ms)
        if self.smoothed:
            values, present = smoothed_instant(
                data.offsets, data.timestamps, data.values, times, self.lookback_ms
            )
            rows = np.nonzero(present.any(axis=1))[0]
            return InstantVector(
                [data.labels[i] for i in rows.tolist()],
                np.where(present, values, 0.0)[rows],
                present[rows],
            )
        index, present = instant_lookback(data.offsets, data.timestamps, times, self.lookback_ms)
        index = np.where(present, index, 0)
        if data.n_samples == 0:
            return InstantVector.empty(k)
        values = data.values[index]
        present = present & ~is_stale(values)
        keep = present.any(axis=1)
        rows = np.nonzero(keep)[0]
        sample_ts = data.timestamps[index][rows] if self.keep_timestamps else None
        return InstantVector(
            [data.labels[i] for i in rows.tolist()],
            np.where(present, values, 0.0)[rows],
            present[rows],
            None,
            sample_ts,
        )
