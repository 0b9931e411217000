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


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def zstd(raw: bytes) -> bytes:
    return bytes(cramjam.zstd.compress(raw))


RW_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
