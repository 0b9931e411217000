"""``StepInvariant``: evaluate a subtree once (its value cannot change by step), broadcast it.

Introduced by the ``step_invariant`` rule around ``@``-pinned selectors/subqueries and literals,
as Prometheus' ``StepInvariantExpr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanNode
from planner.stmt import Grid
from planner.values import InstantVector, RangeVector, ScalarValue, Value
from promql.types import ValueType
from udfs.range_array import RangeArray

if TYPE_CHECKING:
    from planner.executor import Executor


def single_step(grid: Grid) -> Grid:
    return Grid(grid.start_ms, grid.start_ms, 0)


@dataclass(frozen=True)
class StepInvariant(PlanNode):
    input: PlanNode

    INPUTS = ("input",)

    @property
    def output_type(self) -> ValueType:
        return self.input.output_type

    def execute(self, ex: Executor, grid: Grid) -> Value:
        k = grid.n_steps
        value = ex.run(self.input, single_step(grid))
        if k == 1:
            return value
        if isinstance(value, ScalarValue):
            return ScalarValue(np.repeat(value.values[:1], k))
        if isinstance(value, InstantVector):
            return InstantVector(
                value.labels,
                np.repeat(value.values[:, :1], k, axis=1),
                np.repeat(value.present[:, :1], k, axis=1),
                value.drop_name,
                None if value.sample_ts is None else np.repeat(value.sample_ts[:, :1], k, axis=1),
            )
        if isinstance(value, RangeVector):
            ra = value.ranges
            ra = RangeArray(
                ra.values,
                ra.timestamps,
                np.repeat(ra.offsets, k),
                np.repeat(ra.sizes, k),
                np.repeat(ra.window_ends, k),
                ra.range_ms,
            )
            return RangeVector(value.labels, ra, k, value.drop_name)
        return value
