"""``ScalarCalc``: scalar-valued expressions: literals, ``time()``, ``scalar(v)``, scalar ops.

Also ``StringLiteral`` (a string expression's value) lives here: both are tiny and leaf-like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode, require_type
from planner.values import InstantVector, ScalarValue, StringValue
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

KINDS = ("literal", "time", "scalar", "binary", "negate")


@dataclass(frozen=True)
class ScalarCalc(PlanNode):
    """``kind``: literal (``value``), time, scalar (of a vector), binary (``op``), negate."""

    kind: str
    args: tuple[PlanNode, ...] = ()
    value: float = 0.0
    op: str = ""

    INPUTS = ("args",)
    OUTPUT = ValueType.SCALAR

    def params(self):
        if self.kind == "literal":
            return [("value", self.value)]
        if self.kind == "binary":
            return [("op", self.op)]
        return [("fn", self.kind)]

    def __eq__(self, other: object) -> bool:
        # NaN literals are equal to each other (plans compare structurally in tests and rules).
        if not isinstance(other, ScalarCalc):
            return NotImplemented
        same_value = self.value == other.value or (
            math.isnan(self.value) and math.isnan(other.value)
        )
        return (self.kind, self.args, self.op) == (other.kind, other.args, other.op) and same_value

    def __hash__(self) -> int:
        return hash((self.kind, self.args, repr(self.value), self.op))

    def check(self) -> None:
        if self.kind not in KINDS:
            raise PlanError(f"ScalarCalc: unknown kind {self.kind}")
        expected = {"literal": 0, "time": 0, "scalar": 1, "binary": 2, "negate": 1}[self.kind]
        if len(self.args) != expected:
            raise PlanError(f"ScalarCalc {self.kind}: expected {expected} inputs")
        if self.kind == "scalar":
            require_type(self, self.args[0], ValueType.VECTOR)
        elif self.kind in ("binary", "negate"):
            for a in self.args:
                require_type(self, a, ValueType.SCALAR)

    def execute(self, ex: Executor, grid: Grid) -> ScalarValue:
        k = grid.n_steps
        if self.kind == "literal":
            return ScalarValue(np.full(k, self.value, dtype=np.float64))
        if self.kind == "time":
            return ScalarValue(grid.times().astype(np.float64) / 1000.0)
        if self.kind == "scalar":
            vec = ex.run(self.args[0], grid)
            assert isinstance(vec, InstantVector)
            return ScalarValue(scalar_of(vec, k))
        vals = [ex.run(a, grid) for a in self.args]
        assert all(isinstance(v, ScalarValue) for v in vals)
        if self.kind == "negate":
            return ScalarValue(-vals[0].values)  # type: ignore[union-attr]
        from planner.nodes.binary_join import apply_op

        a, b = vals[0].values, vals[1].values  # type: ignore[union-attr]
        values, keep = apply_op(self.op, a, b)
        if keep is not None:
            values = keep.astype(np.float64)  # scalar comparisons always need ``bool``
        return ScalarValue(np.asarray(values, dtype=np.float64))


def scalar_of(vec: InstantVector, k: int) -> np.ndarray:
    """``scalar(v)``: the single element's value per step, NaN when there is not exactly one."""
    if vec.n_series == 0:
        return np.full(k, np.nan)
    count = vec.present.sum(axis=0)
    first = np.argmax(vec.present, axis=0)
    picked = vec.values[first, np.arange(k)]
    return np.where(count == 1, picked, np.nan)


@dataclass(frozen=True)
class StringLiteral(PlanNode):
    value: str

    OUTPUT = ValueType.STRING

    def params(self):
        return [("value", '"' + self.value.replace('"', '\\"') + '"')]

    def execute(self, ex: Executor, grid: Grid) -> StringValue:
        return StringValue(self.value)
