"""Converts the Rust ``promql-parser`` AST (the test oracle) into Tidemark's AST.

Comparing trees rather than printed text keeps the comparison exact: the Rust printer differs
from Prometheus' in many harmless ways (``foo{}``, ``sum by (a)(x)``, ``300`` for ``5m``).
Positions and the ``duration`` flag of number literals are not compared (AST equality ignores
them).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

import promql_parser as rp

from promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
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
from promql.types import Matcher, MatchType, ValueType
from udfs.registry import get_function

_MATCH = {
    "MatchOp.Equal": MatchType.EQUAL,
    "MatchOp.NotEqual": MatchType.NOT_EQUAL,
    "MatchOp.Re": MatchType.REGEX,
    "MatchOp.NotRe": MatchType.NOT_REGEX,
}
_CARD = {
    "VectorMatchCardinality.OneToOne": Cardinality.ONE_TO_ONE,
    "VectorMatchCardinality.ManyToOne": Cardinality.MANY_TO_ONE,
    "VectorMatchCardinality.OneToMany": Cardinality.ONE_TO_MANY,
    "VectorMatchCardinality.ManyToMany": Cardinality.MANY_TO_MANY,
}
_AT_TEXT = re.compile(r"@ (-?[0-9.]+)")


class OracleError(Exception):
    """The Rust parser rejected the query (its message is kept for reports)."""


def rust_parse(text: str) -> Expr:
    """Parse with the Rust parser and convert; raises ``OracleError`` when it rejects the text."""
    try:
        tree = rp.parse(text)
    except BaseException as exc:  # the bindings raise ValueError, and panic on odd input
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise OracleError(str(exc)) from None
    try:
        return _convert(tree)
    except (ValueError, OverflowError) as exc:  # values the bindings cannot represent
        raise OracleError(f"unconvertible Rust AST: {exc}") from None


def _ms(delta: dt.timedelta | None) -> int:
    if delta is None:
        return 0
    return (delta.days * 86_400_000) + delta.seconds * 1000 + delta.microseconds // 1000


def _at(node) -> tuple[int | None, str | None]:
    at = node.at
    if at is None:
        return None, None
    kind = str(at.type)
    if kind.endswith("Start"):
        return None, "start"
    if kind.endswith("End"):
        return None, "end"
    # Reading ``at.at`` panics in the bindings for negative timestamps; the printed form has
    # exactly three decimals (milliseconds), so read that instead.
    # The node's own modifier is printed last (inner subquery expressions come first).
    matches = _AT_TEXT.findall(str(node))
    if not matches:
        raise OracleError("unreadable @ modifier")
    return round(float(matches[-1]) * 1000), None


def _selector(node) -> VectorSelector:
    matchers = tuple(Matcher(_MATCH[str(m.op)], m.name, m.value) for m in node.matchers.matchers)
    if node.matchers.or_matchers:
        raise OracleError("or-matchers are not PromQL")
    if node.name:
        matchers = (*matchers, Matcher(MatchType.EQUAL, "__name__", node.name))
    ts, start_or_end = _at(node)
    return VectorSelector(
        node.name or None,
        matchers,
        offset_ms=_ms(node.offset),
        timestamp_ms=ts,
        start_or_end=start_or_end,
    )


def _binary(node) -> BinaryExpr:
    lhs, rhs = _convert(node.lhs), _convert(node.rhs)
    op = str(node.op).lower()
    mod = node.modifier
    vectors = lhs.type == ValueType.VECTOR and rhs.type == ValueType.VECTOR
    matching = None
    return_bool = False
    if mod is not None:
        return_bool = bool(mod.return_bool)
        card = _CARD[str(mod.card)]
        labels: tuple[str, ...] = ()
        on = has = False
        if mod.matching is not None:
            has = True
            on = str(mod.matching.type).endswith("Include")
            labels = tuple(mod.matching.labels)
        include = tuple(mod.group_labels or ())
        matching = VectorMatching(card, labels, on, include, has_matching=has)
    if vectors and matching is None:
        matching = VectorMatching()
    set_op = op in ("and", "or", "unless")
    if matching is not None and set_op and matching.card == Cardinality.ONE_TO_ONE:
        matching = replace(matching, card=Cardinality.MANY_TO_MANY)
    if not vectors:
        matching = None
    return BinaryExpr(op, lhs, rhs, matching, return_bool)


def _convert(node) -> Expr:
    kind = type(node).__name__
    if kind == "NumberLiteral":
        return NumberLiteral(float(node.val))
    if kind == "StringLiteral":
        return StringLiteral(node.val)
    if kind == "VectorSelector":
        return _selector(node)
    if kind == "MatrixSelector":
        return MatrixSelector(_selector(node.vector_selector), _ms(node.range))
    if kind == "SubqueryExpr":
        ts, start_or_end = _at(node)
        return SubqueryExpr(
            _convert(node.expr),
            _ms(node.range),
            _ms(node.step),
            offset_ms=_ms(node.offset),
            timestamp_ms=ts,
            start_or_end=start_or_end,
        )
    if kind == "ParenExpr":
        return ParenExpr(_convert(node.expr))
    if kind == "UnaryExpr":
        return UnaryExpr("-", _convert(node.expr))
    if kind == "Call":
        spec = get_function(node.func.name)
        return_type = spec.return_type if spec else ValueType.VECTOR
        args = tuple(_convert(a) for a in node.args)
        return Call(node.func.name, args, return_type=return_type)
    if kind == "AggregateExpr":
        mod = node.modifier
        without = mod is not None and str(mod.type).endswith("Without")
        grouping = tuple(mod.labels) if mod is not None else ()
        param = _convert(node.param) if node.param is not None else None
        return AggregateExpr(
            str(node.op).lower(),
            _convert(node.expr),
            param,
            grouping,
            without,
            has_grouping=mod is not None,
        )
    if kind == "BinaryExpr":
        return _binary(node)
    raise OracleError(f"unknown Rust node {kind}")
