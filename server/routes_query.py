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
the same deadline), so the server never runs more than ``max_concurrent`` queries.

Tidemark extensions (documented in the README of the API):

- ``explain=true``: no execution; ``data`` is ``{"explain": {"text": <plan text>, "plan": <plan
  JSON>}}``.
- ``analyze=true``: execution; ``data`` is the usual ``{"resultType", "result"}`` plus
  ``"analyze": {"text": <plan text with per-node time/series/samples>, "plan": <JSON>}``.
- ``stats=true|all``: ``data.stats`` as Prometheus' shape (``timings`` in seconds measured here,
  ``samples`` from the engine when it reports them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import re
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter

from planner.result import QueryResult
from planner.window_cells import warm_up as warm_up_window_cells
from promql.errors import (
    BadDataError,
    ParseError,
    QueryTimeoutError,
    TidemarkError,
    UnavailableError,
)
from promql.types import ValueType
from server.errors import error_response
from server.format import OpenBody, envelope, envelope_tail, pretty, result_body, translate_ast
from server.json_matrix import warm_up as warm_up_matrix_json
from server.params import QueryOptions, instant_params, range_params
from server.timeparse import MAX_TIME_MS, MIN_TIME_MS, parse_time
from storage.arrays import warm_up as warm_up_storage_reads
from udfs.aggregation import warm_up as warm_up_aggregation
from udfs.extrapolation import warm_up as warm_up_extrapolation
from udfs.histogram_kernels import warm_up as warm_up_histogram
from udfs.range_functions import warm_up as warm_up_rates
from udfs.weighted_quantile import warm_up as warm_up_weighted_quantile
from udfs.windows import warm_up as warm_up_windows

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


_WARM_UPS = (
    warm_up_matrix_json,
    warm_up_storage_reads,
    warm_up_windows,
    warm_up_extrapolation,
    warm_up_rates,
    warm_up_window_cells,
    warm_up_aggregation,
    warm_up_weighted_quantile,
    warm_up_histogram,
)


@dataclass(frozen=True)
class QueryAPIConfig:
    """Prometheus' ``--query.*`` flags: same defaults (lookback 5m, timeout 2m, 20 at once)."""

    max_concurrent: int = 20
    timeout_s: float = 120.0
    max_samples: int = 50_000_000
    lookback_ms: int = 300_000
    cors_origin: str = ".*"  # --web.cors.origin
    # A request whose last run (same path and parameters) took at most this long runs on the
    # event loop when no other query is running: the hand-off to a pool thread and back costs
    # ~0.1 ms of wake-ups on each side, as much as such a query's work. 0 turns it off.
    inline_below_s: float = 0.002


