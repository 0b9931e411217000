"""``CountValues``: ``count_values("label", v)``: one output series per (group, distinct value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import group_ids, merge_same_labels
from planner.nodes.aggregate import grouping_key
from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector
from promql.errors import ExecutionError
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class CountValues(PlanNode):
    label: str
    input: PlanNode
    grouping: tuple[str, ...] = ()
    without: bool = False

    INPUTS = ("input",)

    def params(self):
        return [("label", self.label), ("without" if self.without else "by", list(self.grouping))]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        if not _valid_label_name(self.label):
            raise ExecutionError(f'invalid label name "{self.label}"')
        k = grid.n_steps
        if vec.n_series == 0:
            return InstantVector.empty(k)
        # Upstream sets the value label on each series first and groups afterwards, so the
        # series' own label of that name never takes part, and ``without`` naming the value
        # label drops it again (the counts of all values then share one group).
        names = frozenset(self.grouping) - {self.label}
        if self.without:
            names = names | {self.label}
        gids, groups = group_ids([grouping_key(ls, names, self.without) for ls in vec.labels])
        from udfs.aggregation import count_values, format_value_label

        keep_value = not (self.without and self.label in self.grouping)
        values = np.where(vec.present, vec.values, 0.0) if keep_value else np.zeros_like(vec.values)
        out_group, out_value, counts, out_present = count_values(
            values, vec.present, gids, len(groups)
        )
        labels = []
        for g, v in zip(out_group.tolist(), out_value.tolist(), strict=True):  # per output series
            base = dict(groups[g])
            if keep_value:
                base[self.label] = format_value_label(v)
            labels.append(tuple(sorted(base.items())))
        out = InstantVector(labels, np.asarray(counts, np.float64), np.asarray(out_present, bool))
        return merge_same_labels(out)


def _valid_label_name(name: str) -> bool:
    return bool(name) and "\x00" not in name
