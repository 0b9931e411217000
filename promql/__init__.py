"""PromQL front end: lark grammar, parser to a typed AST, type checker and printer.

Public API::

    from promql import parse, format, ParseError, ParserOptions

    expr = parse('sum by (job) (rate(http_requests_total[5m]))')
    format(expr)  # 'sum by (job) (rate(http_requests_total[5m]))'
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
