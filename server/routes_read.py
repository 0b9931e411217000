"""Read endpoints that need only the store: series, labels, label values, metadata, export.

Shapes and error texts follow Prometheus 2.42's ``web/api/v1/api.go``. Store calls run in the read
pool so a large scan never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDictProxy

from promql.errors import BadDataError
from server.config import READ_POOL, storage_of
from server.errors import success_response
from server.export import export_lines
from server.selectors import match_param
from server.timeparse import MAX_TIME_MS, MIN_TIME_MS, time_param

T = TypeVar("T")


async def _params(request: web.Request) -> MultiDictProxy[str]:
    """Query string for GET; form body merged after the query string for POST (as Go's Form)."""
    if request.method == "POST":
        form = await request.post()
        merged = request.query.copy()
        for k, v in form.items():
            if isinstance(v, str):
                merged.add(k, v)
        return MultiDictProxy(merged)
    return request.query


async def _in_pool(request: web.Request, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(request.app[READ_POOL], fn)


def _range(params: MultiDictProxy[str]) -> tuple[int, int]:
    start = time_param(params.get("start"), "start", MIN_TIME_MS)
    end = time_param(params.get("end"), "end", MAX_TIME_MS)
    if end < start:
        raise BadDataError("end timestamp must not be before start time")
    return start, end


def _bounds(start: int, end: int) -> tuple[int | None, int | None]:
    """Open bounds are passed to the store as None (no time filter at all)."""
    return (None if start == MIN_TIME_MS else start), (None if end == MAX_TIME_MS else end)


def _limit(params: MultiDictProxy[str]) -> int | None:
    raw = params.get("limit")
    if raw is None or raw == "":
        return None
    try:
        limit = int(raw)
    except ValueError as err:
        raise BadDataError(
            f'invalid parameter "limit": cannot parse "{raw}" as an integer'
        ) from err
    if limit < 0:
        raise BadDataError('invalid parameter "limit": must be non-negative')
    return limit or None


def _truncate(items: list[Any], limit: int | None) -> tuple[list[Any], list[str]]:
    if limit is not None and len(items) > limit:
        return items[:limit], ["results truncated due to limit"]
    return items, []


async def series(request: web.Request) -> web.Response:
    params = await _params(request)
    sets = match_param(params.getall("match[]", []), required=True)
    mint, maxt = _bounds(*_range(params))
    limit = _limit(params)
    storage = storage_of(request.app)
    fetch = None if limit is None else limit + 1
    found = await _in_pool(request, lambda: storage.series(sets, mint, maxt, fetch))
    found, warnings = _truncate(found, limit)
    return success_response([dict(lab) for lab in found], warnings=warnings)


async def labels(request: web.Request) -> web.Response:
    params = await _params(request)
    sets = match_param(params.getall("match[]", []), required=False)
    mint, maxt = _bounds(*_range(params))
    storage = storage_of(request.app)
    names = await _in_pool(request, lambda: storage.label_names(sets, mint, maxt))
    names, warnings = _truncate(names, _limit(params))
    return success_response(names, warnings=warnings)


async def label_values(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name.startswith("U__"):
        name = _unescape_label_name(name)
    if not name:
        raise BadDataError(f"invalid label name: {name!r}")
    params = await _params(request)
    sets = match_param(params.getall("match[]", []), required=False)
    mint, maxt = _bounds(*_range(params))
    storage = storage_of(request.app)
    values = await _in_pool(request, lambda: storage.label_values(name, sets, mint, maxt))
    values, warnings = _truncate(values, _limit(params))
    return success_response(values, warnings=warnings)


def _unescape_label_name(name: str) -> str:
    """Prometheus 3's ``U__`` value encoding for UTF-8 label names in URL paths.

    ``_`` stands for itself when doubled (``__``) and ``_<hex>_`` is a code point.
    """
    out: list[str] = []
    body = name[3:]
    i = 0
    while i < len(body):
        c = body[i]
        if c != "_":
            out.append(c)
            i += 1
        elif body.startswith("__", i):
            out.append("_")
            i += 2
        else:
            end = body.find("_", i + 1)
            try:
                out.append(chr(int(body[i + 1 : end], 16)))
            except ValueError as err:
                raise BadDataError(f"invalid label name: {name!r}") from err
            i = end + 1
    return "".join(out)


async def metadata(request: web.Request) -> web.Response:
    params = await _params(request)
    limit = _limit(params)
    metric = params.get("metric") or None
    found = storage_of(request.app).metadata(metric, limit)
    data = {
        name: [{"type": m.type, "help": m.help, "unit": m.unit} for m in entries]
        for name, entries in found.items()
    }
    return success_response(data)


async def export(request: web.Request) -> web.StreamResponse:
    """VictoriaMetrics JSON-lines export of raw samples (see ``server/export.py``)."""
    params = await _params(request)
    sets = match_param(params.getall("match[]", []), required=True)
    assert sets is not None
    start, end = _range(params)
    storage = storage_of(request.app)
    resp = web.StreamResponse(headers={"Content-Type": "application/stream+json"})
    await resp.prepare(request)
    seen: set[int] = set()
    for matchers in sets:
        ss = await _in_pool(request, lambda m=matchers: storage.select(m, start, end))
        for chunk in export_lines(ss, seen):
            await resp.write(chunk)
    await resp.write_eof()
    return resp


def setup(app: web.Application) -> None:
    for path, handler in (
        ("/api/v1/series", series),
        ("/api/v1/labels", labels),
        ("/api/v1/label/{name}/values", label_values),
        ("/api/v1/metadata", metadata),
    ):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
    app.router.add_get("/api/v1/export", export)
    app.router.add_post("/api/v1/export", export)
