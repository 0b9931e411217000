"""The query handlers' shared machinery: the engine (with the precompute runtime's sketch
source), the thread pool, the concurrency gate with its two timeouts, and the rule that runs a
cheap repeated request on the event loop instead (``QueryAPI.run``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import re
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from planner.window_cells import warm_up as warm_up_window_cells
from promql.errors import BadDataError, QueryTimeoutError, UnavailableError
from server.json_matrix import warm_up as warm_up_matrix_json
from storage.arrays import warm_up as warm_up_storage_reads
from udfs.aggregation import warm_up as warm_up_aggregation
from udfs.extrapolation import warm_up as warm_up_extrapolation
from udfs.histogram_kernels import warm_up as warm_up_histogram
from udfs.range_functions import warm_up as warm_up_rates
from udfs.weighted_quantile import warm_up as warm_up_weighted_quantile
from udfs.windows import warm_up as warm_up_windows

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
        if repeat is not None:
            fn = partial(self._timed, fn, repeat)
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
        return value, started - queued, time.perf_counter() - started

    def _timed(self, fn: Callable[[], Any], repeat: Hashable) -> Any:
        """``fn`` with its own run time remembered (in whichever thread runs it): the pool's
        hand-off is not the query's cost, and counting it would keep a query that just fits
        the budget in the pool for good."""
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self._remember(repeat, time.perf_counter() - t0)

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
