"""``LabelFunction``: ``label_replace`` / ``label_join``: per-series label rewriting.

Only label sets change (one kernel call per series, never per step); series that end up with the
same labels merge, and an overlap at one step is Prometheus' duplicate-labelset error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import merge_same_labels
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.values import InstantVector
from promql.errors import ExecutionError
from promql.types import ValueType
from storage.model import METRIC_NAME

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class LabelFunction(PlanNode):
    fn: str  # label_replace | label_join
    input: PlanNode
    args: tuple[str, ...] = ()

    INPUTS = ("input",)

    def params(self):
        return [("fn", self.fn), ("args", [repr(a) for a in self.args])]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        if self.fn == "label_replace" and len(self.args) != 4:
            raise PlanError("label_replace takes dst, replacement, src, regex")
        if self.fn == "label_join" and len(self.args) < 2:
            raise PlanError("label_join takes dst, separator, src...")
        if self.fn not in ("label_replace", "label_join"):
            raise PlanError(f"LabelFunction: unknown function {self.fn}")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        from udfs import label_functions

        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        fn = getattr(label_functions, self.fn)
        try:
            fn((), *self.args)  # upstream validates the regex even when no series arrives
            labels = [fn(ls, *self.args) for ls in vec.labels]
        except ExecutionError:
            raise
        except Exception as e:  # invalid regex / label name: upstream's panic becomes an error
            raise ExecutionError(str(e)) from e
        drop = vec.drop_name
        if drop is not None and self.args[0] == METRIC_NAME:
            drop = np.zeros_like(drop)  # setting __name__ explicitly cancels a pending removal
        return merge_same_labels(InstantVector(labels, vec.values, vec.present, drop))
