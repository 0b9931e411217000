"""Per-step answers of an aggregation over a precomputed inference, kept across queries.

``sum by (l) (rate(x[5m]))`` over 1,000 steps of 1,000 series: with the inference's steps cached
(``planner.cached_steps``) a refresh still copies a million cells out of the cache, drops their
names and sums them again, ~10 ms for ten numbers per step. A step-local aggregation's answer at
a step is as much a function of the stored windows as its input's, so it is kept the same way:
in ``planner.step_cache``, under the same invalidation (records written since, holes, table
rebuilt), validated against the same series list, keyed by the aggregation and the inference.

Only steps the inference answered from stored windows alone are kept; the others (the newest,
still open windows, raw stitches) are evaluated on their sub-grids every time through the
ordinary nodes, which is also where their annotations come from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from planner.cached_steps import step_context
from planner.labels import DROPPED_NAMES, all_distinct
from planner.nodes.range_function import KEEPS_NAME, non_counter_info
from planner.nodes.raw_windows import contiguous_runs
from planner.nodes.summary_infer import CLEAN_STEPS, SummaryInfer, notes_for
from planner.raw_step_cache import run_exact
from planner.stmt import Grid
from planner.values import InstantVector

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.nodes.aggregate import PromAggregate

# Aggregations whose answer at a step depends on that step's input alone, without a parameter.
STEP_LOCAL = frozenset({"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"})


def cached_aggregate(node: PromAggregate, ex: Executor, grid: Grid) -> InstantVector | None:
    """``node``'s answer with cached steps reused, or None when it cannot be cached (the caller
    then evaluates it as usual)."""
    infer = node.input
    if (
        node.op not in STEP_LOCAL
        or node.param is not None
        or not isinstance(infer, SummaryInfer)
        or infer.fn in KEEPS_NAME
        or ex.options.delayed_name_removal
    ):
        return None
    ctx = step_context(infer.fn, infer.input, ex, grid)
    if ctx is None:
        return None
    if ctx.raw_only:  # e.g. an instant query at now: the exact subtree, planned for this grid
        notes_for(ex, node)["raw_steps"] = grid.n_steps
        vec = ex.run(infer.exact, grid)
        assert isinstance(vec, InstantVector)
        return node.reduce(ex, vec, grid.n_steps, [])
    key = ("aggregate", node.op, node.grouping, node.without, ctx.key)
    groups = _groups(ctx.labels, node)
    if groups is None:  # series equal but for metadata labels: the plain path reports the clash
        return None
    found = ctx.lookup(key, rows=len(groups))
    values, present, clean = found.values, found.present, found.hit.copy()
    times = grid.times()
    beyond = ctx.beyond
    row_of: dict | None = None
    for a, b in contiguous_runs(np.flatnonzero(~found.hit)):
        for lo, hi, raw in _split(beyond, a, b):
            sub = Grid(int(times[lo]), int(times[hi]), grid.step_ms if hi > lo else 0)
            part, run_clean = _evaluate(node, ex, sub, raw)
            if row_of is None:
                row_of = {g: i for i, g in enumerate(groups)}
            rows = np.array([row_of.get(ls, -1) for ls in part.labels], dtype=np.int64)
            if (rows < 0).any():  # a group the whole range did not list (a new series)
                return None
            values[rows, lo : hi + 1] = part.values
            present[rows, lo : hi + 1] = part.present
            clean[lo : hi + 1] = run_clean
    fresh = np.flatnonzero(clean & ~found.hit)
    if fresh.shape[0]:
        ctx.store(key, fresh, values, present)
    hits = int(found.hit.sum())
    if hits:
        notes_for(ex, node)["cached_steps"] = hits
        if infer.fn in ("rate", "increase") and present[:, found.hit].any():
            # What the inference would have said about the cached steps: a configuration's
            # series all carry its metric name, so one label set speaks for all.
            non_counter_info(ex, ctx.labels[:1], infer.pos)
    rows = np.flatnonzero(present.any(axis=1))
    if rows.shape[0] == len(groups):
        return InstantVector(list(groups), values, present)
    return InstantVector([groups[i] for i in rows.tolist()], values[rows], present[rows])


def _groups(labels: list, node: PromAggregate) -> list | None:
    """The aggregation's output label sets for these input series, in first-seen order (None:
    two series have the same labels without their names, which the exact path reports)."""
    from planner.nodes.aggregate import grouped

    named = DROPPED_NAMES.many(labels)
    if not all_distinct(named):
        return None
    return list(grouped(named, frozenset(node.grouping), node.without)[1])


def _split(beyond: np.ndarray, a: int, b: int) -> list[tuple[int, int, bool]]:
    """Steps ``a..b`` as runs ``(first, last, past the newest closed window)``."""
    cut = a + int(np.argmax(beyond[a : b + 1])) if beyond[a : b + 1].any() else b + 1
    runs = [(a, cut - 1, False)] if cut > a else []
    return [*runs, (cut, b, True)] if cut <= b else runs


def _evaluate(
    node: PromAggregate, ex: Executor, sub: Grid, raw: bool
) -> tuple[InstantVector, np.ndarray | bool]:
    """The aggregation on ``sub`` and which of its steps came from stored windows alone.

    Steps past the newest closed window go straight to the inference's exact subtree: the
    windows cannot answer them, so looking them up would only find that out."""
    infer = node.input
    assert isinstance(infer, SummaryInfer)
    if raw:
        vec = run_exact(ex, infer.exact, sub)
        run_clean: np.ndarray | bool = False
    else:
        ex.scan_cache.pop((CLEAN_STEPS, id(infer)), None)
        vec = ex.run(infer, sub)
        run_clean = ex.scan_cache.pop((CLEAN_STEPS, id(infer)), False)
    assert isinstance(vec, InstantVector)
    return node.reduce(ex, vec, sub.n_steps, []), run_clean
