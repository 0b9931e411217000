"""``pushdown``: give every ``SeriesScan`` the exact time range its selector reads.

Walks the plan top-down with the grid each node is evaluated on (a ``Subquery`` evaluates its
input on its own aligned grid, a ``StepInvariant`` on a single step), and applies offset, ``@``
and the lookback or range window: a selector at times ``T`` reads ``(min T - width, max T]``,
i.e. the inclusive range ``[min T - width + 1, max T]``. Repeated matchers are dropped.
"""

from __future__ import annotations

import dataclasses

from planner.nodes.base import PlanNode
from planner.nodes.instant_manipulate import InstantManipulate
from planner.nodes.range_manipulate import RangeManipulate
from planner.nodes.series_scan import SeriesScan
from planner.nodes.step_invariant import StepInvariant, single_step
from planner.nodes.subquery import Subquery
from planner.nodes.timing import selector_times
from planner.stmt import Grid


def _set_range(node: PlanNode, mint: int, maxt: int) -> PlanNode:
    if isinstance(node, SeriesScan):
        matchers = tuple(dict.fromkeys(node.matchers))
        return dataclasses.replace(node, matchers=matchers, mint_ms=mint, maxt_ms=maxt)
    return node.map_inputs(lambda c: _set_range(c, mint, maxt))


def _push(node: PlanNode, grid: Grid) -> PlanNode:
    if isinstance(node, (InstantManipulate, RangeManipulate)):
        if grid.n_steps == 0:  # an empty subquery grid reads nothing
            return node.map_inputs(lambda c: _set_range(c, 1, 0))
        times = selector_times(grid, node.offset_ms, node.at_ms)
        width, after = _reach(node)
        mint, maxt = int(times.min()) - width + 1, int(times.max()) + after
        return node.map_inputs(lambda c: _set_range(c, mint, maxt))
    child_grid = grid
    if isinstance(node, Subquery):
        child_grid = node.inner_grid(grid)
    elif isinstance(node, StepInvariant):
        child_grid = single_step(grid)
    return node.map_inputs(lambda c: _push(c, child_grid))


def _reach(node: InstantManipulate | RangeManipulate) -> tuple[int, int]:
    """How far before and after each evaluation time a selector reads."""
    if isinstance(node, InstantManipulate):
        return node.lookback_ms, node.lookback_ms if node.smoothed else 0
    if node.mode == "anchored":
        return node.range_ms + node.lookback_ms, 0
    if node.mode == "smoothed":
        return node.range_ms + node.lookback_ms, node.lookback_ms
    return node.range_ms, 0


def pushdown(plan: PlanNode, grid: Grid) -> PlanNode:
    return _push(plan, grid)


# Exact subtrees pushed down at run time (the newest steps of a precomputed answer, read raw on
# every refresh), by subtree identity and grid; bounded, it starts over when full.
_PUSHED: dict[tuple[int, Grid], tuple[PlanNode, PlanNode]] = {}
_PUSHED_KEPT = 1024


def pushed(plan: PlanNode, grid: Grid) -> PlanNode:
    """``pushdown`` remembered for a subtree of a kept plan (``engine.Engine.plan``)."""
    key = (id(plan), grid)
    kept = _PUSHED.get(key)
    if kept is not None and kept[0] is plan:
        return kept[1]
    out = _push(plan, grid)
    if len(_PUSHED) >= _PUSHED_KEPT:
        _PUSHED.clear()
    _PUSHED[key] = (plan, out)
    return out
