"""Ingest endpoints over a real HTTP server: success paths and every bad-input class."""

from __future__ import annotations

import gzip

import orjson
import pytest

from promql.types import Matcher, MatchType
from tests.server.payloads import RW_HEADERS, snappy, write_request, zstd

ALL = [Matcher(MatchType.REGEX, "__name__", ".+")]


def stored(storage) -> list[tuple]:
    ss = storage.select(ALL, -(2**62), 2**62)
    return [
        (ss.labels[i], ss.timestamps[lo:hi].tolist(), ss.values[lo:hi].tolist())
        for i, (lo, hi) in enumerate(zip(ss.offsets[:-1], ss.offsets[1:], strict=True))
    ]


def test_remote_write_answers_204_after_the_samples_are_stored(server):
    client, storage = server
    raw = write_request(
        [([("__name__", "up"), ("job", "a")], [(1000, 1.0), (2000, 0.0)])],
        metadata=[(2, "up", "Target is up.", "")],
    )
    reply = client.post("/api/v1/write", snappy(raw), RW_HEADERS)
    assert reply.status == 204 and reply.body == b""
    assert stored(storage) == [((("__name__", "up"), ("job", "a")), [1000, 2000], [1.0, 0.0])]
    assert storage.metadata("up")["up"][0].help == "Target is up."


def test_remote_write_accepts_zstd_as_vmagent_sends(server):
    client, storage = server
    raw = write_request([([("__name__", "z")], [(5, 5.0)])])
    headers = {**RW_HEADERS, "Content-Encoding": "zstd"}
    assert client.post("/api/v1/write", zstd(raw), headers).status == 204
    assert stored(storage)[0][1:] == ([5], [5.0])


def test_vm_import_reads_json_lines_and_protobuf(server):
    client, storage = server
    body = b'{"metric":{"__name__":"j"},"values":[1,2],"timestamps":[1,2]}\n'
    assert client.post("/api/v1/import", body).status == 204
    pb = snappy(write_request([([("__name__", "p")], [(3, 3.0)])]))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    assert client.post("/api/v1/import", pb, headers).status == 204
    gz = gzip.compress(b'{"metric":{"__name__":"g"},"values":[7],"timestamps":[7]}')
    assert client.post("/api/v1/import", gz, {"Content-Encoding": "gzip"}).status == 204
    names = [dict(lab)["__name__"] for lab, _, _ in stored(storage)]
    assert names == ["g", "j", "p"]


def test_text_import_uses_the_timestamp_parameter_for_samples_without_one(server):
    client, storage = server
    body = b'# TYPE t gauge\nt{a="1"} 1\nt{a="2"} 2 5000\n'
    assert client.post("/api/v1/import/prometheus?timestamp=3", body).status == 204
    assert [(ts, v) for _, ts, v in stored(storage)] == [([3000], [1.0]), ([5000], [2.0])]
    assert storage.metadata("t")["t"][0].type == "gauge"


def _error(reply) -> dict:
    doc = orjson.loads(reply.body)
    assert doc["status"] == "error"
    assert doc["errorType"] == "bad_data"
    assert doc["error"]
    return doc


GOOD = write_request([([("__name__", "good")], [(1, 1.0)])])


def _with(labels, ts=1):
    return write_request([([("__name__", "good")], [(1, 1.0)]), (labels, [(ts, 1.0)])])


