"""``RangeManipulate``: per step, the window ``(t - range, t]`` as offset/size pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.extended_range import extended_windows, first_after
from planner.nodes.timing import describe_at, selector_times
from planner.values import RangeVector, SeriesData
from promql.types import ValueType
from udfs.range_array import RangeArray
from udfs.windows import range_windows

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class RangeManipulate(PlanNode):
    """A range vector over stale-free series; windows share the sample arrays (no copies)."""

    input: PlanNode
    range_ms: int
    offset_ms: int = 0
    at_ms: int | None = None
    mode: str = ""  # experimental: "anchored" | "smoothed"
    lookback_ms: int = 0  # how far anchored/smoothed windows extend

    INPUTS = ("input",)
    OUTPUT = ValueType.MATRIX

    def params(self):
        out = [("range", self.range_ms), *describe_at(self.offset_ms, self.at_ms)]
        return out + ([("mode", self.mode)] if self.mode else [])

    def check(self) -> None:
        require_type(self, self.input, ValueType.NONE)
        if self.range_ms <= 0:
            raise PlanError("RangeManipulate: range must be positive")

    def execute(self, ex: Executor, grid: Grid) -> RangeVector:
        data = ex.run(self.input, grid)
        assert isinstance(data, SeriesData)
        ex.check_cells(data.n_series, grid.n_steps)
        times = selector_times(grid, self.offset_ms, self.at_ms)
        if self.mode:
            return _extended(data, times, self.range_ms, self.lookback_ms, self.mode)
        return windows_over(data, times, self.range_ms)


def _extended(data: SeriesData, times: np.ndarray, range_ms: int, lookback_ms: int, mode: str):
    """Windows reaching one lookback delta further (both ways when smoothed); see
    ``extended_range``. Series without any sample in any window are dropped."""
    k, n = int(times.shape[0]), data.n_series
    off, ts = data.offsets, data.timestamps
    starts, sizes = extended_windows(off, ts, times, range_ms, lookback_ms, mode == "smoothed")
    gt_start = first_after(off, ts, times - range_ms)
    ge_end = first_after(off, ts, times - 1)
    keep = sizes.reshape(n, k).any(axis=1) if n else np.zeros(0, dtype=bool)
    sel = (np.nonzero(keep)[0][:, None] * k + np.arange(k)[None, :]).ravel()
    ends = np.tile(times, int(keep.sum()))
    ra = RangeArray(data.values, ts, starts[sel], sizes[sel], ends, range_ms)
    labels = [data.labels[i] for i in np.nonzero(keep)[0].tolist()]
    return RangeVector(labels, ra, k, None, mode, gt_start[sel], ge_end[sel])


def windows_over(data: SeriesData, times: np.ndarray, range_ms: int) -> RangeVector:
    """Range vector over ``data`` for eval ``times``; series with no sample in any window go."""
    k = int(times.shape[0])
    offsets, sizes, ends = range_windows(data.offsets, data.timestamps, times, range_ms)
    n = data.n_series
    if n:
        nonempty = sizes.reshape(n, k).any(axis=1)
        if not nonempty.all():
            rows = np.nonzero(nonempty)[0]
            sel = (rows[:, None] * k + np.arange(k)[None, :]).ravel()
            offsets, sizes, ends = offsets[sel], sizes[sel], ends[sel]
            labels = [data.labels[i] for i in rows.tolist()]
            ra = RangeArray(data.values, data.timestamps, offsets, sizes, ends, range_ms)
            return RangeVector(labels, ra, k)
    ra = RangeArray(data.values, data.timestamps, offsets, sizes, ends, range_ms)
    return RangeVector(list(data.labels), ra, k)
