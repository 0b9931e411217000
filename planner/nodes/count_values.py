"""``CountValues``: ``count_values("label", v)``: one output series per (group, distinct value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import group_ids
from planner.nodes.aggregate import grouping_key
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.values import InstantVector
from promql.errors import ExecutionError
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


def format_value(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if np.isnan(value):
        return "NaN"
    if np.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return np.format_float_positional(value, trim="-")


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
        if not self.label:
            raise PlanError("CountValues needs a label name")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        if not _valid_label_name(self.label):
            raise ExecutionError(f'invalid label name "{self.label}"')
        k = grid.n_steps
        if vec.n_series == 0:
            return InstantVector.empty(k)
        names = frozenset(self.grouping)
        if not self.without:
            names = names | {self.label}
        gids, groups = group_ids([grouping_key(ls, names, self.without) for ls in vec.labels])
        rows, cols = np.nonzero(vec.present)
        vals = vec.values[rows, cols]
        # Distinct (group, value) pairs; labels are built once per pair, never per sample.
        uniq_vals, val_idx = np.unique(vals, return_inverse=True)
        text = [format_value(v) for v in uniq_vals.tolist()]
        pair = gids[rows] * len(uniq_vals) + val_idx
        uniq_pairs, pair_idx = np.unique(pair, return_inverse=True)
        pair_labels = []
        for p in uniq_pairs.tolist():
            g, vi = divmod(p, len(uniq_vals))
            base = dict(groups[g])
            base[self.label] = text[vi]
            pair_labels.append(tuple(sorted(base.items())))
        ids_of_pair, out_labels = group_ids(pair_labels)
        out_ids = ids_of_pair[pair_idx]
        counts = np.zeros((len(out_labels), k), dtype=np.float64)
        np.add.at(counts, (out_ids, cols), 1.0)
        return InstantVector(out_labels, counts, counts > 0)


def _valid_label_name(name: str) -> bool:
    return bool(name) and "\x00" not in name
