"""``QueryAPI.run``: the concurrency gate, the two timeouts and when a slot is freed, on the
standard loop and on uvloop; and the small/large body paths of a query answer over HTTP."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from promql.errors import BadDataError, QueryTimeoutError, UnavailableError
from server.app import new_event_loop
from server.query_api import QueryAPI, QueryAPIConfig
from storage.db import Storage, StorageOptions

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "served": new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def on_loop(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Runs a coroutine function of a fresh ``QueryAPI`` (2 slots) on the chosen loop."""
    storage = Storage.in_memory(StorageOptions(background_maintenance=False))
    api = QueryAPI(storage, QueryAPIConfig(max_concurrent=2))
    loop = LOOPS[request.param]()

    def run(make: Callable[[QueryAPI], Any]) -> Any:
        return loop.run_until_complete(make(api))

    yield run
    api.close()
    loop.close()
    storage.close()


def _free_slots(api: QueryAPI) -> int:
    assert api._gate is not None
    return api._gate._value


def test_a_query_returns_its_value_with_queue_and_execution_times(on_loop) -> None:
    async def go(api: QueryAPI) -> tuple[Any, float, float, int]:
        value, queued, took = await api.run(lambda: time.sleep(0.05) or 42, 5.0)
        return value, queued, took, _free_slots(api)

    value, queued, took, free = on_loop(go)
    assert value == 42
    assert 0 <= queued < 0.05 <= took < 2.0
    assert free == 2


def test_an_error_in_the_query_thread_reaches_the_caller_and_frees_the_slot(on_loop) -> None:
    def boom() -> None:
        raise ZeroDivisionError("in the engine")

    async def go(api: QueryAPI) -> int:
        with pytest.raises(ZeroDivisionError, match="in the engine"):
            await api.run(boom, 5.0)
        return _free_slots(api)

    assert on_loop(go) == 2


def test_an_engine_bad_data_error_becomes_a_bad_query_parameter(on_loop) -> None:
    def reject() -> None:
        raise BadDataError("invalid expression type")

    async def go(api: QueryAPI) -> None:
        with pytest.raises(BadDataError) as err:
            await api.run(reject, 5.0)
        assert err.value.message == 'invalid parameter "query": invalid expression type'

    on_loop(go)


def test_an_overrunning_query_times_out_at_once_but_keeps_its_slot_until_it_ends(on_loop) -> None:
    release = threading.Event()

    async def go(api: QueryAPI) -> None:
        t0 = time.perf_counter()
        with pytest.raises(QueryTimeoutError, match=r"^query timed out in expression evaluation$"):
            await api.run(lambda: release.wait(20), 0.1)
        assert time.perf_counter() - t0 < 5
        assert _free_slots(api) == 1  # the thread still runs: its slot is still taken
        release.set()
        for _ in range(500):  # the slot comes back once the thread returns
            if _free_slots(api) == 2:
                break
            await asyncio.sleep(0.01)
        assert _free_slots(api) == 2

    try:
        on_loop(go)
    finally:
        release.set()


def test_a_full_gate_queues_until_the_timeout_then_serves_when_a_slot_frees(on_loop) -> None:
    release = threading.Event()

    async def go(api: QueryAPI) -> None:
        busy = [asyncio.ensure_future(api.run(lambda: release.wait(20), 30)) for _ in range(2)]
        while api._gate is None or _free_slots(api) > 0:
            await asyncio.sleep(0.005)
        with pytest.raises(QueryTimeoutError, match=r"^query timed out in query queue$"):
            await api.run(lambda: 1, 0.1)
        waiting = asyncio.ensure_future(api.run(lambda: "served", 10))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        release.set()
        value, queued, _took = await waiting
        # The loop's timers round to milliseconds (uvloop), so its 0.1 s sleep can end a little
        # before 0.1 s of perf_counter time has passed; the point is that the query waited it out.
        assert value == "served" and queued >= 0.09
        await asyncio.gather(*busy)
        assert _free_slots(api) == 2

    try:
        on_loop(go)
    finally:
        release.set()


def test_many_concurrent_queries_all_answer_and_return_every_slot(on_loop) -> None:
    async def go(api: QueryAPI) -> tuple[list[Any], int]:
        results = await asyncio.gather(*(api.run(lambda i=i: i * i, 10) for i in range(50)))
        return [value for value, _q, _t in results], _free_slots(api)

    values, free = on_loop(go)
    assert values == [i * i for i in range(50)]
    assert free == 2


