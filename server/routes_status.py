"""Prometheus' status and discovery endpoints that Grafana, promtool and the Prometheus UI call.

Tidemark scrapes nothing and evaluates no rules, so targets, rules, alerts and alertmanagers are
answered with Prometheus' own shapes, empty (Grafana's alerting view lists data-source rules
through ``/api/v1/rules`` and treats a 404 as an error). The status pages report what Tidemark
has: its configuration, flags, runtime facts and the store's cardinality.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import yaml
from aiohttp import web

from promql.errors import BadDataError, UnavailableError
from server.config import CONFIG, READ_POOL, storage_of
from server.errors import success_response

_ATOI = re.compile(r"[+-]?[0-9]{1,18}")
STARTED = web.AppKey("tidemark_started_at", float)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def _settings(app: web.Application) -> dict[str, str]:
    """The server's settings as flag name -> text (``/api/v1/status/flags``)."""
    return {k.replace("_", "."): str(v) for k, v in asdict(app[CONFIG]).items()}


async def runtimeinfo(request: web.Request) -> web.Response:
    started = request.app[STARTED]
    return success_response(
        {
            "startTime": _iso(started),
            "CWD": os.getcwd(),
            "reloadConfigSuccess": True,
            "lastConfigTime": _iso(started),
            "corruptionCount": 0,
            "goroutineCount": threading.active_count(),
            "GOMAXPROCS": os.cpu_count() or 1,
            "GOMEMLIMIT": 0,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": _retention(request.app),
        }
    )


def _retention(app: web.Application) -> str:
    options = getattr(storage_of(app), "options", None)
    retention_ms = getattr(options, "retention_ms", None)
    if not retention_ms:
        return "unlimited"
    return f"{retention_ms // 1000}s"


async def flags(request: web.Request) -> web.Response:
    return success_response(_settings(request.app))


async def config(request: web.Request) -> web.Response:
    return success_response({"yaml": yaml.safe_dump(_settings(request.app), sort_keys=True)})


async def tsdb(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "")
    limit = int(raw) if _ATOI.fullmatch(raw) else 0 if raw else 10
    if limit < 1:  # Prometheus answers any unusable limit with this one message
        raise BadDataError("limit must be a positive number")
    storage = storage_of(request.app)
    data = await asyncio.get_running_loop().run_in_executor(
        request.app[READ_POOL], storage.cardinality, limit
    )
    return success_response(data)


async def walreplay(_: web.Request) -> web.Response:
    # The WAL is replayed before the server listens: by the time anyone asks, it is done.
    return success_response({"min": 0, "max": 0, "current": 0})


def _empty(data: Any):
    async def handler(_: web.Request) -> web.Response:
        return success_response(data)

    return handler


async def admin(_: web.Request) -> web.Response:
    raise UnavailableError("admin APIs disabled")


def setup(app: web.Application) -> None:
    app[STARTED] = time.time()
    for path, handler in (
        ("/api/v1/status/runtimeinfo", runtimeinfo),
        ("/api/v1/status/flags", flags),
        ("/api/v1/status/config", config),
        ("/api/v1/status/tsdb", tsdb),
        ("/api/v1/status/walreplay", walreplay),
        ("/api/v1/rules", _empty({"groups": []})),
        ("/api/v1/alerts", _empty({"alerts": []})),
        (
            "/api/v1/targets",
            _empty({"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}}),
        ),
        ("/api/v1/targets/metadata", _empty([])),
        (
            "/api/v1/alertmanagers",
            _empty({"activeAlertmanagers": [], "droppedAlertmanagers": []}),
        ),
        ("/api/v1/scrape_pools", _empty({"scrapePools": []})),
        ("/api/v1/notifications", _empty([])),
    ):
        app.router.add_get(path, handler)
    for name in ("delete_series", "clean_tombstones", "snapshot"):
        app.router.add_route("*", f"/api/v1/admin/tsdb/{name}", admin)
