"""Operational endpoints: health, readiness, build info and Tidemark's own ``/metrics``."""

from __future__ import annotations

import functools
import platform
from importlib import metadata as pkg_metadata

from aiohttp import web

from promql.errors import TidemarkError
from server.config import EXTRA_METRICS, metrics_of, storage_of
from server.errors import REJECT_HOOK, IngestRejected, success_response

READY = web.AppKey("tidemark_ready", dict)


@functools.cache
def _version() -> str:
    try:
        return pkg_metadata.version("tidemark")
    except pkg_metadata.PackageNotFoundError:
        return "0.1.0+source"


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="Tidemark is Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if not request.app[READY]["ready"]:
        return web.Response(status=503, text="Service Unavailable\n")
    return web.Response(text="Tidemark is Ready.\n")


async def buildinfo(_: web.Request) -> web.Response:
    return success_response(
        {
            "version": _version(),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": f"python{platform.python_version()}",
        }
    )


async def metrics(request: web.Request) -> web.Response:
    stats = storage_of(request.app).stats()
    text = metrics_of(request.app).render(stats)
    text += "".join(render(request.app) for render in request.app.get(EXTRA_METRICS, []))
    return web.Response(
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _count_rejection(request: web.Request, err: TidemarkError) -> None:
    reason = err.reason if isinstance(err, IngestRejected) else err.error_type
    metrics_of(request.app).reject(reason)


async def _not_ready(app: web.Application) -> None:
    app[READY]["ready"] = False


def setup(app: web.Application) -> None:
    app[READY] = {"ready": True}
    app.on_shutdown.append(_not_ready)
    app[REJECT_HOOK] = _count_rejection
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/api/v1/status/buildinfo", buildinfo)
    app.router.add_get("/metrics", metrics)
