"""``Absent``: ``absent(v)`` / ``absent_over_time(r)``: 1 at the steps where the input is empty.

The output label set is derived at plan time from the selector's equality matchers (upstream
``createLabelsForAbsentFunction``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector, RangeVector
from promql.types import ValueType
from storage.model import Labels

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class Absent(PlanNode):
    input: PlanNode
    labels: Labels = ()

    INPUTS = ("input",)

    def params(self):
        return [("labels", [f'{k}="{v}"' for k, v in self.labels])]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR, ValueType.MATRIX)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        value = ex.run(self.input, grid)
        k = grid.n_steps
        if isinstance(value, RangeVector):
            sizes = value.ranges.sizes.reshape(value.n_series, k)
            any_present = (sizes > 0).any(axis=0)
        else:
            assert isinstance(value, InstantVector)
            any_present = value.present.any(axis=0)
        present = ~any_present
        if not present.any():
            return InstantVector.empty(k)
        return InstantVector([self.labels], np.ones((1, k)), present.reshape(1, k))
