"""``Timestamp``: ``timestamp(v)``: the sample's own time for a plain selector, else eval time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import with_names_dropped
from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class Timestamp(PlanNode):
    input: PlanNode

    INPUTS = ("input",)

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        if vec.sample_ts is not None:
            ts = vec.sample_ts
        else:
            ts = np.broadcast_to(grid.times()[None, :], vec.values.shape)
        values = np.where(vec.present, ts.astype(np.float64) / 1000.0, 0.0)
        out = InstantVector(vec.labels, values, vec.present, vec.drop_name)
        return with_names_dropped(out, ex.options.delayed_name_removal)
