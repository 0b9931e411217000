"""``Sort``: ``sort``, ``sort_desc``, ``sort_by_label``, ``sort_by_label_desc`` (instant order).

Only an instant query's output order is observable; range results are ordered by label set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import label_value
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.values import InstantVector
from promql.ast import PosRange
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

SORT_IN_RANGE = (
    "PromQL warning: sort is ineffective for range queries since results are always "
    "ordered by labels"
)


@dataclass(frozen=True)
class Sort(PlanNode):
    fn: str
    input: PlanNode
    label_names: tuple[str, ...] = ()
    pos: PosRange | None = field(default=None, compare=False)

    INPUTS = ("input",)

    def params(self):
        out: list[tuple[str, object]] = [("fn", self.fn)]
        if self.label_names:
            out.append(("labels", list(self.label_names)))
        return out

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        if self.fn not in ("sort", "sort_desc", "sort_by_label", "sort_by_label_desc"):
            raise PlanError(f"Sort: unknown function {self.fn}")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        if grid.n_steps != 1:
            ex.warn(SORT_IN_RANGE, self.pos)
            return vec
        if vec.n_series <= 1:
            return vec
        if self.fn in ("sort", "sort_desc"):
            order = _by_value(vec.values[:, 0], self.fn == "sort_desc")
        else:
            order = _by_labels(vec, self.label_names, self.fn == "sort_by_label_desc")
        return vec.select(order)


def _by_value(values: np.ndarray, desc: bool) -> np.ndarray:
    """Stable value order with NaN last in both directions (as upstream's sort functions)."""
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values if desc else values)
    return np.lexsort((key, nan))


def _by_labels(vec: InstantVector, names: tuple[str, ...], desc: bool) -> np.ndarray:
    """Natural order of the given labels, then the whole label set (as upstream)."""

    def key(i: int):
        return (
            tuple(_natural(label_value(vec.labels[i], n)) for n in names),
            vec.labels[i],
        )

    order = sorted(range(vec.n_series), key=key, reverse=desc)
    return np.array(order, dtype=np.int64)


@functools.lru_cache(maxsize=4096)
def _natural(text: str) -> tuple:
    """Natural sort key: digit runs compare as numbers."""
    import re

    parts = re.split(r"(\d+)", text)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")