def test_a_query_after_shutdown_is_unavailable_and_takes_no_slot(on_loop) -> None:
    async def go(api: QueryAPI) -> int:
        await api.run(lambda: None, 5.0)
        api.pool.shutdown(wait=True)
        with pytest.raises(UnavailableError):
            await api.run(lambda: None, 5.0)
        return _free_slots(api)

    assert on_loop(go) == 2


def _thread_name() -> str:
    return threading.current_thread().name


def test_a_cheap_repeated_request_runs_on_the_loop_and_a_new_one_in_the_pool(on_loop) -> None:
    async def go(api: QueryAPI) -> list[str]:
        names = [(await api.run(_thread_name, 5.0, "panel"))[0] for _ in range(3)]
        names.append((await api.run(_thread_name, 5.0, "other panel"))[0])
        names.append((await api.run(_thread_name, 5.0))[0])  # not named: never inline
        return names

    loop_thread = threading.current_thread().name  # run_until_complete runs the loop here
    first, second, third, other, unnamed = on_loop(go)
    assert first.startswith("query") and other.startswith("query") and unnamed.startswith("query")
    assert second == third == loop_thread


def test_a_request_that_took_longer_than_the_budget_stays_in_the_pool(on_loop) -> None:
    def slow() -> str:
        time.sleep(0.01)  # over the 2 ms budget
        return _thread_name()

    async def go(api: QueryAPI) -> list[str]:
        return [(await api.run(slow, 5.0, "slow panel"))[0] for _ in range(3)]

    assert all(name.startswith("query") for name in on_loop(go))


def test_a_cheap_repeat_goes_to_the_pool_while_another_query_runs(on_loop) -> None:
    release = threading.Event()

    async def go(api: QueryAPI) -> tuple[str, str, int]:
        await api.run(_thread_name, 5.0, "panel")
        busy = asyncio.ensure_future(api.run(lambda: release.wait(5) and "done", 5.0))
        while _free_slots(api) == 2:
            await asyncio.sleep(0.001)
        during = (await api.run(_thread_name, 5.0, "panel"))[0]
        release.set()
        await busy
        after = (await api.run(_thread_name, 5.0, "panel"))[0]
        return during, after, _free_slots(api)

    loop_thread = threading.current_thread().name
    try:
        during, after, free = on_loop(go)
    finally:
        release.set()
    assert during.startswith("query")
    assert after == loop_thread
    assert free == 2


def test_an_inline_engine_error_is_reported_like_a_pooled_one(on_loop) -> None:
    calls: list[str] = []

    def bad() -> None:
        calls.append(_thread_name())
        if len(calls) > 1:
            raise BadDataError("invalid expression type for range query")

    async def go(api: QueryAPI) -> str:
        await api.run(bad, 5.0, "panel")
        with pytest.raises(BadDataError) as err:
            await api.run(bad, 5.0, "panel")
        return err.value.message

    message = on_loop(go)
    assert message.startswith('invalid parameter "query": ')
    assert calls[1] == threading.current_thread().name


def test_a_zero_budget_never_runs_a_query_on_the_loop() -> None:
    storage = Storage.in_memory(StorageOptions(background_maintenance=False))
    api = QueryAPI(storage, QueryAPIConfig(max_concurrent=2, inline_below_s=0.0))
    loop = new_event_loop()

    async def go() -> list[str]:
        return [(await api.run(_thread_name, 5.0, "panel"))[0] for _ in range(3)]

    try:
        assert all(name.startswith("query") for name in loop.run_until_complete(go()))
    finally:
        api.close()
        loop.close()
        storage.close()


def test_the_served_loop_is_uvloop_when_it_is_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    loop = new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_small_and_large_answers_arrive_whole_and_gzipped(query_server_factory) -> None:
    c, _ = query_server_factory()
    small = [("query", "temperature"), ("start", "0"), ("end", "600"), ("step", "15")]
    # ~11,000 points per series: a body far over the 64 KiB that goes out with the headers.
    large = [("query", "vector(time())"), ("start", "0"), ("end", "11000"), ("step", "1")]
    for params in (small, large):
        plain = c.get("/api/v1/query_range", params)
        assert plain.status == 200
        assert int(plain.headers["Content-Length"]) == len(plain.body)
        assert plain.json()["status"] == "success"
        zipped = c.request(
            "GET", "/api/v1/query_range", headers={"Accept-Encoding": "gzip"}, params=params
        )
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(zipped.body) == plain.body
    assert (
        len(c.get("/api/v1/query_range", large).body)
        > 1 << 16
        > len(c.get("/api/v1/query_range", small).body)
    )
