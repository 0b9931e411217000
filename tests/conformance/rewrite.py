"""The ``@ <eval time>`` re-run check's expression rewrite (``atModifierTestCases`` upstream).

Every selector and subquery outside a subquery gets ``@ t`` unless it has one; selectors inside
subqueries keep theirs (the subquery's own ``@`` pins them). Expressions using a function whose
result depends on the evaluation time even with step-invariant arguments are not re-run.
"""

from __future__ import annotations

import dataclasses
import re

from promql.ast import Call, Expr, MatrixSelector, SubqueryExpr, VectorSelector

# Prometheus ``promql.AtModifierUnsafeFunctions`` at the corpus' commit (d15adb9), which added
# the query-context functions ``start``/``end``/``range``/``step``.
AT_MODIFIER_UNSAFE_FUNCTIONS = frozenset(
    {
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "end",
        "range",
        "start",
        "step",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "time",
        "timestamp",
    }
)

# Queries whose value depends on the query's own range are not compared in range mode.
QUERY_CONTEXT_FUNCS = re.compile(r"(start|end|range|step)\(\)")


def pin_at(expr: Expr, t_ms: int) -> tuple[Expr, bool]:
    """``expr`` with ``@ t_ms`` added where upstream adds it, and whether it is unsafe."""
    if isinstance(expr, VectorSelector):
        if expr.timestamp_ms is None:
            expr = dataclasses.replace(expr, timestamp_ms=t_ms, start_or_end=None)
        return expr, False
    if isinstance(expr, MatrixSelector):
        inner, _ = pin_at(expr.vector_selector, t_ms)
        return dataclasses.replace(expr, vector_selector=inner), False
    if isinstance(expr, SubqueryExpr):
        # Upstream stops rewriting (and looking for unsafe functions) below a pinned subquery.
        if expr.timestamp_ms is None:
            expr = dataclasses.replace(expr, timestamp_ms=t_ms, start_or_end=None)
        return expr, False
    unsafe = isinstance(expr, Call) and expr.func in AT_MODIFIER_UNSAFE_FUNCTIONS
    changes: dict[str, object] = {}
    for f in dataclasses.fields(expr):  # type: ignore[arg-type]
        value = getattr(expr, f.name)
        if isinstance(value, Expr) and not _is_duration(value):
            new, u = pin_at(value, t_ms)
            unsafe = unsafe or u
            changes[f.name] = new
        elif isinstance(value, tuple) and value and all(isinstance(v, Expr) for v in value):
            pinned = [pin_at(v, t_ms) for v in value]
            unsafe = unsafe or any(u for _, u in pinned)
            changes[f.name] = tuple(e for e, _ in pinned)
    if changes:
        expr = dataclasses.replace(expr, **changes)  # type: ignore[type-var]
    return expr, unsafe


def _is_duration(expr: Expr) -> bool:
    return type(expr).__name__ == "DurationExpr"


def at_modifier_variants(expr_text: str, eval_ms: int) -> list[tuple[str, int]]:
    """The extra (query, eval time) pairs the upstream runner evaluates for an instant eval."""
    import promql

    tree = promql.parse(expr_text, promql.ParserOptions(experimental=True))
    pinned, unsafe = pin_at(tree, eval_ms)
    if unsafe:
        return []
    text = promql.format(pinned)
    if eval_ms == 0:
        times = [-1000, 0, 1000]
    else:
        # Go's integer division truncates towards zero.
        times = [-10 * eval_ms, 0, int(eval_ms / 5), eval_ms, 10 * eval_ms]
    return [(text, t) for t in times]
