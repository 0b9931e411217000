"""Prometheus' query endpoints: ``/api/v1/query``, ``query_range``, ``query_exemplars``,
``format_query`` and ``parse_query`` (GET and form-encoded POST).

Behaviour follows Prometheus 3's ``web/api/v1/api.go``: parameters as ``server.params`` parses
them, ``invalid parameter "query": <parse error>`` for bad queries (bad_data, 400), engine
errors through ``returnAPIError`` (execution 422, timeout 503, canceled 499), ``limit`` truncating
vectors/matrices with the warning ``results truncated due to limit``, at most 10 warnings and 10
infos, CORS headers on every answer (``Vary: Origin``; with an ``Origin`` header the allow-*
headers), gzip when the client accepts it.

Limits: queries run in a thread pool off the event loop, at most ``max_concurrent`` at once;
further queries wait in a queue, as Prometheus' query gate makes them wait, until their timeout
("query timed out in query queue"). A query still running when its timeout passes is answered
with ``timeout`` at once; its thread keeps its slot until the engine stops it (the engine checks
the same deadline), so the server never runs more than ``max_concurrent`` queries. A request
whose previous run with the same parameters was cheap runs on the event loop while no other
query runs (``server.query_api``, which holds the pool, the gate and the engine).

Tidemark extensions (documented in the README of the API):

- ``explain=true``: no execution; ``data`` is ``{"explain": {"text": <plan text>, "plan": <plan
  JSON>}}``.
- ``analyze=true``: execution; ``data`` is the usual ``{"resultType", "result"}`` plus
  ``"analyze": {"text": <plan text with per-node time/series/samples>, "plan": <JSON>}``.
- ``stats=true|all``: ``data.stats`` as Prometheus' shape (``timings`` in seconds measured here,
  ``samples`` from the engine when it reports them).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from typing import Any

import orjson
from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter

from planner.result import QueryResult
from promql.errors import (
    BadDataError,
    ParseError,
    QueryTimeoutError,
    TidemarkError,
)
from promql.types import ValueType
from server.errors import error_response
from server.format import OpenBody, envelope, envelope_tail, pretty, result_body, translate_ast
from server.params import QueryOptions, instant_params, range_params
from server.query_api import QueryAPI, QueryAPIConfig
from server.timeparse import MAX_TIME_MS, MIN_TIME_MS, parse_time

MAX_ANNOTATIONS = 10
# ``,"stats":{..}`` is ~400 bytes: room for it in the body's buffer, so adding it copies nothing.
_STATS_ROOM = 1024
_SEND_SLICE = 1 << 20
_COALESCE_BYTES = 1 << 16
_CORS_HEADERS = {
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type, Origin",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Expose-Headers": "Date",
}


QUERY_API = web.AppKey("tidemark_query_api", QueryAPI)
QUERY_CONFIG = web.AppKey("tidemark_query_config", QueryAPIConfig)


def setup(app: web.Application, config: QueryAPIConfig | None = None) -> None:
    """Register the query routes; the engine is built on startup from the app's storage."""
    if QUERY_CONFIG not in app:
        app[QUERY_CONFIG] = config or QueryAPIConfig()
    for path, handler in (
        ("/api/v1/query", handle_query),
        ("/api/v1/query_range", handle_query_range),
        ("/api/v1/query_exemplars", handle_query_exemplars),
        ("/api/v1/format_query", handle_format_query),
        ("/api/v1/parse_query", handle_parse_query),
    ):
        app.router.add_get(path, handler, allow_head=False)
        app.router.add_post(path, handler)
        app.router.add_route("OPTIONS", path, handle_options)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)


async def _start(app: web.Application) -> None:
    from server.config import STORAGE

    if QUERY_API not in app:
        app[QUERY_API] = QueryAPI(app[STORAGE], app[QUERY_CONFIG])


async def _stop(app: web.Application) -> None:
    if QUERY_API in app:
        app[QUERY_API].close()


# ---------------------------------------------------------------------------------------------
# Handlers


