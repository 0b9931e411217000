from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.compression import decompress
from server.decode_remote_write import RemoteWriteDecoder
from server.errors import IngestRejected, PayloadTooLargeError, UnsupportedMediaTypeError
from server.remote_pb import WriteRequest
from storage.model import STALE_NAN_BITS, MetricMetadata, is_stale
from tests.server.payloads import batch_samples, snappy, write_request, zstd

STALE = np.array([STALE_NAN_BITS], np.uint64).view(np.float64)[0]


def decode(raw: bytes):
    return RemoteWriteDecoder().decode(raw)


def test_decoded_batch_matches_what_was_encoded_including_metadata():
    raw = write_request(
        [
            ([("__name__", "up"), ("job", "a")], [(1000, 1.0), (2000, 0.0)]),
            ([("job", "b"), ("__name__", "up")], [(-5, 2.5)]),
        ],
        metadata=[(1, "http_requests_total", "Requests.", "requests")],
    )
    batch = decode(raw)
    assert batch.series == [
        (("__name__", "up"), ("job", "a")),
        (("__name__", "up"), ("job", "b")),
    ]
    assert batch.sample_series.tolist() == [0, 0, 1]
    assert batch.timestamps.tolist() == [1000, 2000, -5]
    assert batch.values.tolist() == [1.0, 0.0, 2.5]
    assert batch.metadata == [
        MetricMetadata("http_requests_total", "counter", "Requests.", "requests")
    ]
    assert batch.series_keys is not None and len(batch.series_keys) == 2


def test_stale_marker_and_special_values_survive_bit_exact():
    raw = write_request(
        [([("__name__", "x")], [(1, STALE), (2, math.nan), (3, math.inf), (4, -0.0)])]
    )
    batch = decode(raw)
    assert is_stale(batch.values).tolist() == [True, False, False, False]
    assert batch.values.view(np.uint64)[3] == np.array([-0.0]).view(np.uint64)[0]
    assert batch.values[2] == math.inf


def test_empty_label_values_are_dropped_like_prometheus():
    batch = decode(write_request([([("__name__", "x"), ("empty", "")], [(1, 1.0)])]))
    assert batch.series == [(("__name__", "x"),)]


def test_label_cache_returns_same_labels_for_repeated_series_across_requests():
    dec = RemoteWriteDecoder()
    raw = write_request([([("__name__", "x"), ("a", "1")], [(1, 1.0)])])
    first = dec.decode(raw)
    second = dec.decode(raw)
    assert first.series == second.series
    assert first.series[0] is second.series[0]


def test_label_cache_is_bounded():
    dec = RemoteWriteDecoder(max_cached_series=10)
    for start in range(0, 50, 5):
        series = [([("__name__", "m"), ("i", str(i))], [(1, 1.0)]) for i in range(start, start + 5)]
        batch = dec.decode(write_request(series))
        assert [dict(s)["i"] for s in batch.series] == [str(i) for i in range(start, start + 5)]
    assert len(dec._cache) <= 10


def test_series_without_samples_are_not_stored():
    batch = decode(write_request([([("__name__", "a")], []), ([("__name__", "b")], [(1, 1.0)])]))
    assert batch.series == [(("__name__", "b"),)]
    assert batch.sample_series.tolist() == [0]


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ([("job", "a")], "missing or empty metric name"),
        ([("__name__", ""), ("job", "a")], "missing or empty metric name"),
        ([("__name__", "x"), ("a", "1"), ("a", "2")], "duplicate label name"),
        ([("__name__", "x"), ("", "v")], "invalid label name"),
    ],
)
def test_invalid_label_sets_reject_the_whole_request(labels, fragment):
    raw = write_request([([("__name__", "ok")], [(1, 1.0)]), (labels, [(1, 1.0)])])
    with pytest.raises(IngestRejected, match=fragment):
        decode(raw)


def test_invalid_utf8_in_a_label_value_is_rejected():
    req = WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="x")
    ts.samples.add(timestamp=1, value=1.0)
    raw = req.SerializeToString().replace(b"\x12\x01x", b"\x12\x01\xff")
    with pytest.raises(IngestRejected, match="UTF-8") as err:
        decode(raw)
    assert err.value.reason == "utf8"


@pytest.mark.parametrize("ts", [2**62, -(2**62), 253_402_300_800_000])
def test_absurd_timestamps_are_rejected(ts):
    with pytest.raises(IngestRejected, match="outside the accepted range"):
        decode(write_request([([("__name__", "x")], [(ts, 1.0)])]))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x05\x0a\x03",  # TimeSeries longer than the buffer
        b"\x0a",  # tag without length
        b"\x0b\x00",  # wire type 3 (group)
        b"\x0a\x04\x12\x02\x08\x01",  # Sample.value as a varint
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # over-long varint
        b"\x00\x00",  # field number 0
    ],
)
def test_malformed_protobuf_is_rejected_with_the_offset(raw):
    with pytest.raises(IngestRejected, match=r"malformed protobuf WriteRequest: .* at byte"):
        decode(raw)


def test_unknown_fields_exemplars_and_histograms_are_skipped():
    base = write_request([([("__name__", "x")], [(1, 1.0)])])
    # Append an exemplar (field 3) and a histogram (field 4) to the TimeSeries, plus a top-level
    # unknown varint field 9.
    ts_body = base[2:] + b"\x1a\x00" + b"\x22\x00"
    raw = b"\x0a" + bytes([len(ts_body)]) + ts_body + b"\x48\x01"
    dec = RemoteWriteDecoder()
    batch = dec.decode(raw)
    assert batch.timestamps.tolist() == [1]
    assert dec.skipped_fields == 2


label_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(["a", "b", "ü", "job"]), label_text, max_size=3),
            st.lists(
                st.tuples(
                    st.integers(-(10**12), 10**13),
                    st.floats(allow_nan=False, width=64),
                ),
                max_size=4,
            ),
        ),
        max_size=6,
    )
)
def test_wire_decoder_agrees_with_the_protobuf_runtime(series):
    payload = [([("__name__", "m"), *labels.items()], samples) for labels, samples in series]
    raw = write_request(payload)
    batch = decode(raw)
    ref = WriteRequest.FromString(raw)
    expected = [
        (tuple(sorted((lb.name, lb.value) for lb in ts.labels if lb.value)), s.timestamp, s.value)
        for ts in ref.timeseries
        for s in ts.samples
    ]
    assert batch_samples(batch) == expected


def test_snappy_and_zstd_bodies_decompress_to_the_same_request():
    raw = write_request([([("__name__", "x")], [(1, 1.0)])])
    assert decompress(snappy(raw), "snappy") == raw
    assert decompress(zstd(raw), "zstd") == raw


def test_decompression_bombs_are_refused_before_expanding():
    bomb = b"\x00" * (8 * 1024 * 1024)
    with pytest.raises(PayloadTooLargeError):
        decompress(snappy(bomb), "snappy", limit=1024 * 1024)
    with pytest.raises(PayloadTooLargeError):
        decompress(zstd(bomb), "zstd", limit=1024 * 1024)


def test_corrupt_compressed_bodies_are_bad_data():
    for enc in ("snappy", "zstd"):
        with pytest.raises(IngestRejected) as err:
            decompress(b"\xff\x00garbage", enc)
        assert err.value.reason == "decompress"
        assert err.value.http_status == 400


def test_unknown_content_encoding_is_unsupported_media_type():
    with pytest.raises(UnsupportedMediaTypeError):
        decompress(b"", "br")
