"""The one place that maps errors to HTTP status and renders Prometheus' JSON envelopes.

Status per ``errorType`` follows Prometheus' ``web/api/v1`` ``returnAPIError``: bad_data 400,
execution 422, canceled 499 (client closed request), timeout 503, unavailable 503, not_found 404,
internal 500. Two ingest-only refinements keep ``errorType`` ``bad_data`` but use a more precise
status: a body over the configured limit is 413 and an unsupported content type or encoding is 415.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from promql.errors import BadDataError, TidemarkError

STATUS_BY_ERROR_TYPE: dict[str, int] = {
    "bad_data": 400,
    "execution": 422,
    "canceled": 499,
    "timeout": 503,
    "unavailable": 503,
    "not_found": 404,
    "internal": 500,
    "not_acceptable": 406,
}


class IngestRejected(BadDataError):
    """A rejected ingest request. ``reason`` labels the ``/metrics`` rejection counter."""

    http_status = 400

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PayloadTooLargeError(IngestRejected):
    http_status = 413

    def __init__(self, message: str) -> None:
        super().__init__(message, "too_large")


class UnsupportedMediaTypeError(IngestRejected):
    http_status = 415

    def __init__(self, message: str) -> None:
        super().__init__(message, "unsupported_media_type")


def http_status(err: TidemarkError) -> int:
    explicit = getattr(err, "http_status", None)
    if explicit is not None:
        return int(explicit)
    return STATUS_BY_ERROR_TYPE.get(err.error_type, 500)


def _json(body: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(err: TidemarkError) -> web.Response:
    """``{"status":"error","errorType":..,"error":..}`` with the mapped status."""
    body = {"status": "error", "errorType": err.error_type, "error": err.message}
    return _json(body, http_status(err))


def success_response(
    data: Any, warnings: list[str] | None = None, infos: list[str] | None = None
) -> web.Response:
    """``{"status":"success","data":..}`` plus ``warnings``/``infos`` when there are any."""
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    if infos:
        body["infos"] = infos
    return _json(body, 200)


REJECT_HOOK = web.AppKey("reject_hook", object)
"""Optional callable(request, err) the ops routes install to count rejections by reason."""


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render every ``TidemarkError`` raised by a handler as Prometheus' error envelope.

    Unexpected exceptions become ``internal`` (500) with the exception text, as Prometheus does,
    instead of aiohttp's HTML error page that API clients cannot parse.
    """
    try:
        return await handler(request)
    except TidemarkError as err:
        hook = request.app.get(REJECT_HOOK)
        if hook is not None:
            hook(request, err)
        return error_response(err)
    except web.HTTPException:
        raise
    except Exception as err:  # last-resort envelope; logged below
        request.app.logger.exception("unhandled error on %s", request.path)
        return error_response(TidemarkError(f"{type(err).__name__}: {err}"))
