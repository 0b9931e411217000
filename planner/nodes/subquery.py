"""``Subquery``: evaluate an instant-vector plan on its own aligned grid, then window it.

As Prometheus 3 (``subqueryTimeRange`` in ``promql/engine.go``): the inner grid starts at the
first multiple of the subquery step after ``first_eval - offset - range`` (absolute alignment) and
ends at the last outer evaluation time minus the offset. The inner result becomes per-series
sample arrays and each outer step takes the window ``(t - offset - range, t - offset]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.range_manipulate import windows_over
from planner.nodes.timing import describe_at, selector_times
from planner.stmt import Grid
from planner.values import InstantVector, RangeVector, SeriesData

if TYPE_CHECKING:
    from planner.executor import Executor

from promql.types import ValueType


def go_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero), which the alignment formula relies on."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def inner_grid(eval_times: np.ndarray, range_ms: int, step_ms: int) -> Grid:
    """The subquery's grid for outer evaluation times already shifted by offset / pinned by @."""
    first, last = int(eval_times.min()), int(eval_times.max())
    start = step_ms * go_div(first - range_ms, step_ms)
    if start <= first - range_ms:
        start += step_ms
    return Grid(start, last, step_ms)


@dataclass(frozen=True)
class Subquery(PlanNode):
    input: PlanNode
    range_ms: int
    step_ms: int
    offset_ms: int = 0
    at_ms: int | None = None

    INPUTS = ("input",)
    OUTPUT = ValueType.MATRIX

    def params(self):
        return [
            ("range", self.range_ms),
            ("step", self.step_ms),
            *describe_at(self.offset_ms, self.at_ms),
        ]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        if self.step_ms <= 0 or self.range_ms <= 0:
            raise PlanError("Subquery: range and step must be positive")

    def inner_grid(self, grid: Grid) -> Grid:
        return inner_grid(
            selector_times(grid, self.offset_ms, self.at_ms), self.range_ms, self.step_ms
        )

    def execute(self, ex: Executor, grid: Grid) -> RangeVector:
        times = selector_times(grid, self.offset_ms, self.at_ms)
        inner = self.inner_grid(grid)
        vec = ex.run(self.input, inner)
        assert isinstance(vec, InstantVector)
        data = _as_series(vec, inner.times())
        rv = windows_over(data, times, self.range_ms)
        if vec.drop_name is None:
            return rv
        keep = {ls: d for ls, d in zip(vec.labels, vec.drop_name.tolist(), strict=True)}
        flags = np.array([keep[ls] for ls in rv.labels], dtype=bool)
        return RangeVector(rv.labels, rv.ranges, rv.n_steps, flags)


def _as_series(vec: InstantVector, times: np.ndarray) -> SeriesData:
    """Present points of an instant vector as concatenated per-series sample arrays."""
    rows, cols = np.nonzero(vec.present)  # row-major: series-major, time-ordered
    counts = vec.present.sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return SeriesData(list(vec.labels), offsets, times[cols], vec.values[rows, cols])
