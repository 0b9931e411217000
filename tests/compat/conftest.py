"""One Prometheus 2.42 peer and one Tidemark server, both holding the generated data set."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest

from server.routes_query import QueryAPIConfig
from storage.db import Storage
from tests.api.conftest import QueryServer
from tests.compat.dataset import Series, as_batch, generate
from tests.compat.peer import PrometheusPeer, missing_reason


@dataclass(frozen=True)
class Peers:
    prometheus: str
    tidemark: str


def get_json(base: str, path: str, params: list[tuple[str, str]]) -> tuple[int, dict]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"{}")


@contextmanager
def serving(data: Series) -> Iterator[Peers]:
    """Prometheus 2.42 (loaded by remote write) and a Tidemark server, both holding ``data``."""
    prom = PrometheusPeer().start()
    tide: QueryServer | None = None
    try:
        prom.remote_write(data)
        storage = Storage.in_memory()
        storage.append(as_batch(data))
        tide = QueryServer(storage, QueryAPIConfig()).start()
        yield Peers(prom.url, f"http://127.0.0.1:{tide.port}")
    finally:
        if tide is not None:
            tide.stop()
        prom.stop()


@pytest.fixture(scope="session")
def peers() -> Iterator[Peers]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with serving(generate()) as both:
        yield both
