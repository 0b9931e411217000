"""``tidemark serve``: open the store, serve the HTTP API, shut down cleanly on SIGTERM/SIGINT.

Shutdown order: stop accepting connections and let in-flight requests finish (aiohttp's runner
cleanup, bounded by ``--shutdown-timeout``), stop the worker pools, then flush and close the store,
so every acknowledged write is in the WAL and the head is persisted where it can be.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from server.allocator import tune_allocator
from server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig
from server.timeparse import parse_duration

if TYPE_CHECKING:
    from planner.sketch_budget import Budget

log = logging.getLogger("tidemark")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (default host) or ``[v6]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return (host.strip("[]") or DEFAULT_HOST), int(port)


def _duration_ms(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


async def serve(config: ServerConfig, storage: object, query_config: object = None) -> None:
    from server.app import create_app
    from server.routes_query import QUERY_CONFIG

    app = create_app(config, storage)
    if query_config is not None:
        app[QUERY_CONFIG] = query_config
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=config.shutdown_timeout_s, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    print(f"tidemark listening on http://{config.host}:{config.port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def _byte_size(text: str) -> str:
    """``--sketch-cache-bytes``: checked here, read by ``planner.sketch_budget`` (a percentage
    needs the machine's memory, so the text is kept)."""
    from planner.sketch_budget import parse_bytes

    try:
        parse_bytes(text, memory_bytes=1)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err
    return text


def configure_sketch_cache(flag: str | None, environ: Mapping[str, str]) -> Budget:
    """Set the decoded-window cache budget: the flag, else the environment, else the machine's
    (``planner.sketch_budget``); logged, and shown on ``/api/v1/precompute/status``."""
    from planner import sketch_cache
    from planner.sketch_budget import resolve_budget

    budget = resolve_budget(flag, environ)
    sketch_cache.configure(budget)
    log.info("sketch cache budget %s", budget.describe())
    return budget


def run(args: argparse.Namespace) -> int:
    from storage.db import Storage, StorageOptions

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        configure_sketch_cache(args.sketch_cache_bytes, os.environ)
    except ValueError as err:  # e.g. TIDEMARK_SKETCH_CACHE_BYTES=lots
        print(f"error: {err}", file=sys.stderr)
        return 1
    host, port = args.listen
    config = ServerConfig(
        host=host,
        port=port,
        data_dir=Path(args.data_dir),
        max_body_bytes=args.max_body_bytes,
        max_decompressed_bytes=args.max_decompressed_bytes,
        ingest_threads=args.ingest_threads,
        max_inflight_ingest=args.max_inflight_ingest,
    )
    options = StorageOptions(fsync=args.fsync, retention_ms=args.retention)
    try:
        storage = Storage.open(config.data_dir, options)
    except OSError as err:  # e.g. the directory is held by another running server
        print(f"error: {err}", file=sys.stderr)
        return 1
    from server.routes_precompute import configure as configure_precompute

    configure_precompute(args, storage, config.data_dir)  # no-op without --precompute
    # Millions of long-lived label tuples make the cyclic GC's full passes expensive and
    # they never form cycles: move what exists at start out of its reach, collect young less often.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    tune_allocator()
    from server.app import new_event_loop

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(config, storage, _query_config(args)))
    finally:
        storage.flush()
        storage.close()
        log.info("storage flushed and closed")
    return 0


def _query_config(args: argparse.Namespace) -> object:
    from server.query_api import QueryAPIConfig

    return QueryAPIConfig(
        max_concurrent=args.query_max_concurrency,
        timeout_s=args.query_timeout / 1000.0,
        max_samples=args.query_max_samples,
        lookback_ms=args.query_lookback_delta,
        cors_origin=args.web_cors_origin,
        inline_below_s=args.query_inline_below / 1000.0,
    )


def _duration_flag(p: argparse.ArgumentParser, flag: str, default_ms: int, text: str) -> None:
    """A ``--query.<name>`` duration flag (``5m``, ``250ms`` or seconds), stored in ms as
    ``query_<name>`` with dashes as underscores."""
    dest = "query_" + flag.removeprefix("--query.").replace("-", "_")
    p.add_argument(flag, dest=dest, type=_duration_ms, default=default_ms, metavar="DURATION",
                   help=text)  # fmt: skip


def _add_query_arguments(p: argparse.ArgumentParser) -> None:
    """Prometheus' own ``--query.*`` / ``--web.cors.origin`` flags, with its defaults."""
    from server.query_api import QueryAPIConfig

    d = QueryAPIConfig()
    _duration_flag(
        p, "--query.timeout", int(d.timeout_s * 1000),
        "maximum time a query may take before it is aborted (default 2m)",
    )  # fmt: skip
    p.add_argument(
        "--query.max-concurrency",
        dest="query_max_concurrency",
        type=int,
        default=d.max_concurrent,
        help="maximum number of queries executed concurrently (default 20)",
    )
    p.add_argument(
        "--query.max-samples",
        dest="query_max_samples",
        type=int,
        default=d.max_samples,
        help="maximum number of samples a single query can load into memory",
    )
    _duration_flag(
        p, "--query.lookback-delta", d.lookback_ms,
        "how far back to look for a sample of an instant vector (default 5m)",
    )  # fmt: skip
    _duration_flag(
        p, "--query.inline-below", int(d.inline_below_s * 1000),
        "a query whose previous run with the same parameters took at most this long runs on the "
        "event loop while no other query runs, without the hand-off to a query thread; 0 turns "
        "it off (default 2ms; a Tidemark flag)",
    )  # fmt: skip
    p.add_argument(
        "--web.cors.origin",
        dest="web_cors_origin",
        default=d.cors_origin,
        help="regex for CORS origin, fully anchored (default .*)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP server (ingest + Prometheus API)")
    p.add_argument(
        "--listen",
        type=parse_listen,
        default=(DEFAULT_HOST, DEFAULT_PORT),
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_HOST}:{DEFAULT_PORT})",
    )
    p.add_argument("--data-dir", default="./data", help="storage directory (default ./data)")
    p.add_argument("--fsync", action="store_true", help="fsync the WAL before acknowledging writes")
    p.add_argument(
        "--retention",
        type=_duration_ms,
        default=None,
        metavar="DURATION",
        help="delete blocks older than this (e.g. 15d); default keeps everything",
    )
    defaults = ServerConfig()
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="largest request body as sent (413 above)",
    )
    p.add_argument(
        "--max-decompressed-bytes",
        type=int,
        default=defaults.max_decompressed_bytes,
        help="largest body after decompression (413 above)",
    )
    p.add_argument("--ingest-threads", type=int, default=defaults.ingest_threads)
    p.add_argument(
        "--max-inflight-ingest",
        type=int,
        default=defaults.max_inflight_ingest,
        help="concurrent ingest requests before answering 503",
    )
    p.add_argument(
        "--sketch-cache-bytes",
        type=_byte_size,
        default=None,
        metavar="SIZE",
        help="memory for decoded sketch windows, e.g. 536870912, 512MiB, 2GB or 25%% (default: "
        "$TIDEMARK_SKETCH_CACHE_BYTES, else 1/8 of the memory or cgroup limit, 256MiB..8GiB)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_query_arguments(p)
    from server.routes_precompute import add_arguments as precompute_arguments

    precompute_arguments(p)
    p.set_defaults(func=run)
