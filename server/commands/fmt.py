"""``tidemark fmt QUERY``: print the query as Prometheus' ``format_query`` would."""

from __future__ import annotations

import argparse
import sys

from promql.errors import TidemarkError


def run(args: argparse.Namespace) -> int:
    import promql

    try:
        expr = promql.parse(args.query)  # type: ignore[attr-defined]
    except TidemarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(promql.format(expr))  # type: ignore[attr-defined]
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmt", help="format a PromQL query (prints the error, exit 1, if invalid)")
    p.add_argument("query", help="the PromQL expression")
    p.set_defaults(func=run)
