"""A real Tidemark HTTP server on 127.0.0.1 (background thread) and a tiny urllib client."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from aiohttp import web

from server.app import create_app
from server.config import ServerConfig
from storage.db import Storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> object:
        return orjson.loads(self.body)


@dataclass
class Client:
    base: str

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Reply:
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Reply(resp.status, resp.read(), dict(resp.headers))
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.read(), dict(err.headers))

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> Reply:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", path, body=body, headers=headers)


class ServerThread:
    """Runs ``create_app`` on its own event loop in a daemon thread."""

    def __init__(self, config: ServerConfig, storage: Storage) -> None:
        self.storage = storage
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(create_app(self.config, self.storage))
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")
        return self

    def stop(self) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="session", autouse=True)
def _compiled_decoder() -> None:
    """Compile (first run) or load the numba decoder once, before servers and subprocesses
    start: a fresh clone compiles for ~10 s, which would otherwise eat into their deadlines."""
    from server.decode_remote_write import RemoteWriteDecoder
    from tests.server.payloads import write_request

    RemoteWriteDecoder().decode(write_request([([("__name__", "warm")], [(1, 1.0)])]))


@pytest.fixture
def server_factory() -> Iterator:
    started: list[ServerThread] = []

    def make(storage: Storage | None = None, **config: object) -> tuple[Client, Storage]:
        store = storage if storage is not None else Storage.in_memory()
        cfg = ServerConfig(host="127.0.0.1", port=free_port(), **config)  # type: ignore[arg-type]
        srv = ServerThread(cfg, store).start()
        started.append(srv)
        return Client(f"http://127.0.0.1:{cfg.port}"), store

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory) -> tuple[Client, Storage]:
    return server_factory()
