"""Query response bodies: the matrix writer against point-by-point formatting, the open body's
in-place close, and the bodies as sent over HTTP (Content-Length, HEAD, gzip, stats, analyze)."""

from __future__ import annotations

import asyncio
import gzip
import math
import warnings
from collections.abc import Iterator

import numpy as np
import orjson
import pytest

from planner.result import QueryResult, SeriesResult
from promql.types import ValueType
from server import json_matrix
from server.format import (
    ENVELOPE_LEAD,
    envelope,
    envelope_tail,
    format_float,
    format_timestamp,
    labels_json,
    result_body,
    result_json,
    result_json_bytes,
)
from storage.db import Storage
from storage.model import make_labels
from tests.api.conftest import QueryServer, append_series
from tests.server.conftest import Client

SPECIALS = np.array(
    [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e-7, -3e-5, 1e15, 3e17, 1e21, -2.5e22, 1e300]
)


def reference_matrix(rows: list[SeriesResult]) -> str:
    """The result text written one point at a time with the scalar formatters."""
    parts = []
    for s in rows:
        points = ",".join(
            f'[{format_timestamp(int(t))},"{format_float(float(v))}"]'
            for t, v in zip(s.timestamps, s.values, strict=True)
        )
        parts.append(f'{{"metric":{labels_json(s.labels)},"values":[{points}]}}')
    return '{"resultType":"matrix","result":[' + ",".join(parts) + "]}"


def random_rows(seed: int) -> list[SeriesResult]:
    """Series of every value spelling and length, on one step grid (as range queries answer:
    possibly negative, with milliseconds, series starting at different steps) or scattered,
    some empty."""
    rng = np.random.default_rng(seed)
    grid = seed % 2 == 0
    base = int(rng.integers(-(10**6), 10**13))
    rows = []
    for i in range(int(rng.integers(1, 12))):
        n = int(rng.choice([0, 1, 2, 7, 60]))
        if grid:
            ts = base + (int(rng.integers(0, 100)) + np.arange(n, dtype=np.int64)) * 15_500
        else:
            ts = np.sort(rng.choice(10**9, n, replace=False)).astype(np.int64) - 10**8
        kind = rng.integers(0, 4)
        if kind == 0:  # long shortest digits
            vals = rng.normal(0, 1, n) * 10.0 ** rng.integers(-4, 15, n)
        elif kind == 1:  # integers, written without ``.0``
            vals = np.trunc(rng.normal(0, 1e6, n))
        elif kind == 2:  # short decimals
            vals = np.round(rng.normal(0, 100, n), int(rng.integers(0, 4)))
        else:
            vals = rng.choice(SPECIALS, n)
        pick = rng.random(n) < 0.15
        vals[pick] = rng.choice(SPECIALS, int(pick.sum()))
        labels = make_labels({"__name__": "m", "i": str(i), "x": "<a & b>" if i % 3 else "é"})
        rows.append(SeriesResult(labels, ts, vals))
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_matrix_bytes_equal_point_by_point_formatting_for_every_spelling(seed: int) -> None:
    rows = random_rows(seed)
    assert result_json_bytes(QueryResult(ValueType.MATRIX, rows)) == reference_matrix(rows).encode()


@pytest.mark.parametrize("last", [*SPECIALS.tolist(), 123456.78901234567, 7.0, 0.1])
def test_the_last_value_of_the_buffer_is_spelled_like_any_other(last: float) -> None:
    # The last number of orjson's text is copied byte by byte (no full words left to read).
    labels = make_labels({"a": "b"})
    vals = np.array([1.25, -987654.3210987654, last])
    rows = [SeriesResult(labels, np.array([0, 1000, 2001], dtype=np.int64), vals)]
    assert result_json_bytes(QueryResult(ValueType.MATRIX, rows)) == reference_matrix(rows).encode()


def test_a_grid_finer_than_its_first_timestamps_suggest_is_still_found() -> None:
    # The step is guessed from the first 64 timestamps (30 s apart), the rest sit 15 s apart.
    ts = np.concatenate([np.arange(64) * 30_000, 64 * 30_000 + np.arange(50) * 15_000])
    rows = [SeriesResult(make_labels({"a": "b"}), ts.astype(np.int64), np.arange(114.0))]
    _, _, lengths, inverse = json_matrix.timestamp_texts(rows[0].timestamps)
    assert lengths.shape[0] == 178  # every 15 s from 0 to 2,655 s
    assert inverse.tolist() == [*range(0, 128, 2), *range(128, 178)]
    assert result_json_bytes(QueryResult(ValueType.MATRIX, rows)) == reference_matrix(rows).encode()


