"""``EmptyMetric``: ``vector(s)``: one series without labels carrying a scalar at every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector, ScalarValue
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class EmptyMetric(PlanNode):
    input: PlanNode

    INPUTS = ("input",)

    def check(self) -> None:
        require_type(self, self.input, ValueType.SCALAR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        sv = ex.run(self.input, grid)
        assert isinstance(sv, ScalarValue)
        k = sv.n_steps
        return InstantVector([()], sv.values.reshape(1, k).copy(), np.ones((1, k), dtype=bool))
