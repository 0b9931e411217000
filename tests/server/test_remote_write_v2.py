"""Remote write 2.0 (``io.prometheus.write.v2.Request``) over a real HTTP server.

Payloads are built with the protobuf runtime (``server/remote_v2_pb.py``, the reference codec) or,
for wire shapes the runtime never produces (unpacked references, truncation), by hand.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promql.types import Matcher, MatchType
from server.decode_remote_write_v2 import RemoteWriteV2Decoder
from server.errors import IngestRejected
from server.remote_v2_pb import Request
from server.rw2_symbols import SymbolIds
from storage.model import STALE_NAN, STALE_NAN_BITS
from tests.server.payloads import (
    RW_HEADERS,
    batch_samples,
    length_delimited,
    snappy,
    varint,
    write_request,
)

V2_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}
WRITTEN = "X-Prometheus-Remote-Write-{}-Written"
ALL = [Matcher(MatchType.REGEX, "__name__", ".+")]

Series = tuple[list[tuple[str, str]], list[tuple[int, float]]]


def v2_request(
    series: list[Series],
    metadata: dict[int, tuple[int, str, str]] | None = None,
    symbols: list[str] | None = None,
) -> bytes:
    """A serialized v2 Request; ``metadata[i]`` = (type, help, unit) for series i.

    ``symbols`` fixes the start of the table (to test tables that differ between requests).
    """
    req = Request()
    table: dict[str, int] = {}

    def ref(s: str) -> int:
        if s not in table:
            table[s] = len(table)
            req.symbols.append(s)
        return table[s]

    for s in ["", *(symbols or [])]:
        ref(s)
    for i, (labels, samples) in enumerate(series):
        ts = req.timeseries.add()
        for name, value in labels:
            ts.labels_refs.extend([ref(name), ref(value)])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
        if metadata and i in metadata:
            mtype, help_, unit = metadata[i]
            ts.metadata.type = mtype
            ts.metadata.help_ref = ref(help_)
            ts.metadata.unit_ref = ref(unit)
    return req.SerializeToString()


def stored(storage) -> list[tuple]:
    ss = storage.select(ALL, -(2**62), 2**62)
    return [
        (ss.labels[i], ss.timestamps[lo:hi].tolist(), ss.values[lo:hi].tolist())
        for i, (lo, hi) in enumerate(zip(ss.offsets[:-1], ss.offsets[1:], strict=True))
    ]


def written(reply) -> tuple[int, int, int]:
    return tuple(
        int(reply.headers[WRITTEN.format(k)]) for k in ("Samples", "Histograms", "Exemplars")
    )


def test_v2_samples_are_stored_and_answered_by_instant_queries(server):
    client, _ = server
    raw = v2_request(
        [
            ([("__name__", "up"), ("job", "api")], [(10_000, 1.0)]),
            ([("__name__", "up"), ("job", "db")], [(10_000, 0.0), (20_000, 1.0)]),
        ]
    )
    reply = client.post("/api/v1/write", snappy(raw), V2_HEADERS)
    assert reply.status == 204 and reply.body == b""
    assert written(reply) == (3, 0, 0)
    doc = orjson.loads(client.get("/api/v1/query", [("query", "up"), ("time", "20")]).body)
    result = {r["metric"]["job"]: r["value"] for r in doc["data"]["result"]}
    assert result == {"api": [20, "1"], "db": [20, "1"]}


def test_v2_metadata_is_listed_per_family_with_help_and_unit_from_symbols(server):
    client, _ = server
    raw = v2_request(
        [
            ([("__name__", "req_total")], [(1, 1.0)]),
            ([("__name__", "lat_seconds_bucket"), ("le", "1")], [(1, 2.0)]),
            ([("__name__", "lat_seconds_sum")], [(1, 3.0)]),
            ([("__name__", "temp")], [(1, 4.0)]),
        ],
        metadata={
            0: (1, "Requests.", ""),
            1: (3, "Latency.", "seconds"),
            2: (3, "Latency.", "seconds"),
        },
    )
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 204
    data = orjson.loads(client.get("/api/v1/metadata").body)["data"]
    assert data == {
        "req_total": [{"type": "counter", "help": "Requests.", "unit": ""}],
        "lat_seconds": [{"type": "histogram", "help": "Latency.", "unit": "seconds"}],
    }  # "temp" sent no metadata: nothing is invented for it


def test_series_sent_with_different_symbol_tables_are_one_series(server):
    client, storage = server
    labels = [("__name__", "m"), ("job", "x")]
    first = v2_request([(labels, [(1000, 1.0)])])
    # Same series, other symbol numbering; "job" is also a value and "m" a name elsewhere.
    second = v2_request(
        [(labels, [(2000, 2.0)]), ([("__name__", "job"), ("m", "x")], [(2000, 5.0)])],
        symbols=["x", "m", "zzz", "job"],
    )
    assert client.post("/api/v1/write", snappy(first), V2_HEADERS).status == 204
    assert client.post("/api/v1/write", snappy(second), V2_HEADERS).status == 204
    assert stored(storage) == [
        ((("__name__", "job"), ("m", "x")), [2000], [5.0]),
        ((("__name__", "m"), ("job", "x")), [1000, 2000], [1.0, 2.0]),
    ]


def test_v1_and_v2_writes_of_the_same_series_land_in_one_series(server):
    client, storage = server
    labels = [("__name__", "both"), ("k", "v")]
    v1 = write_request([(labels, [(1, 1.0)])])
    assert client.post("/api/v1/write", snappy(v1), RW_HEADERS).status == 204
    reply = client.post("/api/v1/write", snappy(v2_request([(labels, [(2, 2.0)])])), V2_HEADERS)
    assert reply.status == 204
    v1_again = snappy(write_request([(labels, [(3, 3.0)])]))
    assert client.post("/api/v1/write", v1_again, RW_HEADERS).status == 204
    assert stored(storage) == [(tuple(labels), [1, 2, 3], [1.0, 2.0, 3.0])]


def test_unsorted_labels_are_sorted_and_empty_values_dropped_as_in_v1(server):
    client, storage = server
    raw = v2_request([([("zone", "a"), ("__name__", "u"), ("gone", "")], [(5, 5.0)])])
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 204
    assert stored(storage) == [((("__name__", "u"), ("zone", "a")), [5], [5.0])]


def test_stale_markers_survive_bit_exact(server):
    client, storage = server
    raw = v2_request([([("__name__", "s")], [(1, 1.0), (2, STALE_NAN)])])
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 204
    ss = storage.select(ALL, 0, 10)
    assert ss.values.view(np.uint64)[1] == STALE_NAN_BITS


def test_exemplars_are_accepted_and_counted_written_like_prometheus_without_exemplar_storage(
    server,
):
    client, storage = server
    req = Request.FromString(v2_request([([("__name__", "e")], [(7, 7.0)])]))
    req.timeseries[0].exemplars.add(value=1.5, timestamp=7)
    req.timeseries[0].exemplars.add(value=2.5, timestamp=7)
    reply = client.post("/api/v1/write", snappy(req.SerializeToString()), V2_HEADERS)
    assert reply.status == 204 and written(reply) == (1, 0, 2)
    assert stored(storage) == [((("__name__", "e"),), [7], [7.0])]


def test_native_histograms_are_a_partial_write_floats_kept_and_400(server):
    client, storage = server
    req = Request.FromString(
        v2_request([([("__name__", "f")], [(1, 1.0)]), ([("__name__", "nh")], [])])
    )
    req.timeseries[1].histograms.add(count_int=3, sum=1.0, schema=0, timestamp=1)
    reply = client.post("/api/v1/write", snappy(req.SerializeToString()), V2_HEADERS)
    assert reply.status == 400 and written(reply) == (1, 0, 0)
    error = reply.json()
    assert error["errorType"] == "bad_data" and "native histogram" in error["error"]
    assert "nh" in error["error"]
    assert stored(storage) == [((("__name__", "f"),), [1], [1.0])]


def test_remote_write_1_still_works_and_has_no_written_headers(server):
    client, storage = server
    raw = snappy(write_request([([("__name__", "old")], [(1, 1.0)])]))
    for content_type in (
        "application/x-protobuf",
        "application/x-protobuf; proto=prometheus.WriteRequest",
    ):
        reply = client.post("/api/v1/write", raw, {**RW_HEADERS, "Content-Type": content_type})
        assert reply.status == 204
        assert WRITTEN.format("Samples") not in reply.headers
    assert stored(storage) == [((("__name__", "old"),), [1], [1.0])]


def test_unknown_proto_message_is_415(server):
    client, _ = server
    headers = {
        **V2_HEADERS,
        "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request",
    }
    reply = client.post("/api/v1/write", snappy(v2_request([])), headers)
    assert reply.status == 415 and "io.prometheus.write.v2.Request" in reply.json()["error"]


def test_quoted_proto_parameter_is_understood(server):
    client, storage = server
    headers = {
        **V2_HEADERS,
        "Content-Type": 'application/x-protobuf; proto="io.prometheus.write.v2.Request"',
    }
    raw = v2_request([([("__name__", "q")], [(1, 1.0)])])
    assert client.post("/api/v1/write", snappy(raw), headers).status == 204
    assert len(stored(storage)) == 1


def test_empty_request_is_204_with_zero_counts(server):
    client, _ = server
    reply = client.post("/api/v1/write", snappy(b""), V2_HEADERS)
    assert reply.status == 204 and written(reply) == (0, 0, 0)


def test_fields_of_other_spec_revisions_and_future_fields_are_ignored(server):
    """created_timestamp (rc.0-rc.3), start_timestamp (rc.4) and unknown fields (a 2.x minor
    version may add optional ones) do not change what is stored."""
    client, storage = server
    req = Request.FromString(v2_request([([("__name__", "c_total")], [(2000, 5.0)])]))
    req.timeseries[0].created_timestamp = 1000
    req.timeseries[0].samples[0].start_timestamp = 1000
    unknown = b"\xa0\x06\x01"  # field 100, varint 1
    body = req.SerializeToString() + unknown
    reply = client.post("/api/v1/write", snappy(body), V2_HEADERS)
    assert reply.status == 204 and written(reply) == (1, 0, 0)
    assert stored(storage) == [((("__name__", "c_total"),), [2000], [5.0])]


# -- bad requests: 400, a Prometheus error envelope, the counts header, nothing stored ---------


def _raw_series(refs: bytes, value: float = 1.0) -> bytes:
    """A TimeSeries with the given labels_refs field bytes and one sample at t=1."""
    return length_delimited(
        5, refs + length_delimited(2, b"\x09" + struct.pack("<d", value) + b"\x10\x01")
    )


def _symbols(*names: str) -> bytes:
    return b"".join(length_delimited(4, s.encode()) for s in names)


GOOD = [([("__name__", "ok"), ("a", "b")], [(1, 1.0)])]


def _with_refs(refs: list[int]) -> bytes:
    req = Request.FromString(v2_request(GOOD))
    del req.timeseries[0].labels_refs[:]
    req.timeseries[0].labels_refs.extend(refs)
    return req.SerializeToString()


def _with_metadata(help_ref: int) -> bytes:
    req = Request.FromString(v2_request(GOOD))
    req.timeseries[0].metadata.type = 2
    req.timeseries[0].metadata.help_ref = help_ref
    return req.SerializeToString()


BAD = [
    ("ref-out-of-range", _with_refs([1, 2, 3, 99]), "outside the symbols table"),
    ("odd-ref-count", _with_refs([1, 2, 3]), "odd number"),
    ("metadata-help-ref-out-of-range", _with_metadata(50), "help_ref 50"),
    ("empty-label-name", _with_refs([1, 2, 0, 4]), "empty name"),
    ("duplicate-label-name", _with_refs([1, 2, 1, 4]), "duplicate label name"),
    ("missing-metric-name", _with_refs([3, 4]), "metric name"),
    ("empty-metric-name", _with_refs([1, 0, 3, 4]), "metric name"),
    (
        "invalid-utf8-symbol",
        _symbols("", "__name__")
        + length_delimited(4, b"\xff\xfe")
        + _raw_series(length_delimited(1, b"\x01\x02")),
        "UTF-8",
    ),
    ("truncated-body", v2_request(GOOD)[:-3], "malformed protobuf"),
    ("v1-body-sent-as-v2", write_request(GOOD), "remote write 1.0"),
]


@pytest.mark.parametrize(("body", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_v2_requests_are_400_with_a_clear_error_and_store_nothing(server, body, fragment):
    client, storage = server
    reply = client.post("/api/v1/write", snappy(body), V2_HEADERS)
    assert reply.status == 400, reply.body
    error = reply.json()
    assert error["status"] == "error" and error["errorType"] == "bad_data"
    assert fragment in error["error"], error["error"]
    assert written(reply) == (0, 0, 0)
    assert stored(storage) == []


def test_a_rejected_series_rejects_the_whole_request(server):
    client, storage = server
    raw = v2_request([([("__name__", "fine")], [(1, 1.0)]), ([("job", "nameless")], [(1, 1.0)])])
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 400
    assert stored(storage) == []


def test_unpacked_label_refs_are_read_like_packed_ones(server):
    client, storage = server
    unpacked = b"".join(b"\x08" + varint(r) for r in (1, 2, 3, 4))
    raw = _symbols("", "__name__", "up", "job", "x") + _raw_series(unpacked, 3.0)
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 204
    assert stored(storage) == [((("__name__", "up"), ("job", "x")), [1], [3.0])]


def test_symbols_after_the_series_are_resolved(server):
    client, storage = server
    raw = _raw_series(length_delimited(1, b"\x01\x02")) + _symbols("", "__name__", "late")
    assert client.post("/api/v1/write", snappy(raw), V2_HEADERS).status == 204
    assert stored(storage) == [((("__name__", "late"),), [1], [1.0])]


# -- decoder: metadata is logged once, the label cache, agreement with the reference codec -----


def test_metadata_is_emitted_again_until_a_request_carrying_it_was_stored():
    decoder = RemoteWriteV2Decoder()
    raw = v2_request(GOOD, metadata={0: (2, "Help.", "")})
    first = decoder.decode(raw)
    assert [m.help for m in first.batch.metadata] == ["Help."]
    assert decoder.decode(raw).batch.metadata == first.batch.metadata  # first was never stored
    decoder.metadata_stored(first)
    assert decoder.decode(raw).batch.metadata == []
    changed = decoder.decode(v2_request(GOOD, metadata={0: (2, "New help.", "")}))
    assert [m.help for m in changed.batch.metadata] == ["New help."]


def test_cached_label_sets_do_not_let_a_later_invalid_request_through():
    decoder = RemoteWriteV2Decoder()
    decoder.decode(v2_request([([("__name__", "a"), ("b", "c")], [(1, 1.0)])]))
    # {__name__="a\xffb\xffc"} would alias {__name__="a", b="c"} under a 0xFF-joined string key.
    raw = (
        _symbols("", "__name__")
        + length_delimited(4, b"a\xffb\xffc")
        + _raw_series(length_delimited(1, b"\x01\x02"))
    )
    with pytest.raises(IngestRejected, match="UTF-8"):
        decoder.decode(raw)


def test_two_servers_over_one_store_never_share_a_series_key(server_factory):
    """Symbol ids key the store's series aliases: a second decoder must not reuse the first's."""
    client_a, storage = server_factory()
    client_b, _ = server_factory(storage)
    raw_a = v2_request([([("__name__", "from_a")], [(1, 1.0)])])
    raw_b = v2_request([([("__name__", "from_b")], [(1, 2.0)])])
    assert client_a.post("/api/v1/write", snappy(raw_a), V2_HEADERS).status == 204
    assert client_b.post("/api/v1/write", snappy(raw_b), V2_HEADERS).status == 204
    assert stored(storage) == [
        ((("__name__", "from_a"),), [1], [1.0]),
        ((("__name__", "from_b"),), [1], [2.0]),
    ]


def test_symbol_ids_stay_distinct_after_the_table_is_cleared():
    ids = SymbolIds(max_symbols=2)
    first = ids.codes([b"a", b"b"]).tolist()
    assert ids.codes([b"b", b"a"]).tolist() == first[::-1]  # stable across requests
    ids.codes([b"c", b"d", b"e"])  # over the bound: the table is cleared
    again = ids.codes([b"a"]).tolist()
    assert again[0] not in first  # a fresh id, and never one another string had


def test_a_small_label_cache_keeps_decoding_the_same_series_the_same_way():
    decoder = RemoteWriteV2Decoder(max_cached_series=3)
    series = [([("__name__", f"m{i}"), ("k", str(i % 3))], [(i, float(i))]) for i in range(8)]
    for rotation in range(4):
        batch = decoder.decode(v2_request(series[rotation:] + series[:rotation])).batch
        got = {
            labels: batch.values[batch.sample_series == i][0]
            for i, labels in enumerate(batch.series)
        }
        assert got == {tuple(sorted(labels)): samples[0][1] for labels, samples in series}


@pytest.mark.parametrize("wide", [3, 60], ids=["padded-keys", "sliced-keys"])
def test_series_with_uneven_label_counts_keep_their_own_keys(wide):
    decoder = RemoteWriteV2Decoder()
    series = [([("__name__", f"n{i}")], [(1, float(i))]) for i in range(10)]
    series.append(([("__name__", "wide"), *((f"l{k:02d}", "v") for k in range(wide))], [(1, 9.0)]))
    raw = v2_request(series)
    for _ in range(2):  # the second decode answers from the label cache
        batch = decoder.decode(raw).batch
        assert batch.series == [tuple(sorted(labels)) for labels, _ in series]
        assert len(set(batch.series_keys)) == len(series)


NAMES = ["__name__", "job", "instance", "le", "ä", "a b", "z"]
_names = st.sampled_from(NAMES)
_values = st.text(min_size=0, max_size=6)
_series = st.tuples(
    st.dictionaries(_names, _values, max_size=4).map(
        lambda d: {**d, "__name__": "m" + d.get("__name__", "")}
    ),
    st.lists(st.tuples(st.integers(0, 10**12), st.floats(allow_nan=False)), max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_series, max_size=6), st.permutations(range(6)))
def test_decoder_agrees_with_the_protobuf_runtime(series, order):
    """Every accepted request decodes to what a naive reading of the reference codec gives."""
    decoder = RemoteWriteV2Decoder()
    shuffled = [
        (sorted(d.items(), key=lambda kv: order[NAMES.index(kv[0]) % 6]), s) for d, s in series
    ]
    raw = v2_request(shuffled)
    batch = decoder.decode(raw).batch
    req = Request.FromString(raw)
    expect = []
    for ts in req.timeseries:
        refs = list(ts.labels_refs)
        labels = tuple(
            sorted(
                (req.symbols[a], req.symbols[b])
                for a, b in zip(refs[::2], refs[1::2], strict=True)
                if req.symbols[b]
            )
        )
        expect.extend((labels, s.timestamp, s.value) for s in ts.samples)
    assert batch_samples(batch) == expect


_VALID = v2_request(
    [
        ([("__name__", "a"), ("job", "x")], [(1, 1.0), (2, 2.0)]),
        ([("__name__", "b"), ("le", "0.5")], [(3, 3.0)]),
    ],
    metadata={0: (1, "Help.", "seconds")},
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)).map(
            lambda edit: _VALID[: edit[0]] + bytes([edit[1]]) + _VALID[edit[0] + 1 :]
        ),
        st.integers(0, len(_VALID)).map(lambda n: _VALID[:n]),
    )
)
def test_arbitrary_bytes_are_decoded_or_rejected_never_anything_else(body):
    """The compiled walker has no bounds checks of its own: corrupt input must end as a 400."""
    decoder = _FUZZ_DECODER
    try:
        decoded = decoder.decode(body)
    except IngestRejected:
        return
    batch = decoded.batch
    assert len(batch.sample_series) == len(batch.timestamps) == len(batch.values)
    assert all(0 <= i < len(batch.series) for i in batch.sample_series.tolist())


_FUZZ_DECODER = RemoteWriteV2Decoder()