async def handle_query(request: web.Request) -> web.StreamResponse:
    async def body(api: QueryAPI, form: dict[str, str]) -> web.StreamResponse:
        p = instant_params(form, int(time.time() * 1000))
        o = p.options
        if o.explain or o.analyze:
            return await _explain(request, api, o, p.time_ms, p.time_ms, 0, _use_pc(form))
        # Parsed here for a fast 400 without taking a query slot; the engine gets the text so
        # that annotation positions (``(1:6)``) can be rendered, as Prometheus does.
        _parse(o.query, wrap=True)
        engine = api.engine_for(_timeout(api, o), _use_pc(form))
        rendered, queued, took = await api.run(
            lambda: _rendered(
                engine.instant_query(o.query, p.time_ms, lookback_ms=o.lookback_ms), o
            ),
            _timeout(api, o),
            _repeat(request, form),
        )
        return _result_response(request, rendered, o, queued, took)

    return await _guard(request, body)


async def handle_query_range(request: web.Request) -> web.StreamResponse:
    async def body(api: QueryAPI, form: dict[str, str]) -> web.StreamResponse:
        p = range_params(form)
        o = p.options
        if o.explain or o.analyze:
            return await _explain(request, api, o, p.start_ms, p.end_ms, p.step_ms, _use_pc(form))
        # Parsed here for a fast 400 without taking a query slot; the engine gets the text so
        # that annotation positions (``(1:6)``) can be rendered, as Prometheus does.
        _parse(o.query, wrap=True)
        engine = api.engine_for(_timeout(api, o), _use_pc(form))
        rendered, queued, took = await api.run(
            lambda: _rendered(
                engine.range_query(
                    o.query, p.start_ms, p.end_ms, p.step_ms, lookback_ms=o.lookback_ms
                ),
                o,
            ),
            _timeout(api, o),
            _repeat(request, form),
        )
        return _result_response(request, rendered, o, queued, took)

    return await _guard(request, body)


async def handle_query_exemplars(request: web.Request) -> web.StreamResponse:
    """Tidemark stores no exemplars: validated like upstream, the answer is always empty."""

    async def body(api: QueryAPI, form: dict[str, str]) -> web.StreamResponse:
        start = _optional_time(form, "start", MIN_TIME_MS)
        end = _optional_time(form, "end", MAX_TIME_MS)
        if end < start:
            raise BadDataError("end timestamp must not be before start timestamp")
        tree = _parse(form.get("query", ""), wrap=False)
        from promql.ast import VectorSelector, walk

        if not any(isinstance(n, VectorSelector) for n in walk(tree)):
            return _finish(request, web.Response(status=204))
        return _json_response(request, envelope("[]"))

    return await _guard(request, body)


async def handle_format_query(request: web.Request) -> web.StreamResponse:
    async def body(api: QueryAPI, form: dict[str, str]) -> web.StreamResponse:

        tree = _parse(form.get("query", ""), wrap=True)
        return _json_response(request, envelope(orjson.dumps(pretty(tree)).decode()))

    return await _guard(request, body)


async def handle_parse_query(request: web.Request) -> web.StreamResponse:
    async def body(api: QueryAPI, form: dict[str, str]) -> web.StreamResponse:
        tree = _parse(form.get("query", ""), wrap=True)
        return _json_response(request, envelope(orjson.dumps(translate_ast(tree)).decode()))

    return await _guard(request, body)


async def handle_options(request: web.Request) -> web.StreamResponse:
    return _finish(request, web.Response(status=204))


# ---------------------------------------------------------------------------------------------
# Helpers


def _repeat(request: web.Request, form: dict[str, str]) -> Hashable:
    """What makes two query requests the same request (for ``QueryAPI.run``)."""
    return request.path, tuple(form.items())


async def _guard(request: web.Request, body: Callable[..., Any]) -> web.StreamResponse:
    """Form parsing, error envelope and CORS for every handler (never an HTML 500)."""
    try:
        form = await _form(request)
        return await body(request.app[QUERY_API], form)
    except TidemarkError as err:
        return _finish(request, error_response(err))
    except Exception as err:  # an engine bug must still answer in Prometheus' envelope
        request.app.logger.exception("query handler failed on %s", request.path)
        return _finish(request, error_response(TidemarkError(f"{type(err).__name__}: {err}")))


