"""``SetOp``: ``and``, ``or``, ``unless`` (many-to-many, by join signature, per step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import merge_same_labels
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.matching import present_by_signature, signature_ids
from planner.values import InstantVector
from promql.ast import VectorMatching
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class SetOp(PlanNode):
    op: str  # and | or | unless
    lhs: PlanNode
    rhs: PlanNode
    matching: VectorMatching | None = None

    INPUTS = ("lhs", "rhs")

    def params(self):
        out: list[tuple[str, object]] = [("op", self.op)]
        m = self.matching
        if m is not None and m.has_matching:
            out.append(("on" if m.on else "ignoring", list(m.matching_labels)))
        return out

    def check(self) -> None:
        require_type(self, self.lhs, ValueType.VECTOR)
        require_type(self, self.rhs, ValueType.VECTOR)
        if self.op not in ("and", "or", "unless"):
            raise PlanError(f"SetOp: unknown operator {self.op}")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        lhs, rhs = ex.run(self.lhs, grid), ex.run(self.rhs, grid)
        assert isinstance(lhs, InstantVector) and isinstance(rhs, InstantVector)
        if self.op == "or":
            if rhs.n_series == 0:
                return lhs
            if lhs.n_series == 0:
                return rhs
        elif lhs.n_series == 0 or (rhs.n_series == 0 and self.op == "and"):
            return InstantVector.empty(lhs.n_steps)
        elif rhs.n_series == 0:
            return lhs
        sig_l, sig_r, keys = signature_ids(lhs.labels, rhs.labels, self.matching)
        if self.op == "or":
            left_has = present_by_signature(sig_l, lhs.present, len(keys))
            rhs_present = rhs.present & ~left_has[sig_r]
            return _concat(lhs, InstantVector(rhs.labels, rhs.values, rhs_present, rhs.drop_name))
        right_has = present_by_signature(sig_r, rhs.present, len(keys))[sig_l]
        present = lhs.present & (right_has if self.op == "and" else ~right_has)
        keep = present.any(axis=1)
        rows = np.nonzero(keep)[0]
        out = InstantVector(lhs.labels, np.where(present, lhs.values, 0.0), present, lhs.drop_name)
        return out.select(rows)


def _concat(a: InstantVector, b: InstantVector) -> InstantVector:
    keep_b = b.present.any(axis=1)
    b = b.select(np.nonzero(keep_b)[0])
    drop = None
    if a.drop_name is not None or b.drop_name is not None:
        drop = np.concatenate([a.drop_mask(), b.drop_mask()])
    out = InstantVector(
        a.labels + b.labels,
        np.concatenate([a.values, np.where(b.present, b.values, 0.0)]),
        np.concatenate([a.present, b.present]),
        drop,
    )
    return merge_same_labels(out)