class QueryAPI:
    """Engine, thread pool and concurrency gate shared by the query handlers of one app."""

    def __init__(self, storage: object, config: QueryAPIConfig) -> None:
        self.config = config
        self.storage = storage
        self.pool = ThreadPoolExecutor(config.max_concurrent, thread_name_prefix="query")
        self.cors = re.compile(f"^(?:{config.cors_origin})$")
        self._gate: asyncio.Semaphore | None = None
        self._running = 0  # queries in pool threads, from hand-off until their thread returns
        self._costs: dict[Hashable, float] = {}  # seconds each request's last run took
        self._engine: Any = None
        self._options: Any = None
        # Compile (or load from numba's cache) the read path's and the JSON writer's kernels
        # off the request path (~0.25 s per kernel module on first use in a process).
        for warm_up in _WARM_UPS:
            self.pool.submit(warm_up)

    def engine_for(self, timeout_s: float, precompute: bool = True) -> Any:
        """The shared engine, or one with a shorter timeout for a request's ``timeout`` (or
        without the precompute path for ``precompute=off``)."""
        if self._engine is None:
            try:
                from planner.engine import Engine, EngineOptions
            except ImportError as err:  # keeps format/parse_query and other areas serving
                raise UnavailableError(f"query engine not available: {err}") from err
            self._options = EngineOptions(
                lookback_ms=self.config.lookback_ms,
                max_samples=self.config.max_samples,
                timeout_s=self.config.timeout_s,
            )
            self._engine = Engine(self.storage, self._options, sketch_source(self.storage))
        if timeout_s >= self._options.timeout_s and precompute:
            return self._engine
        options = dataclasses.replace(
            self._options, timeout_s=min(timeout_s, self._options.timeout_s), precompute=precompute
        )
        return type(self._engine)(self.storage, options, self._engine.precompute)

    async def run(
        self, fn: Callable[[], Any], timeout_s: float, repeat: Hashable | None = None
    ) -> tuple[Any, float, float]:
        """Run ``fn`` behind the gate; returns (value, queue seconds, exec seconds).

        ``repeat`` names the request (path and parameters): one that ran within
        ``inline_below_s`` last time runs right here, on the loop, while no other query runs
        (Grafana asks a panel's query again on every refresh); any other runs in the pool."""
        queued = time.perf_counter()
        inline = (
            repeat is not None
            and self.config.inline_below_s > 0
            and self._running == 0
            and self._costs.get(repeat, math.inf) <= self.config.inline_below_s
        )
        started = queued
        try:
            if inline:
                value = fn()
            else:
                value, started = await self._in_pool(fn, timeout_s, queued)
        except BadDataError as err:
            # Prometheus reports what NewInstantQuery/NewRangeQuery reject (e.g. a range vector
            # for a range query) as a bad "query" parameter.
            if err.message.startswith("invalid parameter"):
                raise
            raise BadDataError(f'invalid parameter "query": {err.message}') from err
        finally:
            if repeat is not None:
                self._remember(repeat, time.perf_counter() - started)
        return value, started - queued, time.perf_counter() - started

    async def _in_pool(self, fn: Callable[[], Any], timeout_s: float, queued: float):
        """``fn`` in a pool thread: (value, when it got its slot).

        One future and one timer per query: the worker hands its outcome straight to the loop
        (one ``call_soon_threadsafe``) instead of ``run_in_executor``'s chained futures under
        ``wait_for(shield(..))``, and a free slot is taken without a waiting task. Each
        avoided hop was a loop iteration of its own (~0.1 ms a query over HTTP in all)."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.config.max_concurrent)
        gate = self._gate
        loop = asyncio.get_running_loop()
        if gate.locked():  # only a full gate needs a task and a timer to wait in the queue
            try:
                await asyncio.wait_for(gate.acquire(), timeout_s)
            except TimeoutError as err:
                raise QueryTimeoutError("query timed out in query queue") from err
        else:
            await gate.acquire()  # a free slot: returns without suspending
        started = time.perf_counter()
        done: asyncio.Future[Any] = loop.create_future()
        timer = loop.call_later(max(0.0, timeout_s - (started - queued)), _expire, done)
        try:
            self.pool.submit(_work, loop, fn, done, self._release, timer)
        except RuntimeError:  # the pool is shut down: the slot was never used
            timer.cancel()
            gate.release()
            raise UnavailableError("the server is shutting down") from None
        self._running += 1
        return await done, started

    def _release(self) -> None:
        """On the loop, when a pool query's thread returns: its slot is free again."""
        assert self._gate is not None
        self._running -= 1
        self._gate.release()

    def _remember(self, repeat: Hashable, seconds: float) -> None:
        if len(self._costs) >= COSTS_KEPT:
            self._costs.clear()
        self._costs[repeat] = seconds

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _work(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[], Any],
    done: asyncio.Future[Any],
    release: Callable[[], None],
    timer: asyncio.TimerHandle,
) -> None:
    """In a query thread: run ``fn`` and hand its outcome to the loop in one call."""
    try:
        value, error = fn(), None
    except BaseException as err:  # handed to the awaiting handler, raised there
        value, error = None, err
    # A closed loop (shutdown) has nobody waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, done, value, error, release, timer)


def _settle(
    done: asyncio.Future[Any],
    value: Any,
    error: BaseException | None,
    release: Callable[[], None],
    timer: asyncio.TimerHandle,
) -> None:
    """On the loop: the slot is freed when the work really ends, not when the client stops
    waiting (an expired or cancelled query keeps its slot until its thread returns)."""
    release()
    timer.cancel()
    if done.done():
        return
    if error is None:
        done.set_result(value)
    else:
        done.set_exception(error)


def _expire(done: asyncio.Future[Any]) -> None:
    if not done.done():
        done.set_exception(QueryTimeoutError("query timed out in expression evaluation"))


# Requests whose last run time is kept (for ``inline_below_s``); past this it starts over.
COSTS_KEPT = 4096
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


def sketch_source(storage: object) -> Any:
    """The precompute runtime's sketch store and live configs for ``storage`` (None if absent)."""
    try:
        from planner.nodes.precomputed_scan import SketchSource
        from server.routes_precompute import runtime_for
    except ImportError:
        return None
    runtime = runtime_for(storage)
    if runtime is None:
        return None
    return SketchSource(
        runtime.store,
        lambda: [] if runtime.closed else list(runtime.engine.configs.values()),
        lambda agg_id: None if runtime.closed else runtime.engine.coverage(agg_id),
    )


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
