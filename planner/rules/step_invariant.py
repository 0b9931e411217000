"""``step_invariant``: wrap subtrees whose value cannot change by step in ``StepInvariant``.

Mirrors Prometheus' ``PreprocessExpr``: a selector or subquery pinned with ``@`` is invariant;
literals are; a node is when all its inputs are, except the time-dependent ones (``time()``,
``timestamp()``, ``predict_linear``, the date functions). Only subtrees containing a pinned selector are wrapped (a
literal is already cheap), and only for range queries (an instant query has one step anyway).
"""

from __future__ import annotations

from planner.logical import DATE_FUNCTIONS
from planner.nodes.base import PlanNode
from planner.nodes.instant_function import InstantFunction
from planner.nodes.instant_manipulate import InstantManipulate
from planner.nodes.range_function import RangeFunction
from planner.nodes.range_manipulate import RangeManipulate
from planner.nodes.scalar_calc import ScalarCalc, StringLiteral
from planner.nodes.series_normalize import SeriesNormalize
from planner.nodes.series_scan import SeriesScan
from planner.nodes.step_invariant import StepInvariant
from planner.nodes.subquery import Subquery
from planner.nodes.timestamp import Timestamp
from planner.stmt import Grid


def _analyze(node: PlanNode) -> tuple[PlanNode, bool, bool]:
    """``(rewritten, invariant, pinned)`` for ``node``."""
    if isinstance(node, (InstantManipulate, RangeManipulate)):
        pinned = node.at_ms is not None
        return node, pinned, pinned
    if isinstance(node, (SeriesScan, SeriesNormalize)):
        return node, True, False
    if isinstance(node, Subquery):
        inner = _wrap_inside(node.input)
        rebuilt = node if inner is node.input else node.map_inputs(lambda _c: inner)
        pinned = node.at_ms is not None
        return rebuilt, pinned, pinned
    if isinstance(node, StringLiteral) or (isinstance(node, ScalarCalc) and node.kind == "literal"):
        return node, True, False
    results = [_analyze(c) for c in node.inputs]
    invariant = all(r[1] for r in results) and _time_free(node)
    pinned = any(r[2] for r in results)
    if invariant:
        return node, True, pinned
    # Not invariant here: wrap each invariant child that holds a pinned selector.
    wrapped = iter(StepInvariant(r[0]) if r[1] and r[2] else r[0] for r in results)
    return node.map_inputs(lambda _c: next(wrapped)), False, pinned


def _time_free(node: PlanNode) -> bool:
    if isinstance(node, ScalarCalc) and node.kind == "time":
        return False
    if isinstance(node, Timestamp):
        return False
    if isinstance(node, RangeFunction) and node.fn == "predict_linear":
        return False  # predicts relative to the step time, not the pinned window end
    return not (isinstance(node, InstantFunction) and node.fn in DATE_FUNCTIONS)


def _wrap_inside(node: PlanNode) -> PlanNode:
    rewritten, invariant, pinned = _analyze(node)
    return StepInvariant(rewritten) if invariant and pinned else rewritten


def step_invariant(plan: PlanNode, grid: Grid) -> PlanNode:
    if grid.n_steps <= 1:
        return plan
    return _wrap_inside(plan)
