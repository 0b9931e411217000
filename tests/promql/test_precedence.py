"""Operator precedence and associativity, shown by fully parenthesising the parsed tree."""

from __future__ import annotations

import pytest

from promql import parse
from promql.ast import BinaryExpr, Expr, NumberLiteral, ParenExpr, UnaryExpr, VectorSelector


def _shape(expr: Expr) -> str:
    if isinstance(expr, BinaryExpr):
        return f"({_shape(expr.lhs)} {expr.op} {_shape(expr.rhs)})"
    if isinstance(expr, UnaryExpr):
        return f"({expr.op}{_shape(expr.expr)})"
    if isinstance(expr, ParenExpr):
        return _shape(expr.expr)
    if isinstance(expr, NumberLiteral):
        return f"{expr.value:g}"
    assert isinstance(expr, VectorSelector)
    return expr.name or "?"


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("a or b and c", "(a or (b and c))"),
        ("a and b or c", "((a and b) or c)"),
        ("a unless b and c", "((a unless b) and c)"),
        ("a and b == c", "(a and (b == c))"),
        ("a == b + c", "(a == (b + c))"),
        ("a + b * c", "(a + (b * c))"),
        ("a - b - c", "((a - b) - c)"),
        ("a / b * c % d", "(((a / b) * c) % d)"),
        ("a atan2 b + c", "((a atan2 b) + c)"),
        ("a * b ^ c", "(a * (b ^ c))"),
        ("a ^ b ^ c", "(a ^ (b ^ c))"),
        ("-a ^ b", "(-(a ^ b))"),
        ("-2 ^ 2", "(-(2 ^ 2))"),
        ("-a * b", "((-a) * b)"),
        ("a * -b + c", "((a * (-b)) + c)"),
        ("a ^ -b ^ c", "(a ^ (-(b ^ c)))"),
        ("a ^ -b * c", "((a ^ (-b)) * c)"),
        ("- - a", "(-(-a))"),
        ("a > b < c", "((a > b) < c)"),
        ("a </ b + c", "(a </ (b + c))"),
        ("a + b </ c", "((a + b) </ c)"),
        ("(a + b) * c", "((a + b) * c)"),
        ("a or b unless c and d or e", "((a or ((b unless c) and d)) or e)"),
    ],
)
def test_binary_operators_bind_like_prometheus(text: str, shape: str) -> None:
    assert _shape(parse(text)) == shape


def test_minus_two_squared_is_minus_four() -> None:
    expr = parse("-2^2")
    assert isinstance(expr, UnaryExpr)
    assert isinstance(expr.expr, BinaryExpr) and expr.expr.op == "^"


def test_postfix_modifiers_bind_tighter_than_any_operator() -> None:
    expr = parse("-a offset 5m ^ b @ 10")
    assert isinstance(expr, UnaryExpr)
    power = expr.expr
    assert isinstance(power, BinaryExpr) and power.op == "^"
    assert power.lhs.offset_ms == 300_000
    assert power.rhs.timestamp_ms == 10_000
