"""``use_precompute``: answer range functions over selectors from precomputed windows.

Replaces ``RangeFunction(fn, RangeManipulate(SeriesNormalize(SeriesScan)))`` by
``SummaryInfer(SummaryMergeMultiple(PrecomputedScan), exact=<the original subtree>)`` when
``precompute_match.choose`` finds an aggregation that can answer it. Whatever sits above the range
function (``sum by (job)``, a binary expression, ``histogram_quantile``) is left as is and works on
the per-series answer, so temporal, temporal + spatial and either arm of a binary expression are
one rewrite. An instant selector feeding an aggregation (``sum by (job) (x)``, ``topk(3, x)``,
``quantile(0.9, x offset 5m)``) becomes ``LatestSample(exact=<the InstantManipulate subtree>)``
when a ``MultipleLast`` aggregation holds each series' newest sample per window; the aggregation
node itself is unchanged. Only the top-level grid is known here, so subtrees under ``Subquery`` or
``StepInvariant`` are not rewritten. Every candidate that is not rewritten leaves a note saying
why (shown by EXPLAIN).
"""

from __future__ import annotations

import dataclasses

from planner.nodes.aggregate import PromAggregate
from planner.nodes.base import PlanNode
from planner.nodes.count_values import CountValues
from planner.nodes.instant_manipulate import InstantManipulate
from planner.nodes.latest_sample import LatestSample
from planner.nodes.precomputed_scan import PrecomputedScan, SketchSource
from planner.nodes.range_function import RangeFunction
from planner.nodes.range_manipulate import RangeManipulate
from planner.nodes.series_normalize import SeriesNormalize
from planner.nodes.series_scan import SeriesScan
from planner.nodes.step_invariant import StepInvariant
from planner.nodes.subquery import Subquery
from planner.nodes.summary_infer import SummaryInfer
from planner.nodes.summary_merge import SummaryMergeMultiple
from planner.precompute_match import (
    FUNCTION_STATS,
    LATEST,
    GridSpec,
    Target,
    choose,
    key_labels,
)
from planner.stmt import Grid
from promql.lexing import format_duration_ms


def use_precompute(
    plan: PlanNode, grid: Grid, source: SketchSource | None
) -> tuple[PlanNode, list[str]]:
    """The rewritten plan and one note per candidate (used or not, and why)."""
    if source is None:
        return plan, []
    configs = source.current()
    if not configs:
        return plan, []
    notes: list[str] = []
    spec = GridSpec(grid.start_ms, grid.step_ms)
    matched: set[int] = set()  # instant selectors already judged as an aggregation's input

    def visit(node: PlanNode) -> PlanNode:
        if isinstance(node, (Subquery, StepInvariant, LatestSample)):
            return node
        if isinstance(node, RangeFunction):
            target = _target(node)
            if target is not None:
                return _rewrite(node, target, spec, configs, source, notes)
        if isinstance(node, (PromAggregate, CountValues)):
            target = instant_target(node.input)
            if target is not None:
                matched.add(id(node.input))
                inner = _rewrite_instant(node.input, target, spec, configs, source, notes)
                node = dataclasses.replace(node, input=inner)
        elif isinstance(node, InstantManipulate) and id(node) not in matched:
            _instant_note(node, configs, notes)
        return node.map_inputs(visit)

    return visit(plan), notes


def instant_target(node: PlanNode) -> Target | None:
    """``InstantManipulate(SeriesNormalize(SeriesScan))``, markers kept, as a ``LATEST`` target."""
    if not isinstance(node, InstantManipulate) or node.smoothed or node.keep_timestamps:
        return None
    norm = node.input
    if not isinstance(norm, SeriesNormalize) or norm.drop_stale:
        return None
    if not isinstance(norm.input, SeriesScan):
        return None
    return Target(LATEST, norm.input.matchers, node.lookback_ms, node.offset_ms, node.at_ms)


def _instant_note(node: InstantManipulate, configs, notes: list[str]) -> None:
    """An instant selector that feeds no aggregation is read from raw data (the exact path reads
    just the lookback per step); say so when an aggregation exists for its metric."""
    target = instant_target(node)
    if target is not None and any(c.metric == target.metric for c in configs):
        notes.append(
            f"not precomputed: {describe_instant(target)}: only an instant selector feeding an "
            "aggregation is answered from windows"
        )


def describe_instant(target: Target) -> str:
    matchers = ",".join(f'{m.name}{m.type.value}"{m.value}"' for m in target.matchers)
    text = f"{{{matchers}}}"
    if target.offset_ms:
        text += f" offset {format_duration_ms(target.offset_ms)}"
    if target.at_ms is not None:
        text += f" @ {target.at_ms / 1000:g}"
    return text + f" (instant selector, lookback {format_duration_ms(target.range_ms)})"


def _rewrite_instant(node, target, spec, configs, source, notes) -> PlanNode:
    cfg = _choose_noted(configs, target, spec, describe_instant(target), notes)
    if cfg is None:
        return node
    return LatestSample(
        cfg, node, target.matchers, target.range_ms, target.offset_ms, target.at_ms, source
    )


def _target(node: RangeFunction) -> Target | None:
    rm = node.input
    if not isinstance(rm, RangeManipulate) or rm.mode:
        return None
    norm = rm.input
    if not isinstance(norm, SeriesNormalize) or not isinstance(norm.input, SeriesScan):
        return None
    return Target(node.fn, norm.input.matchers, rm.range_ms, rm.offset_ms, rm.at_ms)


def describe(node: RangeFunction, target: Target) -> str:
    matchers = ",".join(f'{m.name}{m.type.value}"{m.value}"' for m in target.matchers)
    return f"{node.fn}({{{matchers}}}[{format_duration_ms(target.range_ms)}])"


def _rewrite(node, target, spec, configs, source, notes) -> PlanNode:
    cfg = _choose_noted(configs, target, spec, describe(node, target), notes)
    if cfg is None:
        return node
    scan = PrecomputedScan(cfg, target.matchers, target.range_ms, target.offset_ms, source)
    merge = SummaryMergeMultiple(
        scan,
        target.range_ms,
        target.offset_ms,
        cfg.window_size_ms,
        cfg.slide_interval_ms,
        FUNCTION_STATS[node.fn],
    )
    kind = cfg.aggregation_type
    k = cfg.param("K", "k")
    label = f"{cfg.aggregation_id} ({kind}{f' k={k}' if k else ''})"
    return SummaryInfer(
        node.fn, merge, node, target.range_ms, target.offset_ms, label, node.params_, node.pos
    )


def _choose_noted(configs, target, spec, what: str, notes: list[str]):
    """The aggregation answering ``target`` (or None), with the EXPLAIN note either way."""
    match, reasons = choose(configs, target, spec)
    if match is None:
        notes.extend(f"not precomputed: {what}: {r}" for r in reasons)
        return None
    cfg = match.config
    notes.append(
        f"precomputed: {what} from aggregation {cfg.aggregation_id} "
        f"({cfg.aggregation_type}, keys {list(key_labels(cfg))}), "
        f"{match.windows_per_step} window(s) per step"
    )
    return cfg
