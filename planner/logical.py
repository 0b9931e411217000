"""AST → logical plan: a pure function of the expression and the statement.

Every PromQL construct maps onto one of the small nodes in ``planner/nodes``; no rule runs here
(time ranges are left for ``rules.pushdown``, folding for ``rules.constant_folding``). ``@ start()``
and ``@ end()`` resolve to the statement's start and end, as upstream.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from planner.durations import duration_ms
from planner.nodes.absent import Absent
from planner.nodes.aggregate import PromAggregate
from planner.nodes.base import PlanError, PlanNode
from planner.nodes.binary_join import BinaryJoin
from planner.nodes.count_values import CountValues
from planner.nodes.empty_metric import EmptyMetric
from planner.nodes.extended_range import ANCHORED_FUNCTIONS, SMOOTHED_FUNCTIONS
from planner.nodes.histogram_quantile import HistogramQuantile
from planner.nodes.info import InfoJoin, effective_name_matchers
from planner.nodes.instant_function import InstantFunction
from planner.nodes.instant_manipulate import InstantManipulate
from planner.nodes.label_function import LabelFunction
from planner.nodes.negate import Negate
from planner.nodes.range_function import RangeFunction
from planner.nodes.range_manipulate import RangeManipulate
from planner.nodes.scalar_calc import ScalarCalc, StringLiteral
from planner.nodes.series_normalize import SeriesNormalize
from planner.nodes.series_scan import SeriesScan
from planner.nodes.set_op import SetOp
from planner.nodes.sort import Sort
from planner.nodes.subquery import Subquery
from planner.nodes.timestamp import Timestamp
from planner.stmt import EvalStmt
from promql import ast
from promql.errors import BadDataError, ExecutionError
from promql.types import MatchType, ValueType
from storage.model import METRIC_NAME, Labels

SET_OPS = frozenset({"and", "or", "unless"})
SORT_FUNCTIONS = frozenset({"sort", "sort_desc", "sort_by_label", "sort_by_label_desc"})
DATE_FUNCTIONS = frozenset(
    {
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
    }
)


@dataclass(frozen=True)
class PlanContext:
    """What planning needs besides the expression (immutable; passed down, never mutated)."""

    start_ms: int
    end_ms: int
    lookback_ms: int
    default_subquery_step_ms: int
    step_ms: int = 0  # the query step (0 for an instant query), for ``step()``

    @property
    def range_ms(self) -> int:
        return self.end_ms - self.start_ms

    def duration(self, expr: ast.Expr | None, fallback: int, allow_negative: bool) -> int:
        if expr is None:
            return fallback
        return duration_ms(expr, self.step_ms, self.range_ms, allow_negative)

    def resolve_at(self, timestamp_ms: int | None, start_or_end: str | None) -> int | None:
        if start_or_end == "start":
            return self.start_ms
        if start_or_end == "end":
            return self.end_ms
        return timestamp_ms


def logical_plan(stmt: EvalStmt, default_subquery_step_ms: int = 60_000) -> PlanNode:
    step = 0 if stmt.is_instant else stmt.step_ms
    ctx = PlanContext(stmt.start_ms, stmt.end_ms, stmt.lookback_ms, default_subquery_step_ms, step)
    return plan_expr(stmt.expr, ctx)


def plan_expr(expr: ast.Expr, ctx: PlanContext) -> PlanNode:
    match expr:
        case ast.NumberLiteral():
            return ScalarCalc("literal", value=expr.value)
        case ast.StringLiteral():
            return StringLiteral(expr.value)
        case ast.ParenExpr():
            return plan_expr(expr.expr, ctx)
        case ast.UnaryExpr():
            inner = plan_expr(expr.expr, ctx)
            return Negate(inner) if expr.op == "-" else inner
        case ast.VectorSelector():
            return _instant_selector(expr, ctx)
        case ast.MatrixSelector():
            return _range_selector(expr, ctx)
        case ast.SubqueryExpr():
            return _subquery(expr, ctx)
        case ast.Call():
            return _call(expr, ctx)
        case ast.AggregateExpr():
            return _aggregate(expr, ctx)
        case ast.BinaryExpr():
            return _binary(expr, ctx)
    raise PlanError(f"cannot plan {type(expr).__name__}")


def _scan(vs: ast.VectorSelector, drop_stale: bool) -> PlanNode:
    return SeriesNormalize(SeriesScan(tuple(vs.matchers)), drop_stale=drop_stale)


def _instant_selector(vs: ast.VectorSelector, ctx: PlanContext, keep_ts: bool = False) -> PlanNode:
    if vs.anchored:
        raise BadDataError("anchored modifier is only allowed on range selectors")
    return InstantManipulate(
        _scan(vs, drop_stale=vs.smoothed),
        ctx.lookback_ms,
        ctx.duration(vs.offset_expr, vs.offset_ms, allow_negative=True),
        ctx.resolve_at(vs.timestamp_ms, vs.start_or_end),
        keep_ts,
        vs.smoothed,
    )


def _range_selector(ms: ast.MatrixSelector, ctx: PlanContext) -> PlanNode:
    vs = ms.vector_selector
    mode = "anchored" if vs.anchored else "smoothed" if vs.smoothed else ""
    return RangeManipulate(
        _scan(vs, drop_stale=True),
        ctx.duration(ms.range_expr, ms.range_ms, allow_negative=False),
        ctx.duration(vs.offset_expr, vs.offset_ms, allow_negative=True),
        ctx.resolve_at(vs.timestamp_ms, vs.start_or_end),
        mode,
        ctx.lookback_ms if mode else 0,
    )


def _subquery(sq: ast.SubqueryExpr, ctx: PlanContext) -> PlanNode:
    step = ctx.duration(sq.step_expr, sq.step_ms, allow_negative=False)
    return Subquery(
        plan_expr(sq.expr, ctx),
        ctx.duration(sq.range_expr, sq.range_ms, allow_negative=False),
        step or ctx.default_subquery_step_ms,
        ctx.duration(sq.offset_expr, sq.offset_ms, allow_negative=True),
        ctx.resolve_at(sq.timestamp_ms, sq.start_or_end),
    )


def _unwrap(expr: ast.Expr) -> ast.Expr:
    while isinstance(expr, ast.ParenExpr):
        expr = expr.expr
    return expr


def _string_arg(expr: ast.Expr) -> str:
    e = _unwrap(expr)
    if not isinstance(e, ast.StringLiteral):
        raise PlanError("expected a string literal argument")
    return e.value


def _call(call: ast.Call, ctx: PlanContext) -> PlanNode:
    from udfs.registry import get_function

    name, args = call.func, call.args
    spec = get_function(name)
    if spec is None:
        raise BadDataError(f"unknown function with name {name!r}")
    special = _special_call(name, args, ctx, call.pos)
    if special is not None:
        return special
    range_index = next((i for i, a in enumerate(args) if a.type == ValueType.MATRIX), None)
    if range_index is not None:
        _check_extended(name, args[range_index])
        rng = plan_expr(args[range_index], ctx)
        params = tuple(plan_expr(a, ctx) for i, a in enumerate(args) if i != range_index)
        if name == "absent_over_time":
            return Absent(rng, absent_labels(args[0]))
        return RangeFunction(name, rng, params, range_index > 0, args[0].pos)
    if name in DATE_FUNCTIONS and not args:
        return InstantFunction(name, EmptyMetric(ScalarCalc("time")))
    vec = plan_expr(args[0], ctx)
    return InstantFunction(name, vec, tuple(plan_expr(a, ctx) for a in args[1:]))


def _check_extended(name: str, arg: ast.Expr) -> None:
    """Only some functions accept anchored/smoothed windows (upstream's wording)."""
    arg = _unwrap(arg)
    if not isinstance(arg, ast.MatrixSelector):
        return
    vs = arg.vector_selector
    for flag, word, allowed in (
        (vs.anchored, "anchored", ANCHORED_FUNCTIONS),
        (vs.smoothed, "smoothed", SMOOTHED_FUNCTIONS),
    ):
        if flag and name not in allowed:
            raise ExecutionError(
                f"{word} modifier can only be used with: {', '.join(allowed)} - not with {name}"
            )


def _special_call(
    name: str, args: tuple[ast.Expr, ...], ctx: PlanContext, pos: ast.PosRange
) -> PlanNode | None:
    if name == "time":
        return ScalarCalc("time")
    constant = {
        "start": ctx.start_ms / 1000.0,
        "end": ctx.end_ms / 1000.0,
        "step": ctx.step_ms / 1000.0,
        "range": ctx.range_ms / 1000.0,
    }.get(name)
    if constant is not None and not args:
        return ScalarCalc("literal", value=constant)
    if name in ("min_of", "max_of"):
        return ScalarCalc("binary", (plan_expr(args[0], ctx), plan_expr(args[1], ctx)), op=name)
    if name == "pi":
        return ScalarCalc("literal", value=math.pi)
    if name == "scalar":
        return ScalarCalc("scalar", (plan_expr(args[0], ctx),))
    if name == "vector":
        return EmptyMetric(plan_expr(args[0], ctx))
    if name == "absent":
        return Absent(plan_expr(args[0], ctx), absent_labels(args[0]))
    if name == "timestamp":
        arg = _unwrap(args[0])
        if isinstance(arg, ast.VectorSelector):
            return Timestamp(_instant_selector(arg, ctx, keep_ts=True))
        return Timestamp(plan_expr(args[0], ctx))
    if name in SORT_FUNCTIONS:
        labels = tuple(_string_arg(a) for a in args[1:])
        return Sort(name, plan_expr(args[0], ctx), labels, pos)
    if name in ("label_replace", "label_join"):
        return LabelFunction(name, plan_expr(args[0], ctx), tuple(_string_arg(a) for a in args[1:]))
    if name == "histogram_quantile":
        q = (plan_expr(args[0], ctx),)
        return HistogramQuantile(
            name, plan_expr(args[1], ctx), q, arg_pos=tuple(a.pos for a in args)
        )
    if name == "info":
        return _info(args, ctx)
    if name == "histogram_quantiles":
        qs = tuple(plan_expr(a, ctx) for a in args[2:])
        node = HistogramQuantile(name, plan_expr(args[0], ctx), qs, _string_arg(args[1]))
        return dataclasses.replace(node, arg_pos=tuple(a.pos for a in args))
    if name == "histogram_fraction":
        params = (plan_expr(args[0], ctx), plan_expr(args[1], ctx))
        return HistogramQuantile(
            name, plan_expr(args[2], ctx), params, arg_pos=tuple(a.pos for a in args)
        )
    return None


def _info(args: tuple[ast.Expr, ...], ctx: PlanContext) -> PlanNode:
    """``info(v, {selector})``: the info series are read on the grid of ``v``'s first selector."""
    selector = _unwrap(args[1]) if len(args) > 1 else None
    matchers = selector.matchers if isinstance(selector, ast.VectorSelector) else ()
    name_ms = tuple(m for m in matchers if m.name == METRIC_NAME)
    data_ms = tuple(m for m in matchers if m.name != METRIC_NAME)
    effective = effective_name_matchers(name_ms)
    offset, at = _first_selector_time(args[0], ctx)
    scan = SeriesNormalize(SeriesScan((*data_ms, *effective)), drop_stale=False)
    info_series = InstantManipulate(scan, ctx.lookback_ms, offset, at, keep_timestamps=True)
    return InfoJoin(plan_expr(args[0], ctx), info_series, data_ms, effective)


def _first_selector_time(expr: ast.Expr, ctx: PlanContext) -> tuple[int, int | None]:
    """Upstream ``infoSelectTimestampAndOffset``: offset/@ of the first vector selector, with
    the offsets (and @) of the subqueries around it when the selector has no @ itself."""

    def visit(e: ast.Expr, path: tuple[ast.Expr, ...]):
        if isinstance(e, ast.VectorSelector):
            offset = ctx.duration(e.offset_expr, e.offset_ms, allow_negative=True)
            at = ctx.resolve_at(e.timestamp_ms, e.start_or_end)
            for outer in reversed(path):
                if at is not None:
                    break
                if isinstance(outer, ast.SubqueryExpr):
                    offset += ctx.duration(outer.offset_expr, outer.offset_ms, allow_negative=True)
                    at = ctx.resolve_at(outer.timestamp_ms, outer.start_or_end)
            return offset, at
        for child in e.children():
            found = visit(child, (*path, e))
            if found is not None:
                return found
        return None

    return visit(expr, ()) or (0, None)


def absent_labels(expr: ast.Expr) -> Labels:
    """Upstream ``createLabelsForAbsentFunction``: equality matchers, repeated names removed."""
    e = _unwrap(expr)
    if isinstance(e, ast.MatrixSelector):
        e = e.vector_selector
    if not isinstance(e, ast.VectorSelector):
        return ()
    out: dict[str, str] = {}
    seen: set[str] = set()
    for m in e.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type == MatchType.EQUAL and m.name not in seen:
            out[m.name] = m.value
            seen.add(m.name)
        else:
            out.pop(m.name, None)
    return tuple(sorted((k, v) for k, v in out.items() if v != ""))


def _aggregate(agg: ast.AggregateExpr, ctx: PlanContext) -> PlanNode:
    inner = plan_expr(agg.expr, ctx)
    if agg.op == "count_values":
        assert agg.param is not None
        return CountValues(_string_arg(agg.param), inner, tuple(agg.grouping), agg.without)
    param = plan_expr(agg.param, ctx) if agg.param is not None else None
    param_pos = agg.param.pos if agg.param is not None else None
    return PromAggregate(agg.op, inner, tuple(agg.grouping), agg.without, param, param_pos)


def _binary(b: ast.BinaryExpr, ctx: PlanContext) -> PlanNode:
    lhs, rhs = plan_expr(b.lhs, ctx), plan_expr(b.rhs, ctx)
    if b.op in SET_OPS:
        return SetOp(b.op, lhs, rhs, b.matching)
    if b.lhs.type == ValueType.SCALAR and b.rhs.type == ValueType.SCALAR:
        return ScalarCalc("binary", (lhs, rhs), op=b.op)
    both_vectors = b.lhs.type == ValueType.VECTOR and b.rhs.type == ValueType.VECTOR
    return BinaryJoin(b.op, lhs, rhs, b.matching if both_vectors else None, b.return_bool)
