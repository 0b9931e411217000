"""EXPLAIN / ANALYZE rendering: deterministic ``Name: key=[value]`` text trees and JSON.

Plan-only output is a pure function of the plan (golden-tested). ANALYZE appends per-node
``elapsed_ms`` (inclusive of inputs), ``series`` and ``samples`` from the executor's stats
(``samples``: points held by the node's output; for ``SeriesScan``/``SeriesNormalize`` the raw
samples read from storage).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner.executor import Executor
from planner.nodes.base import PlanNode, _fmt
from planner.result import QueryResult
from planner.rules import RuleStep
from planner.stmt import EvalStmt


@dataclass
class Explained:
    text: str
    json: dict[str, Any]
    result: QueryResult | None = None
    steps: list[RuleStep] = field(default_factory=list)


def header(stmt: EvalStmt) -> str:
    step = 0 if stmt.is_instant else stmt.step_ms
    return (
        f"EvalStmt: range=[{stmt.start_ms}..{stmt.end_ms}], step=[{step}], "
        f"lookback=[{stmt.lookback_ms}]"
    )


def render_text(node: PlanNode, ex: Executor | None = None, depth: int = 0) -> list[str]:
    line = "  " * depth + node.explain()
    if ex is not None:
        line += _metrics_suffix(node, ex)
    lines = [line]
    for child in node.inputs:
        lines.extend(render_text(child, ex, depth + 1))
    return lines


def _metrics_suffix(node: PlanNode, ex: Executor) -> str:
    st = ex.stats_for(node)
    if st is None:
        return " | not executed"
    ms = st.wall_ns / 1e6
    extra = "".join(f", {k}=[{v}]" for k, v in _node_notes(node, ex).items())
    return (
        f" | elapsed_ms=[{ms:.3f}], calls=[{st.calls}], series=[{st.series}], "
        f"samples=[{st.samples}]{extra}"
    )


def _node_notes(node: PlanNode, ex: Executor) -> dict[str, Any]:
    """Operator-specific ANALYZE facts (e.g. windows merged by the precompute path)."""
    from planner.nodes.summary_infer import analyze_notes

    return analyze_notes(ex, node)


def render_json(node: PlanNode, ex: Executor | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "node": node.name,
        "params": {k: _fmt(v) for k, v in node.params()},
        "inputs": [render_json(c, ex) for c in node.inputs],
    }
    if ex is not None:
        st = ex.stats_for(node)
        if st is not None:
            out["metrics"] = {
                "elapsed_ms": round(st.wall_ns / 1e6, 3),
                "calls": st.calls,
                "series": st.series,
                "samples": st.samples,
                **_node_notes(node, ex),
            }
    return out


def explain_text(
    stmt: EvalStmt,
    logical: PlanNode,
    steps: list[RuleStep],
    verbose: bool,
    ex: Executor | None = None,
) -> str:
    final = steps[-1].plan if steps else logical
    lines = [header(stmt)]
    if verbose:
        lines.append("Initial logical plan:")
        lines.extend(render_text(logical, depth=1))
        previous = logical
        for step in steps:
            lines.append(f"After {step.rule}:")
            if step.plan == previous:
                lines.append("  (same as above)")
            else:
                lines.extend(render_text(step.plan, depth=1))
            previous = step.plan
        lines.append("Physical plan:" if ex is None else "Physical plan (analyzed):")
        lines.extend(render_text(final, ex, depth=1))
    else:
        lines.extend(render_text(final, ex))
    lines.extend(f"Note: {n}" for step in steps for n in step.notes)
    if ex is not None:
        lines.append(f"peak_samples=[{ex.peak_samples}]")
    return "\n".join(lines) + "\n"


def explain_json(
    stmt: EvalStmt,
    logical: PlanNode,
    steps: list[RuleStep],
    verbose: bool,
    ex: Executor | None = None,
) -> dict[str, Any]:
    final = steps[-1].plan if steps else logical
    out: dict[str, Any] = {
        "stmt": {
            "start_ms": stmt.start_ms,
            "end_ms": stmt.end_ms,
            "step_ms": 0 if stmt.is_instant else stmt.step_ms,
            "lookback_ms": stmt.lookback_ms,
        },
        "plan": render_json(final, ex),
    }
    if verbose:
        out["logical"] = render_json(logical)
        out["rules"] = [{"rule": s.rule, "plan": render_json(s.plan)} for s in steps]
    notes = [n for step in steps for n in step.notes]
    if notes:
        out["notes"] = notes
    if ex is not None:
        out["peak_samples"] = ex.peak_samples
    return out
