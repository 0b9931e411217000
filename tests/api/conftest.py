"""A real Tidemark server on 127.0.0.1 with a chosen query API configuration, plus data helpers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from aiohttp import web

from server.app import create_app, new_event_loop
from server.config import ServerConfig
from server.routes_query import QUERY_API, QUERY_CONFIG, QueryAPIConfig
from storage.db import Storage
from storage.model import Labels, SampleBatch, make_labels
from tests.server.conftest import Client, free_port


class QueryServer:
    """``create_app`` on its own loop in a daemon thread, with ``QueryAPIConfig`` overridden."""

    def __init__(self, storage: Storage, query_config: QueryAPIConfig) -> None:
        self.storage = storage
        self.port = free_port()
        self.query_config = query_config
        self.loop = new_event_loop()  # uvloop when installed
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.app = create_app(ServerConfig(host="127.0.0.1", port=self.port), self.storage)
        self.app[QUERY_CONFIG] = self.query_config
        self._runner = web.AppRunner(self.app, access_log=None)  # as `tidemark serve` runs it
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> QueryServer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")
        return self

    @property
    def api(self):
        assert self.app is not None
        return self.app[QUERY_API]

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


def append_series(storage: Storage, series: dict[Labels, list[tuple[int, float]]]) -> None:
    labels = list(series)
    idx = np.concatenate(
        [np.full(len(series[ls]), i, dtype=np.int64) for i, ls in enumerate(labels)]
    )
    ts = np.array([t for ls in labels for t, _ in series[ls]], dtype=np.int64)
    vals = np.array([v for ls in labels for _, v in series[ls]], dtype=np.float64)
    storage.append(SampleBatch(labels, idx, ts, vals))


def sample_data() -> dict[Labels, list[tuple[int, float]]]:
    """A counter and a gauge per job, one sample every 15 s over 10 minutes."""
    out: dict[Labels, list[tuple[int, float]]] = {}
    steps = range(0, 600_001, 15_000)
    for job, scale in (("api", 1.0), ("db", 2.0)):
        counter = make_labels({"__name__": "http_requests_total", "job": job})
        gauge = make_labels({"__name__": "temperature", "job": job})
        out[counter] = [(t, scale * t / 1000) for t in steps]
        out[gauge] = [(t, scale * 10 + (t // 15_000) % 3) for t in steps]
    return out


@pytest.fixture
def query_server_factory() -> Iterator:
    started: list[QueryServer] = []

    def make(config: QueryAPIConfig | None = None, data: bool = True) -> tuple[Client, QueryServer]:
        storage = Storage.in_memory()
        if data:
            append_series(storage, sample_data())
        srv = QueryServer(storage, config or QueryAPIConfig()).start()
        started.append(srv)
        return Client(f"http://127.0.0.1:{srv.port}"), srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def client(query_server_factory) -> Client:
    return query_server_factory()[0]
