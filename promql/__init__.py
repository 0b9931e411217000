"""PromQL front end: lark grammar, parser to a typed AST, type checker and printer.

Public API::

    from promql import parse, format, ParseError, ParserOptions, parse_metric_selector

    expr = parse('sum by (job) (rate(http_requests_total[5m]))')
    format(expr)  # 'sum by (job) (rate(http_requests_total[5m]))'
    parse("limitk(2, x)", ParserOptions(experimental=True))  # experimental syntax opt-in
    parse_metric_selector('up{job="a"}')  # matchers of a match[] selector

``ParseError`` reads ``line:col: parse error: <Prometheus' message>``; ``error.pos`` is the
offending range, ``error.position`` its 1-based line and column.
"""

from __future__ import annotations

from promql.ast import Expr
from promql.errors import ParseError
from promql.parser import ParserOptions, parse, parse_metric_selector
from promql.printer import format_expr


def format(expr: Expr) -> str:
    """Canonical PromQL text of ``expr`` (Prometheus' ``String()`` form)."""
    return format_expr(expr)


__all__ = ["ParseError", "ParserOptions", "format", "parse", "parse_metric_selector"]
