"""Optimizer rules, one module each exposing one function of the same name.

``optimize`` runs them in order and returns every intermediate plan (for EXPLAIN VERBOSE).
A rule never changes a plan's output type.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.nodes.base import PlanError, PlanNode, walk
from planner.rules.constant_folding import constant_folding
from planner.rules.pushdown import pushdown
from planner.rules.step_invariant import step_invariant
from planner.stmt import Grid


@dataclass(frozen=True)
class RuleStep:
    rule: str
    plan: PlanNode


def optimize(plan: PlanNode, grid: Grid) -> list[RuleStep]:
    steps: list[RuleStep] = []
    out_type = plan.output_type
    for name, rule in (
        ("constant_folding", lambda p: constant_folding(p)),
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
