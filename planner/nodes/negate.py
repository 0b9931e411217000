"""``Negate``: unary minus on a vector (drops ``__name__``, as upstream) or a scalar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.labels import with_names_dropped
from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector, ScalarValue, Value
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class Negate(PlanNode):
    input: PlanNode

    INPUTS = ("input",)

    @property
    def output_type(self) -> ValueType:
        return self.input.output_type

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR, ValueType.SCALAR)

    def execute(self, ex: Executor, grid: Grid) -> Value:
        v = ex.run(self.input, grid)
        if isinstance(v, ScalarValue):
            return ScalarValue(-v.values)
        assert isinstance(v, InstantVector)
        out = InstantVector(v.labels, -v.values, v.present, v.drop_name)
        return with_names_dropped(out, ex.options.delayed_name_removal)