BAD_REQUESTS = [
    # (id, path, body, headers, status, message fragment)
    ("bad-snappy", "/api/v1/write", b"\xff\xffnot snappy", RW_HEADERS, 400, "snappy"),
    (
        "bad-zstd",
        "/api/v1/write",
        b"\x28\xb5\x2f\xfdjunk",
        {**RW_HEADERS, "Content-Encoding": "zstd"},
        400,
        "zstd",
    ),
    ("bad-protobuf", "/api/v1/write", snappy(b"\x0a\x05\x0a\x03"), RW_HEADERS, 400, "protobuf"),
    (
        "unsupported-encoding",
        "/api/v1/write",
        snappy(GOOD),
        {**RW_HEADERS, "Content-Encoding": "br"},
        415,
        "Content-Encoding",
    ),
    (
        "unsupported-type",
        "/api/v1/write",
        snappy(GOOD),
        {**RW_HEADERS, "Content-Type": "application/json"},
        415,
        "Content-Type",
    ),
    (
        "unknown-remote-write-message",
        "/api/v1/write",
        snappy(GOOD),
        {
            **RW_HEADERS,
            "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        },
        415,
        "remote write 1.0",
    ),
    (
        "missing-name",
        "/api/v1/write",
        snappy(_with([("job", "x")])),
        RW_HEADERS,
        400,
        "metric name",
    ),
    (
        "empty-name",
        "/api/v1/write",
        snappy(_with([("__name__", "")])),
        RW_HEADERS,
        400,
        "metric name",
    ),
    (
        "duplicate-label",
        "/api/v1/write",
        snappy(_with([("__name__", "x"), ("a", "1"), ("a", "2")])),
        RW_HEADERS,
        400,
        "duplicate label name",
    ),
    (
        "empty-label-name",
        "/api/v1/write",
        snappy(_with([("__name__", "x"), ("", "1")])),
        RW_HEADERS,
        400,
        "invalid label name",
    ),
    (
        "invalid-utf8",
        "/api/v1/write",
        snappy(_with([("__name__", "x"), ("a", "\x01")]).replace(b"\x12\x01\x01", b"\x12\x01\xfe")),
        RW_HEADERS,
        400,
        "UTF-8",
    ),
    (
        "absurd-timestamp",
        "/api/v1/write",
        snappy(_with([("__name__", "x")], ts=2**60)),
        RW_HEADERS,
        400,
        "timestamp",
    ),
    (
        "bad-json",
        "/api/v1/import",
        b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[1]}\n{',
        {},
        400,
        "line 2",
    ),
    ("bad-text", "/api/v1/import/prometheus", b"good 1\nbad{ 1\n", {}, 400, "line 2"),
    ("bad-text-utf8", "/api/v1/import/prometheus", b'good 1\nx{a="\xff"} 1\n', {}, 400, "UTF-8"),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_is_a_clear_4xx_and_stores_nothing(server, path, body, headers, status, fragment):
    client, storage = server
    reply = client.post(path, body, headers)
    assert reply.status == status, reply.body
    assert fragment in _error(reply)["error"]
    assert stored(storage) == []


def test_body_over_the_limit_is_413(server_factory):
    client, storage = server_factory(max_body_bytes=1000)
    reply = client.post("/api/v1/import/prometheus", b"x 1\n" * 500)
    assert reply.status == 413
    assert "over the limit" in _error(reply)["error"]
    assert stored(storage) == []


def test_decompression_bomb_is_413(server_factory):
    client, storage = server_factory(max_decompressed_bytes=100_000)
    bomb = zstd(b"\x00" * 50_000_000)
    assert len(bomb) < 10_000
    reply = client.post("/api/v1/write", bomb, {**RW_HEADERS, "Content-Encoding": "zstd"})
    assert reply.status == 413
    assert stored(storage) == []


def test_a_bad_request_does_not_affect_the_next_one(server):
    client, storage = server
    assert client.post("/api/v1/write", b"junk", RW_HEADERS).status == 400
    assert client.post("/api/v1/write", snappy(GOOD), RW_HEADERS).status == 204
    assert [dict(lab)["__name__"] for lab, _, _ in stored(storage)] == ["good"]


def test_rejections_are_counted_by_reason_in_metrics(server):
    client, _ = server
    client.post("/api/v1/write", b"junk", RW_HEADERS)
    client.post("/api/v1/write", snappy(GOOD), RW_HEADERS)
    text = client.get("/metrics").body.decode()
    assert 'tidemark_requests_rejected_total{reason="decompress"} 1' in text
    assert 'tidemark_ingest_samples_total{format="remote_write"} 1' in text
    assert "tidemark_storage_series 1" in text


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/v1/write", snappy(b""), RW_HEADERS),
        ("/api/v1/import", b"", {}),
        ("/api/v1/import/prometheus", b"# only a comment\n", {}),
    ],
)
def test_empty_requests_succeed_and_store_nothing(server, path, body, headers):
    client, storage = server
    assert client.post(path, body, headers).status == 204
    assert stored(storage) == []


def test_ingest_over_the_concurrency_limit_is_503_so_senders_retry(server_factory):
    client, storage = server_factory(max_inflight_ingest=0)
    reply = client.post("/api/v1/write", snappy(GOOD), RW_HEADERS)
    assert reply.status == 503
    assert orjson.loads(reply.body)["errorType"] == "unavailable"
    assert stored(storage) == []


def test_a_series_repeated_within_one_request_is_one_series(server):
    client, storage = server
    labels = [("__name__", "dup"), ("a", "1")]
    raw = write_request(
        [(labels, [(1000, 1.0)]), (list(reversed(labels)), [(2000, 2.0)]), (labels, [(1000, 9.0)])]
    )
    assert client.post("/api/v1/write", snappy(raw), RW_HEADERS).status == 204
    assert stored(storage) == [((("__name__", "dup"), ("a", "1")), [1000, 2000], [9.0, 2.0])]