def test_label_values_with_braces_quotes_and_backslashes_keep_each_series_apart() -> None:
    values = ['x},{"y":"z', "\\", '\\"}', "{", "}", "<&>", "é\u2028", "\n\t"]
    rows = [
        SeriesResult(make_labels({"__name__": "m", "v": v}), np.array([i], np.int64), np.ones(1))
        for i, v in enumerate(values)
    ]
    assert result_json_bytes(QueryResult(ValueType.MATRIX, rows)) == reference_matrix(rows).encode()


def test_labels_given_as_a_mapping_or_empty_are_written_as_from_pairs() -> None:
    pairs = SeriesResult(make_labels({"a": "1", "b": "<"}), np.array([0], np.int64), np.ones(1))
    mapping_labels: dict = {"a": "2", "b": "}"}
    mapping = SeriesResult(mapping_labels, np.array([0], np.int64), np.ones(1))  # type: ignore
    no_labels = SeriesResult((), np.array([5], np.int64), np.array([2.5]))
    rows = [pairs, mapping, no_labels, pairs]
    assert result_json_bytes(QueryResult(ValueType.MATRIX, rows)) == reference_matrix(rows).encode()


def test_matrix_of_only_empty_series_or_none_is_written_without_points() -> None:
    empty = SeriesResult(make_labels({"a": "1"}), np.zeros(0, np.int64), np.zeros(0))
    for rows in ([], [empty], [empty, empty]):
        got = result_json_bytes(QueryResult(ValueType.MATRIX, rows))
        assert got == reference_matrix(rows).encode()


def test_closing_an_open_body_writes_in_place_and_sends_a_view_of_that_buffer() -> None:
    rows = random_rows(5)
    tail = envelope_tail(["w1"], ["i1"])
    body = result_body(QueryResult(ValueType.MATRIX, rows), room=len(tail) + 100)
    sent = body.close(b',"stats":{"x":1}', tail)
    expected_data = reference_matrix(rows)[:-1] + ',"stats":{"x":1}}'
    assert bytes(sent) == envelope(expected_data, ["w1"], ["i1"])
    assert np.shares_memory(np.frombuffer(sent, dtype=np.uint8), body.buf)


def test_closing_with_more_than_the_room_left_copies_once_and_gives_the_same_bytes() -> None:
    rows = random_rows(6)
    body = result_body(QueryResult(ValueType.MATRIX, rows), room=0)
    fields = b',"analyze":' + orjson.dumps({"text": "x" * 5000})
    sent = body.close(fields, envelope_tail(None, None))
    expected = ENVELOPE_LEAD + reference_matrix(rows)[:-1].encode() + fields + b"}}"
    assert bytes(sent) == expected
    assert not np.shares_memory(np.frombuffer(sent, dtype=np.uint8), body.buf)


@pytest.mark.parametrize(
    "result",
    [
        QueryResult(ValueType.SCALAR, [], scalar=(1500, -0.0)),
        QueryResult(ValueType.STRING, [], string=(2000, "<b>")),
        QueryResult(
            ValueType.VECTOR,
            [SeriesResult(make_labels({"a": "&"}), np.array([5], np.int64), np.array([1e-9]))],
        ),
    ],
)
def test_non_matrix_bodies_are_the_envelope_around_their_result_text(result: QueryResult) -> None:
    tail = envelope_tail(["careful"], None)
    sent = result_body(result, room=len(tail) + 1).close(b"", tail)
    assert bytes(sent) == envelope(result_json(result), ["careful"])


def test_warm_up_compiles_every_kernel_signature_a_request_uses() -> None:
    json_matrix.warm_up()
    names = ("_assemble", "_classify", "_rest", "_grid", "_timestamp_texts", "_pairs_to_objects")
    kernels = [getattr(json_matrix, name) for name in names]
    before = [list(k.signatures) for k in kernels]
    empty = SeriesResult(make_labels({"a": "1"}), np.zeros(0, np.int64), np.zeros(0))
    for rows in [*(random_rows(seed) for seed in range(5)), [], [empty]]:
        result_body(QueryResult(ValueType.MATRIX, rows), room=64)
    assert [list(k.signatures) for k in kernels] == before


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    storage = Storage.in_memory()
    steps = range(0, 600_001, 15_000)
    values = [0.1, -0.0, 1e-7, 3e17, 42.0, 123.456, math.inf, 1234567.891011]
    data = {
        make_labels({"__name__": "m", "i": str(i), "tag": "<&>"}): [
            (t, values[(i + k) % len(values)] * (1 + i)) for k, t in enumerate(steps)
        ]
        for i in range(6)
    }
    append_series(storage, data)
    srv = QueryServer(storage, _config()).start()
    yield Client(f"http://127.0.0.1:{srv.port}")
    srv.stop()


