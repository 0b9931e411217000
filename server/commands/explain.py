"""``tidemark explain QUERY [--analyze] [--verbose] [--json] [time options]``.

Prints the optimized plan (``--verbose``: the plan after every rule too); ``--analyze`` runs the
query and adds per-node wall time, series and samples.
"""

from __future__ import annotations

import argparse
import json
import sys

from promql.errors import TidemarkError
from server.commands.query import add_common, open_engine, resolve_times


def run(args: argparse.Namespace) -> int:
    try:
        start, end, step = resolve_times(args)
        storage, engine = open_engine(args)
    except (ValueError, OSError, TidemarkError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        out = engine.explain(
            args.query, start, end, step, analyze=args.analyze, verbose=args.verbose
        )
    except TidemarkError as err:
        print(f"error ({err.error_type}): {err}", file=sys.stderr)
        return 1
    finally:
        storage.close()
    if args.json:
        print(json.dumps(out.json, indent=2, sort_keys=True))
    else:
        sys.stdout.write(out.text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="show a query's plan (--analyze: execute and time it)")
    add_common(p)
    p.add_argument("--analyze", action="store_true", help="execute; per-node time/series/samples")
    p.add_argument("--verbose", action="store_true", help="also the plan after each rule")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.set_defaults(func=run)
