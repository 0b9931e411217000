"""``constant_folding``: scalar arithmetic over literals becomes one literal (exact semantics).

The folded value comes from the same kernels execution uses, so ``2 ^ 0.5`` or ``-5 % 3``
fold exactly as they would evaluate.
"""

from __future__ import annotations

import numpy as np

from planner.nodes.base import PlanNode, transform_up
from planner.nodes.negate import Negate
from planner.nodes.scalar_calc import ScalarCalc


def _literal(node: PlanNode) -> float | None:
    if isinstance(node, ScalarCalc) and node.kind == "literal":
        return node.value
    return None


def _fold(node: PlanNode) -> PlanNode:
    if isinstance(node, Negate):
        v = _literal(node.input)
        return node if v is None else ScalarCalc("literal", value=-v)
    if isinstance(node, ScalarCalc) and node.kind == "binary":
        a, b = _literal(node.args[0]), _literal(node.args[1])
        if a is None or b is None:
            return node
        from planner.nodes.binary_join import apply_op

        values, keep = apply_op(node.op, np.array([a]), np.array([b]))
        result = float(keep[0]) if keep is not None else float(values[0])
        return ScalarCalc("literal", value=result)
    return node


def constant_folding(plan: PlanNode) -> PlanNode:
    return transform_up(plan, _fold)
