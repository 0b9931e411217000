"""AST → canonical PromQL text, matching Prometheus' ``Expr.String()`` (``format_query``).

``parse(format(e)) == e`` holds for every AST the parser produces.
"""

from __future__ import annotations

from promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
    DurationExpr,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)
from promql.lexing import format_duration_ms, format_go_g, format_number, go_quote
from promql.operators import AGGREGATORS
from promql.types import Matcher


def format_expr(expr: Expr) -> str:
    """The canonical text of ``expr``."""
    return _fmt(expr)


def _fmt(expr: Expr) -> str:
    printer = _PRINTERS.get(type(expr))
    if printer is None:
        raise TypeError(f"cannot format {type(expr).__name__}")
    return printer(expr)


def _is_legacy_name(name: str) -> bool:
    if not name:
        return False
    for i, ch in enumerate(name):
        if ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or (i > 0 and "0" <= ch <= "9"):
            continue
        return False
    return True


def _labels(names: tuple[str, ...]) -> str:
    return ", ".join(n if _plain_grouping_label(n) else go_quote(n) for n in names)


def _plain_grouping_label(name: str) -> bool:
    # Deliberate deviation: Prometheus prints `by (inf)`, which its own lexer reads as a number
    # and rejects; quoting keeps the output parseable.
    return _is_legacy_name(name) and name.lower() not in ("inf", "nan")


def format_matcher(m: Matcher) -> str:
    """A matcher as Prometheus prints it: name quoted unless a legacy name, value Go-quoted."""
    name = m.name if _is_legacy_name(m.name) else go_quote(m.name)
    return f"{name}{m.type.value}{go_quote(m.value)}"


def _number(n: NumberLiteral) -> str:
    if n.duration:
        ms = int(abs(n.value) * 1e9) // 1_000_000
        text = format_duration_ms(ms)
        return "-" + text if n.value < 0 else text
    return format_number(n.value)


def _offset(ms: int, expr: DurationExpr | None) -> str:
    if expr is not None:
        return " offset " + _duration_expr(expr)
    if ms > 0:
        return " offset " + format_duration_ms(ms)
    if ms < 0:
        return " offset -" + format_duration_ms(-ms)
    return ""


def _at(timestamp_ms: int | None, start_or_end: str | None) -> str:
    if timestamp_ms is not None:
        return f" @ {timestamp_ms / 1000.0:.3f}"
    if start_or_end is not None:
        return f" @ {start_or_end}()"
    return ""


def _selector_core(vs: VectorSelector) -> str:
    parts = [
        format_matcher(m)
        for m in vs.matchers
        if not (m.name == "__name__" and m.type.value == "=" and m.value == vs.name and m.value)
    ]
    text = vs.name or ""
    if parts:
        text += "{" + ",".join(sorted(parts)) + "}"
    return text


def _extended(vs: VectorSelector) -> str:
    if vs.anchored:
        return " anchored"
    if vs.smoothed:
        return " smoothed"
    return ""


def _vector_selector(vs: VectorSelector) -> str:
    return (
        _selector_core(vs)
        + _at(vs.timestamp_ms, vs.start_or_end)
        + _extended(vs)
        + _offset(vs.offset_ms, vs.offset_expr)
    )


def _range(ms: int, expr: DurationExpr | None) -> str:
    return _duration_expr(expr) if expr is not None else format_duration_ms(ms)


def _matrix(m: MatrixSelector) -> str:
    vs = m.vector_selector
    return (
        f"{_selector_core(vs)}[{_range(m.range_ms, m.range_expr)}]"
        + _extended(vs)
        + _at(vs.timestamp_ms, vs.start_or_end)
        + _offset(vs.offset_ms, vs.offset_expr)
    )


def _subquery(s: SubqueryExpr) -> str:
    step = ""
    if s.step_ms:
        step = format_duration_ms(s.step_ms)
    elif s.step_expr is not None:
        step = _duration_expr(s.step_expr)
    return (
        f"{_fmt(s.expr)}[{_range(s.range_ms, s.range_expr)}:{step}]"
        + _at(s.timestamp_ms, s.start_or_end)
        + _offset(s.offset_ms, s.offset_expr)
    )


def _duration_expr(d: Expr) -> str:
    if isinstance(d, NumberLiteral):
        return _number(d)
    assert isinstance(d, DurationExpr)
    if d.op in ("step", "range"):
        return f"{d.op}()"
    if d.op in ("min_of", "max_of"):
        return f"{d.op}({_duration_expr(d.lhs)}, {_duration_expr(d.rhs)})"
    if d.op == "()":
        return f"({_duration_expr(d.rhs)})"
    if d.lhs is None:
        return ("-" if d.op == "-" else "") + _duration_expr(d.rhs)
    return f"{_duration_expr(d.lhs)} {d.op} {_duration_expr(d.rhs)}"


def _aggregate(a: AggregateExpr) -> str:
    text = a.op
    if a.without:
        text += f" without ({_labels(a.grouping)}) "
    elif a.grouping:
        text += f" by ({_labels(a.grouping)}) "
    args = _fmt(a.expr)
    if AGGREGATORS[a.op].has_param and a.param is not None:
        args = f"{_fmt(a.param)}, {args}"
    return f"{text}({args})"


def _matching(vm: VectorMatching | None) -> str:
    if vm is None:
        return ""
    grouped = vm.card in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY)
    text = ""
    if vm.matching_labels or vm.on or grouped:
        text = f" {'on' if vm.on else 'ignoring'} ({_labels(vm.matching_labels)})"
    if grouped:
        side = "left" if vm.card == Cardinality.MANY_TO_ONE else "right"
        text += f" group_{side} ({_labels(vm.include)})"
    left, right = vm.fill_lhs, vm.fill_rhs
    if left is not None and right is not None and _same_fill(left, right):
        text += f" fill ({format_go_g(left)})"
    else:
        if left is not None:
            text += f" fill_left ({format_go_g(left)})"
        if right is not None:
            text += f" fill_right ({format_go_g(right)})"
    return text


def _same_fill(left: float, right: float) -> bool:
    # Go compares the two floats with ==, so NaN fills print as two one-sided fills.
    return left == right


def _binary(b: BinaryExpr) -> str:
    flag = " bool" if b.return_bool else ""
    return f"{_fmt(b.lhs)} {b.op}{flag}{_matching(b.matching)} {_fmt(b.rhs)}"


_PRINTERS = {
    NumberLiteral: _number,
    StringLiteral: lambda s: go_quote(s.value),
    VectorSelector: _vector_selector,
    MatrixSelector: _matrix,
    SubqueryExpr: _subquery,
    Call: lambda c: f"{c.func}({', '.join(_fmt(a) for a in c.args)})",
    AggregateExpr: _aggregate,
    BinaryExpr: _binary,
    UnaryExpr: lambda u: f"{u.op}{_fmt(u.expr)}",
    ParenExpr: lambda p: f"({_fmt(p.expr)})",
    DurationExpr: _duration_expr,
}
