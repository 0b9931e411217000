"""Type checks run after a successful parse, in Prometheus' order and with its wording.

Mirrors ``checkAST`` in Prometheus' ``promql/parser/parse.go``: children are checked before
their parent's own rules, and the first error found is the one reported.
"""

from __future__ import annotations

import functools
import threading

import re2

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
    PosRange,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from promql.operators import AGGREGATORS, COMPARISON_OPS, SET_OPS
from promql.syntax_errors import SemanticError
from promql.types import MatchType, ValueType
from udfs.registry import get_function

_VALID_OPERANDS = (ValueType.SCALAR, ValueType.VECTOR)


def check(expr: Expr, text: str = "") -> ValueType:
    """Raise ``SemanticError`` for the first type error in ``expr``; return its type.

    ``text`` is the query the tree was parsed from; it locates operators in error messages.
    """
    _TEXT.value = text
    return _check(expr)


class _Text(threading.local):
    value = ""


_TEXT = _Text()


def _expect(expr: Expr, want: ValueType, context: str) -> None:
    got = _check(expr)
    if got != want:
        raise SemanticError(
            f"expected type {want.document_name()} in {context}, got {got.document_name()}",
            expr.pos,
        )


def _check(expr: Expr) -> ValueType:
    if isinstance(expr, BinaryExpr):
        _check_binary(expr)
    elif isinstance(expr, AggregateExpr):
        _expect(expr.expr, ValueType.VECTOR, "aggregation expression")
        spec = AGGREGATORS[expr.op]
        if spec.param_type is not None and expr.param is not None:
            _expect(expr.param, spec.param_type, "aggregation parameter")
    elif isinstance(expr, Call):
        _check_call(expr)
    elif isinstance(expr, ParenExpr):
        _check(expr.expr)
    elif isinstance(expr, UnaryExpr):
        inner = _check(expr.expr)
        if inner not in _VALID_OPERANDS:
            raise SemanticError(
                "unary expression only allowed on expressions of type scalar or instant "
                f'vector, got "{inner.document_name()}"',
                expr.pos,
            )
    elif isinstance(expr, SubqueryExpr):
        inner = _check(expr.expr)
        if inner != ValueType.VECTOR:
            raise SemanticError(
                f"subquery is only allowed on instant vector, got {inner.value} instead",
                expr.pos,
            )
    elif isinstance(expr, MatrixSelector):
        _check(expr.vector_selector)
    elif isinstance(expr, VectorSelector):
        _check_selector(expr)
    elif not isinstance(expr, (NumberLiteral, StringLiteral, DurationExpr)):
        raise SemanticError(f"unknown node type: {type(expr).__name__}", expr.pos)
    return expr.type


def _operator_pos(expr: BinaryExpr) -> PosRange:
    # Prometheus reports operator errors at the text between the operands, trimmed of spaces.
    text = _TEXT.value
    start, end = expr.lhs.pos.end, expr.rhs.pos.start
    while start < end and start < len(text) and text[start] in " \t\r\n":
        start += 1
    while end > start and end <= len(text) and text[end - 1] in " \t\r\n":
        end -= 1
    return PosRange(start, end)


