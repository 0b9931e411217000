"""Builders of real remote-write payloads through the protobuf runtime (the reference codec)."""

from __future__ import annotations

import cramjam

from server.remote_pb import WriteRequest


def write_request(
    series: list[tuple[list[tuple[str, str]], list[tuple[int, float]]]],
    metadata: list[tuple[int, str, str, str]] = (),  # type: ignore[assignment]
) -> bytes:
    """Serialized WriteRequest: each series is (label pairs, [(ts_ms, value)])."""
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    for mtype, name, help_, unit in metadata:
        req.metadata.add(type=mtype, metric_family_name=name, help=help_, unit=unit)
    return req.SerializeToString()


def varint(n: int) -> bytes:
    """A protobuf varint (negative numbers as their 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A protobuf length-delimited field, hand-built (for bodies the runtime would refuse)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def batch_samples(batch) -> list[tuple]:
    """``(labels, ts, value)`` per sample of a decoded ``SampleBatch``, in batch order."""
    return [
        (batch.series[i], t, v)
        for i, t, v in zip(
            batch.sample_series.tolist(), batch.timestamps.tolist(), batch.values.tolist(),
            strict=True,
        )
    ]  # fmt: skip


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def zstd(raw: bytes) -> bytes:
    return bytes(cramjam.zstd.compress(raw))


RW_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
