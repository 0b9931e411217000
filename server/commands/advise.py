"""``tidemark advise FILE [-o OUT]``: a StreamingConfig YAML that would accelerate the queries in
FILE (PromQL one per line, or a Grafana dashboard JSON); queries it cannot help go to stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.timeparse import parse_duration


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    from planner.advise import AdviseOptions, advise, read_queries

    opts = AdviseOptions(
        rate_interval_ms=args.rate_interval, interval_ms=args.interval, range_ms=args.range
    )
    try:
        text = Path(args.file).read_text(encoding="utf-8") if args.file != "-" else sys.stdin.read()
        queries = read_queries(text, opts)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    label_names = None
    storage = None
    if args.data_dir:
        from promql.types import Matcher, MatchType
        from storage.db import Storage
        from storage.model import METRIC_NAME

        storage = Storage.open(args.data_dir)

        def label_names(metric: str) -> list[str] | None:
            names = storage.label_names([[Matcher(MatchType.EQUAL, METRIC_NAME, metric)]])
            return list(names) or None

    try:
        advice = advise(queries, opts, label_names)
    finally:
        if storage is not None:
            storage.close()
    out = advice.yaml()
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    for query, why in advice.unhelped:
        print(f"cannot help: {query}\n  because: {why}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("advise", help="propose a precompute config for queries or a dashboard")
    p.add_argument(
        "file", help="PromQL queries (one per line) or Grafana dashboard JSON; - = stdin"
    )
    p.add_argument("-o", "--output", help="write the YAML here instead of stdout")
    p.add_argument("--data-dir", help="read the metrics' label names from this store")
    p.add_argument("--rate-interval", type=_duration, default=60_000, help="$__rate_interval")
    p.add_argument("--interval", type=_duration, default=60_000, help="$__interval and the step")
    p.add_argument("--range", type=_duration, default=3_600_000, help="$__range")
    p.set_defaults(func=run)
