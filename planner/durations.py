"""Experimental duration expressions (``[5m+step()]``, ``offset -(1m)``...) resolved at plan time.

Same rules as upstream ``durationVisitor`` (``promql/durations.go``): seconds as float64,
``step()`` is the query step (0 for an instant query), ``range()`` is ``end - start``; a result
that is NaN/Inf, out of range, or not positive where a range or step must be, is an error.
"""

from __future__ import annotations

import math

from promql import ast
from promql.errors import BadDataError

_MAX_SECONDS = (1 << 63) / 1e9


def evaluate_seconds(expr: ast.Expr, step_ms: int, range_ms: int) -> float:
    if isinstance(expr, ast.NumberLiteral):
        return expr.value
    if not isinstance(expr, ast.DurationExpr):
        raise BadDataError(f"unexpected duration expression type {type(expr).__name__}")
    op = expr.op
    if op == "step":
        return step_ms / 1000.0
    if op == "range":
        return range_ms / 1000.0
    lhs = evaluate_seconds(expr.lhs, step_ms, range_ms) if expr.lhs is not None else 0.0
    rhs = evaluate_seconds(expr.rhs, step_ms, range_ms) if expr.rhs is not None else 0.0
    where = f"{expr.pos.start}:{expr.pos.end}"
    if op == "()":
        return rhs
    if op in ("min", "min_of"):
        return math.nan if math.isnan(lhs) or math.isnan(rhs) else min(lhs, rhs)
    if op in ("max", "max_of"):
        return math.nan if math.isnan(lhs) or math.isnan(rhs) else max(lhs, rhs)
    if op == "+":
        return rhs if expr.lhs is None else lhs + rhs
    if op == "-":
        return -rhs if expr.lhs is None else lhs - rhs
    if op == "*":
        return lhs * rhs
    if op in ("/", "%"):
        if rhs == 0:
            raise BadDataError(f"{where}: {'division' if op == '/' else 'modulo'} by zero")
        return lhs / rhs if op == "/" else math.fmod(lhs, rhs)
    if op == "^":
        try:
            return math.pow(lhs, rhs)
        except (OverflowError, ValueError):
            return math.inf if lhs > 0 else math.nan
    raise BadDataError(f"unexpected duration expression operator {op!r}")


def duration_ms(expr: ast.Expr, step_ms: int, range_ms: int, allow_negative: bool) -> int:
    seconds = evaluate_seconds(expr, step_ms, range_ms)
    where = f"{expr.pos.start}:{expr.pos.end}"
    if math.isnan(seconds) or math.isinf(seconds):
        raise BadDataError(f"{where}: duration is NaN or infinite")
    if seconds <= 0 and not allow_negative:
        raise BadDataError(f"{where}: duration must be greater than 0")
    if abs(seconds) > _MAX_SECONDS:
        raise BadDataError(f"{where}: duration is out of range")
    return int(seconds * 1000)  # Go truncates toward zero
