"""``tidemark query QUERY [--time T | --start S --end E --step D] [--data-dir DIR] [--json]``.

Runs one query against a data directory (opened read-mostly; flushed nothing) and prints the
result as Prometheus' API ``data`` JSON, or with ``--text`` one ``labels value@time`` per line.
"""

from __future__ import annotations

import argparse
import sys
import time

from promql.errors import TidemarkError


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="the PromQL expression")
    p.add_argument("--time", help="evaluation time (unix seconds or RFC 3339; default now)")
    p.add_argument("--start", help="range query start (unix seconds or RFC 3339)")
    p.add_argument("--end", help="range query end (default now)")
    p.add_argument("--step", help="range query step (duration or seconds)")
    p.add_argument("--data-dir", default="./data", help="storage directory (default ./data)")
    p.add_argument("--lookback-delta", help="lookback delta (default 5m)")
    p.add_argument("--experimental", action="store_true", help="enable experimental PromQL")


def resolve_times(args: argparse.Namespace) -> tuple[int, int, int]:
    """``(start, end, step)`` in ms; an instant query has ``start == end`` and step 0."""
    from server.timeparse import parse_duration, parse_time

    now = int(time.time() * 1000)
    if args.start is None and args.step is None:
        t = parse_time(args.time) if args.time else now
        return t, t, 0
    if args.start is None or args.step is None:
        raise ValueError("a range query needs --start and --step (and optionally --end)")
    end = parse_time(args.end) if args.end else now
    return parse_time(args.start), end, parse_duration(args.step)


def open_engine(args: argparse.Namespace):
    from planner.engine import Engine, EngineOptions
    from server.timeparse import parse_duration
    from storage.db import Storage

    storage = Storage.open(args.data_dir)
    opts = EngineOptions(experimental=args.experimental)
    if args.lookback_delta:
        opts = EngineOptions(
            experimental=args.experimental, lookback_ms=parse_duration(args.lookback_delta)
        )
    return storage, Engine(storage, opts)


def run(args: argparse.Namespace) -> int:
    from server.format import result_json

    try:
        start, end, step = resolve_times(args)
        storage, engine = open_engine(args)
    except (ValueError, OSError, TidemarkError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if step == 0:
            result = engine.instant_query(args.query, start)
        else:
            result = engine.range_query(args.query, start, end, step)
    except TidemarkError as err:
        print(f"error ({err.error_type}): {err}", file=sys.stderr)
        return 1
    finally:
        storage.close()
    if args.text:
        for s in result.series:
            points = " ".join(
                f"{float(v)!r}@{t / 1000:g}"
                for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True)
            )
            print(f"{_labels(s.labels)} {points}")
        if result.scalar is not None:
            print(f"scalar {result.scalar[1]!r}@{result.scalar[0] / 1000:g}")
        if result.string is not None:
            print(f"string {result.string[1]!r}")
    else:
        print(result_json(result))
    for w in [*result.warnings, *result.infos]:
        print(w, file=sys.stderr)
    return 0


def _labels(labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="run a PromQL query against a data directory")
    add_common(p)
    p.add_argument("--text", action="store_true", help="plain text instead of API JSON")
    p.set_defaults(func=run)
