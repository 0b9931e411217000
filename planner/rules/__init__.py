"""Optimizer rules, one module each exposing one function of the same name.

``optimize`` runs them in order and returns every intermediate plan (for EXPLAIN VERBOSE).
A rule never changes a plan's output type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from planner.nodes.base import PlanError, PlanNode, walk
from planner.rules.constant_folding import constant_folding
from planner.rules.pushdown import pushdown
from planner.rules.step_invariant import step_invariant
from planner.rules.use_precompute import use_precompute
from planner.stmt import Grid

if TYPE_CHECKING:
    from planner.nodes.precomputed_scan import SketchSource


@dataclass(frozen=True)
class RuleStep:
    rule: str
    plan: PlanNode
    notes: tuple[str, ...] = field(default=(), compare=False)  # e.g. why no precompute rewrite


def optimize(plan: PlanNode, grid: Grid, precompute: SketchSource | None = None) -> list[RuleStep]:
    steps: list[RuleStep] = []
    out_type = plan.output_type
    plan = constant_folding(plan)
    steps.append(RuleStep("constant_folding", plan))
    if precompute is not None:  # only listed when configured: EXPLAIN VERBOSE stays unchanged
        plan, notes = use_precompute(plan, grid, precompute)
        steps.append(RuleStep("use_precompute", plan, tuple(notes)))
    if plan.output_type != out_type:
        raise PlanError("constant_folding/use_precompute changed the output type")
    for name, rule in (
        ("step_invariant", lambda p: step_invariant(p, grid)),
        ("pushdown", lambda p: pushdown(p, grid)),
    ):
        plan = rule(plan)
        if plan.output_type != out_type:
            raise PlanError(f"rule {name} changed the output type")
        steps.append(RuleStep(name, plan))
    for node in walk(plan):
        node.check()
    return steps