def _check_binary(expr: BinaryExpr) -> None:
    lt = _check(expr.lhs)
    rt = _check(expr.rhs)
    if expr.return_bool and expr.op not in COMPARISON_OPS:
        raise SemanticError("bool modifier can only be used on comparison operators", _op_pos(expr))
    if (
        expr.op in COMPARISON_OPS
        and not expr.return_bool
        and lt == ValueType.SCALAR
        and rt == ValueType.SCALAR
    ):
        raise SemanticError("comparisons between scalars must use BOOL modifier", _op_pos(expr))
    vm = expr.matching
    if vm is not None and vm.on:
        for label in vm.matching_labels:
            if label in vm.include:
                raise SemanticError(
                    f'label "{label}" must not occur in ON and GROUP clause at once',
                    _op_pos(expr),
                )
    if lt not in _VALID_OPERANDS:
        raise SemanticError(
            "binary expression must contain only scalar and instant vector types", expr.lhs.pos
        )
    if rt not in _VALID_OPERANDS:
        raise SemanticError(
            "binary expression must contain only scalar and instant vector types", expr.rhs.pos
        )
    vectors = lt == ValueType.VECTOR and rt == ValueType.VECTOR
    filled = vm is not None and (vm.fill_lhs is not None or vm.fill_rhs is not None)
    if not vectors and vm is not None and vm.matching_labels:
        raise SemanticError("vector matching only allowed between instant vectors", expr.pos)
    if not vectors and filled:
        raise SemanticError(
            "filling in missing series only allowed between instant vectors", expr.pos
        )
    grouped = vm is not None and vm.card in (Cardinality.ONE_TO_MANY, Cardinality.MANY_TO_ONE)
    if vectors and expr.op in SET_OPS and grouped:
        raise SemanticError(f'no grouping allowed for "{expr.op}" operation', expr.pos)
    if vectors and expr.op in SET_OPS and filled:
        raise SemanticError("filling in missing series not allowed for set operators", expr.pos)
    if expr.op in SET_OPS and ValueType.SCALAR in (lt, rt):
        raise SemanticError(
            f'set operator "{expr.op}" not allowed in binary scalar expression', expr.pos
        )


def _op_pos(expr: BinaryExpr) -> PosRange:
    return _operator_pos(expr)


def _check_call(expr: Call) -> None:
    spec = get_function(expr.func)
    if spec is None:
        raise SemanticError(f'unknown function with name "{expr.func}"', expr.pos)
    nargs = len(expr.args)
    declared = len(spec.arg_types)
    if spec.variadic == 0:
        if declared != nargs:
            raise SemanticError(
                f'expected {declared} argument(s) in call to "{spec.name}", got {nargs}', expr.pos
            )
    else:
        least = declared - 1
        if least > nargs:
            raise SemanticError(
                f'expected at least {least} argument(s) in call to "{spec.name}", got {nargs}',
                expr.pos,
            )
        most = least + spec.variadic
        if spec.variadic > 0 and most < nargs:
            raise SemanticError(
                f'expected at most {most} argument(s) in call to "{spec.name}", got {nargs}',
                expr.pos,
            )
    if spec.name == "info" and nargs > 1:
        _check_info_selector(expr)
    for i, arg in enumerate(expr.args):
        if i >= declared and spec.variadic == 0:
            break
        want = spec.arg_type(i)
        # info()'s label selector may match everything: Prometheus bypasses the empty check.
        got = arg.type if spec.name == "info" and i == 1 else _check(arg)
        if got != want:
            raise SemanticError(
                f"expected type {want.document_name()} in call to function "
                f'"{spec.name}", got {got.document_name()}',
                arg.pos,
            )


def _check_info_selector(expr: Call) -> None:
    arg = expr.args[1]
    if arg.type != ValueType.VECTOR:
        raise SemanticError(
            'expected type instant vector in call to function "info", got '
            f"{arg.type.document_name()}",
            expr.pos,
        )
    if isinstance(arg, VectorSelector) and arg.name is not None:
        raise SemanticError("expected label selectors only, got vector selector instead", arg.pos)
    if not isinstance(arg, VectorSelector):
        raise SemanticError("expected label selectors only", arg.pos)


def _check_selector(vs: VectorSelector) -> None:
    if vs.name is not None:
        for matcher in vs.matchers[:-1]:
            if matcher.name == "__name__":
                raise SemanticError(
                    f'metric name must not be set twice: "{vs.name}" or "{matcher.value}"',
                    vs.pos,
                )
        return
    if not any(not _matches_empty(m.type, m.value) for m in vs.matchers):
        raise SemanticError("vector selector must contain at least one non-empty matcher", vs.pos)


@functools.lru_cache(maxsize=1024)
def _matches_empty(match_type: MatchType, value: str) -> bool:
    if match_type == MatchType.EQUAL:
        return value == ""
    if match_type == MatchType.NOT_EQUAL:
        return value != ""
    matched = re2.fullmatch(f"(?s:{value})", "") is not None
    return matched if match_type == MatchType.REGEX else not matched
