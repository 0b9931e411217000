"""Optimizer rules: pushdown ranges, constant folding, step-invariant hoisting; plan invariants."""

from __future__ import annotations

import pytest

from planner.engine import Engine
from planner.logical import logical_plan
from planner.nodes.base import PlanError, walk
from planner.nodes.scalar_calc import ScalarCalc
from planner.nodes.series_scan import SeriesScan
from planner.nodes.step_invariant import StepInvariant
from planner.rules import optimize
from planner.rules.constant_folding import constant_folding
from planner.rules.pushdown import pushdown
from planner.rules.step_invariant import step_invariant
from planner.stmt import EvalStmt
from promql.parser import parse


def _plan(query: str, start: int, end: int, step: int):
    stmt = EvalStmt(parse(query), start, end, step)
    return stmt, logical_plan(stmt)


def _scans(plan):
    return [n for n in walk(plan) if isinstance(n, SeriesScan)]


def test_pushdown_gives_an_instant_selector_its_lookback_window():
    stmt, plan = _plan("foo", 1_000_000, 1_000_000, 0)
    (scan,) = _scans(pushdown(plan, stmt.grid))
    assert (scan.mint_ms, scan.maxt_ms) == (1_000_000 - 300_000 + 1, 1_000_000)


def test_pushdown_applies_offset_and_range_over_the_whole_grid():
    stmt, plan = _plan("rate(foo[1m] offset 10m)", 1_000_000, 2_000_000, 10_000)
    (scan,) = _scans(pushdown(plan, stmt.grid))
    assert (scan.mint_ms, scan.maxt_ms) == (1_000_000 - 600_000 - 60_000 + 1, 2_000_000 - 600_000)


def test_pushdown_pins_at_selectors_to_their_time():
    stmt, plan = _plan("foo @ 50", 1_000_000, 2_000_000, 10_000)
    (scan,) = _scans(pushdown(plan, stmt.grid))
    assert (scan.mint_ms, scan.maxt_ms) == (50_000 - 300_000 + 1, 50_000)


def test_pushdown_reads_the_subquery_grid_and_its_lookback():
    stmt, plan = _plan("max_over_time(foo[10m:1m])", 3_600_000, 3_600_000, 0)
    (scan,) = _scans(pushdown(plan, stmt.grid))
    # inner grid: 3000s+60s .. 3600s; each inner step looks back 5m
    assert (scan.mint_ms, scan.maxt_ms) == (3_060_000 - 300_000 + 1, 3_600_000)


def test_constant_folding_collapses_scalar_arithmetic():
    _, plan = _plan("foo * (2 + 3 * -1)", 0, 0, 0)
    folded = constant_folding(plan)
    literals = [n for n in walk(folded) if isinstance(n, ScalarCalc)]
    assert [(n.kind, n.value) for n in literals] == [("literal", -1.0)]


def test_constant_folding_leaves_time_alone():
    _, plan = _plan("time() + 1", 0, 0, 0)
    assert constant_folding(plan) == plan


def test_step_invariant_wraps_pinned_subtrees_only_in_range_queries():
    stmt, plan = _plan("sum(rate(foo[1m] @ 100)) + bar", 0, 600_000, 60_000)
    wrapped = step_invariant(plan, stmt.grid)
    hoisted = [n for n in walk(wrapped) if isinstance(n, StepInvariant)]
    assert len(hoisted) == 1 and hoisted[0].input.name == "PromAggregate"
    instant, plan = _plan("sum(rate(foo[1m] @ 100)) + bar", 0, 0, 0)
    assert step_invariant(plan, instant.grid) == plan


def test_step_invariant_does_not_hoist_time_dependent_functions():
    stmt, plan = _plan("timestamp(foo @ 100) + minute(vector(1))", 0, 600_000, 60_000)
    wrapped = step_invariant(plan, stmt.grid)
    assert [n.input.name for n in walk(wrapped) if isinstance(n, StepInvariant)] == [
        "InstantManipulate"
    ]


def test_optimize_checks_every_node_and_keeps_the_output_type():
    stmt, plan = _plan(
        "sum by (job) (rate(foo[5m])) / on(job) group_left count(bar)", 0, 60_000, 10_000
    )
    steps = optimize(plan, stmt.grid)
    assert [s.rule for s in steps] == ["constant_folding", "step_invariant", "pushdown"]
    assert steps[-1].plan.output_type == plan.output_type
    assert all(s.mint_ms is not None for s in _scans(steps[-1].plan))


def test_a_node_with_a_wrong_input_type_fails_its_check():
    from planner.nodes.range_function import RangeFunction

    with pytest.raises(PlanError):
        RangeFunction("rate", ScalarCalc("literal", value=1.0)).check()


def test_plans_are_deterministic(storage):
    engine = Engine(storage)
    q = 'histogram_quantile(0.9, sum by (le) (rate(h_bucket{job=~"a|b"}[5m])))'
    a = engine.explain(q, 0, 3_600_000, 60_000, verbose=True).text
    b = engine.explain(q, 0, 3_600_000, 60_000, verbose=True).text
    assert a == b