def _config():
    from server.routes_query import QueryAPIConfig

    return QueryAPIConfig()


RANGE = [("query", "m"), ("start", "0"), ("end", "600"), ("step", "7.5")]


def test_range_body_is_the_envelope_around_the_matrix_with_its_exact_length(client: Client) -> None:
    r = client.get("/api/v1/query_range", RANGE)
    assert r.status == 200
    assert r.headers["Content-Length"] == str(len(r.body))
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.body.startswith(b'{"status":"success","data":{"resultType":"matrix","result":[')
    assert r.body.endswith(b"]}}")
    data = r.json()["data"]
    assert len(data["result"]) == 6 and len(data["result"][0]["values"]) == 81
    rows = [
        SeriesResult(
            make_labels(s["metric"]),
            np.array([round(t * 1000) for t, _ in s["values"]], dtype=np.int64),
            np.array([float(v) for _, v in s["values"]]),
        )
        for s in data["result"]
    ]
    assert r.body == envelope(reference_matrix(rows))  # every spelling, re-spelt point by point


def test_gzip_body_decompresses_to_the_identity_body(client: Client) -> None:
    plain = client.get("/api/v1/query_range", RANGE)
    zipped = client.request(
        "GET", "/api/v1/query_range", headers={"Accept-Encoding": "gzip"}, params=RANGE
    )
    assert zipped.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped.body) == plain.body


def test_a_buffer_body_answers_head_with_its_length_and_no_body_and_is_not_copied() -> None:
    # The query routes take no HEAD; the body type must still behave as aiohttp's own bytes.
    # aiohttp's own memoryview payload (which joins it with the headers) warns above 1 MB.
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from server.routes_query import _json_response

    payload = np.frombuffer(b'{"status":"success","data":[' + b"1," * 1_200_000 + b"1]}", np.uint8)

    async def handler(request: web.Request) -> web.StreamResponse:
        return _json_response(request, memoryview(payload))

    async def run() -> list[tuple[int, str, bytes]]:
        app = web.Application()
        app.router.add_get("/", handler)
        async with TestClient(TestServer(app)) as http:
            got = []
            for method, coding in (("GET", "identity"), ("HEAD", "identity"), ("GET", "gzip")):
                resp = await http.request(method, "/", headers={"Accept-Encoding": coding})
                length = resp.headers.get("Content-Length", resp.headers.get("Content-Encoding"))
                got.append((resp.status, length, await resp.read()))  # gzip: decompressed
            return got

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get, head, zipped = asyncio.run(run())
    assert zipped == (200, "gzip", payload.tobytes())
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert get == (200, str(payload.shape[0]), payload.tobytes())
    assert head == (200, str(payload.shape[0]), b"")


def test_query_answers_are_built_as_one_open_body(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server import routes_query

    built = []

    def recording(*args, **kwargs):
        built.append(result_body(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(routes_query, "result_body", recording)
    r = client.get("/api/v1/query_range", [*RANGE, ("stats", "all")])
    assert r.status == 200 and len(built) == 1
    assert r.body == bytes(built[0].buf[: len(r.body)])  # stats and tail closed in place


def test_stats_and_truncation_warning_close_the_same_data(client: Client) -> None:
    plain = client.get("/api/v1/query_range", RANGE).json()
    r = client.get("/api/v1/query_range", [*RANGE, ("stats", "all"), ("limit", "2")])
    assert r.headers["Content-Length"] == str(len(r.body))
    body = r.json()
    assert body["data"]["result"] == plain["data"]["result"][:2]
    assert body["data"]["stats"]["timings"]["evalTotalTime"] >= 0
    assert body["warnings"] == ["results truncated due to limit"]
    assert list(body) == ["status", "data", "warnings"]


def test_analyze_adds_the_plan_after_the_result(client: Client) -> None:
    r = client.get("/api/v1/query_range", [*RANGE, ("analyze", "true")])
    assert r.status == 200
    data = r.json()["data"]
    assert list(data) == ["resultType", "result", "analyze"]
    assert len(data["result"]) == 6 and "text" in data["analyze"]
