"""``InstantFunction``: a ``udfs.instant_functions`` kernel over the whole values matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import with_names_dropped
from planner.nodes.base import PlanNode, require_type
from planner.nodes.range_function import kernel_for
from planner.values import InstantVector, ScalarValue
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class InstantFunction(PlanNode):
    """Element-wise ``fn(vector, *scalar_params)``; drops ``__name__`` like every such function."""

    fn: str
    input: PlanNode
    params_: tuple[PlanNode, ...] = ()

    INPUTS = ("input", "params_")

    def params(self):
        return [("fn", self.fn)]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        for p in self.params_:
            require_type(self, p, ValueType.SCALAR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        from udfs import instant_functions

        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        scalars = []
        for p in self.params_:
            sv = ex.run(p, grid)
            assert isinstance(sv, ScalarValue)
            scalars.append(sv.values[None, :])
        if vec.n_series == 0:
            return vec
        kernel = kernel_for(instant_functions, self.fn)
        with np.errstate(all="ignore"):
            values = np.asarray(kernel(vec.values, *scalars), dtype=np.float64)
        values = np.broadcast_to(values, vec.values.shape)
        present = vec.present
        if self.fn == "clamp":  # upstream: max < min yields an empty vector at that step
            present = present & instant_functions.clamp_present(*scalars)
        out = InstantVector(vec.labels, np.where(present, values, 0.0), present, vec.drop_name)
        return with_names_dropped(out, ex.options.delayed_name_removal)