async def _form(request: web.Request) -> dict[str, str]:
    """Go's ``FormValue``: first value per name, POST body values before URL query values."""
    form: dict[str, str] = {}
    if request.method == "POST":
        ctype = request.content_type
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            posted = await request.post()
            for k in posted:
                v = posted.get(k)
                if isinstance(v, str):
                    form.setdefault(k, v)
    for k in request.query:
        form.setdefault(k, request.query.get(k, ""))
    return form


def _timeout(api: QueryAPI, o: QueryOptions) -> float:
    if o.timeout_s is None:
        return api.config.timeout_s
    if o.timeout_s <= 0:
        # Prometheus sets a deadline that has already passed: the query gate gives up at once.
        raise QueryTimeoutError("query timed out in query queue")
    return min(o.timeout_s, api.config.timeout_s)


def _optional_time(form: dict[str, str], name: str, default: int) -> int:
    value = form.get(name, "")
    if value == "":
        return default
    try:
        return parse_time(value)
    except ValueError as err:
        raise BadDataError(
            f"invalid parameter \"{name}\": invalid time value for '{name}': {err}"
        ) from err


def _parse(query: str, *, wrap: bool) -> Any:
    try:
        return _parse_cached(query)
    except ParseError as err:
        if wrap:
            raise BadDataError(f'invalid parameter "query": {err}') from err
        raise


@functools.lru_cache(maxsize=1024)
def _parse_cached(query: str) -> Any:
    """Dashboards repeat the same queries and ASTs are immutable: parse each text once (a
    long query costs ~0.5 ms of lark). Errors are not cached: they are raised every time."""
    import promql

    return promql.parse(query)


async def _explain(
    request: web.Request,
    api: QueryAPI,
    o: QueryOptions,
    start: int,
    end: int,
    step: int,
    precompute: bool = True,
) -> web.StreamResponse:
    _parse(o.query, wrap=True)
    engine = api.engine_for(_timeout(api, o), precompute)

    def work() -> tuple[bytes, tuple[OpenBody, bytes] | None]:
        explained = engine.explain(o.query, start, end, step, analyze=o.analyze)
        plan = orjson.dumps({"text": explained.text, "plan": explained.json})
        parts = _result_parts(explained.result, o, len(plan) + 16) if o.analyze else None
        return plan, parts

    (plan, parts), _queued, _took = await api.run(work, _timeout(api, o))
    if not o.analyze:
        return _json_response(request, envelope(b'{"explain":' + plan + b"}"))
    assert parts is not None
    body, tail = parts
    return _json_response(request, body.close(b',"analyze":' + plan, tail))


def _use_pc(form: dict[str, str]) -> bool:
    """``precompute=off`` (Tidemark extension) forces the exact path."""
    return form.get("precompute", "").lower() not in ("off", "false", "0")


def _result_parts(result: QueryResult, o: QueryOptions, room: int = 0) -> tuple[OpenBody, bytes]:
    """The body open after ``data``'s result (room for ``room`` more bytes of ``data``, for
    stats and the envelope tail) and the envelope tail with the capped warnings and infos."""
    warnings = list(result.warnings)
    series = result.series
    limited = result.result_type in (ValueType.VECTOR, ValueType.MATRIX)
    if limited and 0 < o.limit < len(series):
        series = series[: o.limit]
        warnings.append("results truncated due to limit")
    if o.stats not in ("", "true", "all"):
        warnings.append(
            f'value "{o.stats}" for parameter "stats" is deprecated and will be rejected in '
            'the next major release, use "true" or "all"'
        )
    tail = envelope_tail(_cap(warnings, "warning"), _cap(result.infos, "info"))
    room += len(tail) + 1 + (_STATS_ROOM if o.stats else 0)
    return result_body(result, series, room), tail


def _cap(items: list[str], kind: str) -> list[str]:
    if len(items) <= MAX_ANNOTATIONS:
        return list(items)
    extra = len(items) - MAX_ANNOTATIONS
    return [*items[:MAX_ANNOTATIONS], f"{extra} more {kind} annotations omitted"]


