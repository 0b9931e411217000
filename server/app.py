"""``create_app(config, storage)``: the aiohttp application and its route modules.

Route modules are listed in ``ROUTE_MODULES``; each exposes ``setup(app)`` that registers its
routes (and may read ``app[STORAGE]`` etc. from ``server.config``). A module that does not exist
yet is skipped, so areas land independently: add a name here to add an area.
"""

from __future__ import annotations

import asyncio
import importlib
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from server.config import CONFIG, INGEST_POOL, METRICS, READ_POOL, STORAGE, ServerConfig
from server.errors import error_middleware
from server.metrics import ServerMetrics

ROUTE_MODULES: tuple[str, ...] = (
    "server.routes_ops",
    "server.routes_ingest",
    "server.routes_read",
    "server.routes_status",  # status pages, and empty rules/alerts/targets (nothing scraped)
    "server.routes_query",  # query API engineer: /api/v1/query*, format_query, parse_query
    "server.routes_precompute",  # precompute engineer: /api/v1/precompute/*
)


def _load(name: str) -> object | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            return None
        raise


def create_app(config: ServerConfig, storage: object) -> web.Application:
    """The application over an open ``storage.db.Storage`` (the caller owns and closes it)."""
    # Bodies are read with our own bound (server/body.py) so the 413 carries our envelope, and
    # decompressed by us (server/compression.py): aiohttp's own Content-Encoding handling would
    # expand gzip without a size bound and reject zstd and snappy.
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=config.max_body_bytes + 1,
        handler_args={"auto_decompress": False},
    )
    app[CONFIG] = config
    app[STORAGE] = storage
    app[METRICS] = ServerMetrics()
    app[INGEST_POOL] = ThreadPoolExecutor(config.ingest_threads, thread_name_prefix="ingest")
    app[READ_POOL] = ThreadPoolExecutor(config.read_threads, thread_name_prefix="read")
    for name in ROUTE_MODULES:
        module = _load(name)
        if module is not None:
            module.setup(app)  # type: ignore[attr-defined]
    app.on_cleanup.append(_stop_pools)
    return app


async def _stop_pools(app: web.Application) -> None:
    app[INGEST_POOL].shutdown(wait=True)
    app[READ_POOL].shutdown(wait=True)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop to serve on: uvloop's when it is installed (a dependency on Linux; its accept,
    transports and timers are C: ~0.06-0.1 ms less per request on a new connection than the
    standard loop), else asyncio's, which serves the same."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