def _rendered(result: QueryResult, o: QueryOptions) -> tuple[QueryResult, tuple[OpenBody, bytes]]:
    """Runs in the query thread: JSON formatting of big results stays off the event loop."""
    return result, _result_parts(result, o)


def _result_response(
    request: web.Request,
    rendered: tuple[QueryResult, tuple[OpenBody, bytes]],
    o: QueryOptions,
    queued: float,
    took: float,
) -> web.StreamResponse:
    result, (body, tail) = rendered
    fields = b',"stats":' + _stats(result, queued, took, o.stats) if o.stats else b""
    return _json_response(request, body.close(fields, tail))


def _stats(result: QueryResult, queued: float, took: float, mode: str) -> bytes:
    """Prometheus' ``stats.QueryStats`` shape; sample counts when the result carries them."""
    samples: dict[str, Any] = {}
    total = getattr(result, "total_samples", None)
    peak = getattr(result, "peak_samples", None)
    if total is not None:
        samples["totalQueryableSamples"] = int(total)
    if peak is not None:
        samples["peakSamples"] = int(peak)
    stats = {
        "timings": {
            "evalTotalTime": took,
            "resultSortTime": 0,
            "queryPreparationTime": 0,
            "innerEvalTime": took,
            "execQueueTime": queued,
            "execTotalTime": queued + took,
        },
        "samples": samples,
    }
    return orjson.dumps(stats)


def _json_response(request: web.Request, body: bytes | memoryview) -> web.StreamResponse:
    sent: bytes | _BodyPayload
    if not isinstance(body, memoryview):
        sent = body
    elif body.nbytes <= _COALESCE_BYTES:
        # Copied (nothing much) to take aiohttp's plain path: no payload object, and one send
        # with the headers instead of two (~20-40 us each to a local client).
        sent = bytes(body)
    else:
        sent = _BodyPayload(body)
    resp = web.Response(body=sent, content_type="application/json")
    return _finish(request, resp)


class _BodyPayload(payload.Payload):
    """A finished body (``OpenBody.close``) handed to the transport as it is. aiohttp's own
    paths copy a big body once more: ``bytes`` are joined with the headers into one new
    ``bytes`` (no ``writelines`` before Python 3.12.9) and its ``memoryview`` payload does the
    same (and warns above 1 MB). Here the headers are sent first, then the buffer itself;
    Content-Length, HEAD and gzip (streamed, compressed in aiohttp's executor) work as usual.
    A 40 MB body reaches a local client in ~50-60 ms this way, ~120 ms as ``bytes``
    (``bench/json_out.py``)."""

    def __init__(self, body: memoryview) -> None:
        super().__init__(body, content_type="application/json")
        self._size = body.nbytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        writer.send_headers()
        body = self._value if content_length is None else self._value[:content_length]
        # In slices, each awaited until the transport drains: asyncio's transport copies what
        # the socket does not take at once into its own buffer (a second 40 MB otherwise).
        for start in range(0, body.nbytes, _SEND_SLICE):
            await writer.write(body[start : start + _SEND_SLICE])


def _finish(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """CORS as Prometheus' ``httputil.SetCORS``; gzip/deflate when the client accepts it."""
    resp.headers.add("Vary", "Origin")
    origin = request.headers.get("Origin", "")
    if origin:
        resp.headers.update(_CORS_HEADERS)
        api = request.app.get(QUERY_API)
        pattern = api.cors.pattern if api is not None else "^(?:.*)$"
        if pattern == "^(?:.*)$":
            resp.headers["Access-Control-Allow-Origin"] = "*"
        elif api is not None and api.cors.match(origin):
            resp.headers["Access-Control-Allow-Origin"] = origin
    accept = request.headers.get("Accept-Encoding", "")
    if resp.status != 204 and ("gzip" in accept or "deflate" in accept):
        coding = web.ContentCoding.gzip if "gzip" in accept else web.ContentCoding.deflate
        resp.enable_compression(coding)
    return resp
