"""Remote-write payloads for ``bench/ingest.py``: a minimal protobuf encoder for fixed-shape
1.0 and 2.0 requests (not the codec under test; the server decodes them with its own)."""

from __future__ import annotations

import struct

import cramjam
import numpy as np

from tests.server.payloads import length_delimited, varint

# -- payloads: a minimal protobuf encoder (the payloads are fixed-shape, this is not the codec) --


def pb_field(number: int, payload: bytes) -> bytes:
    return length_delimited(number, payload)


def label_bytes(pairs: list[tuple[str, str]]) -> bytes:
    return b"".join(
        pb_field(1, pb_field(1, k.encode()) + pb_field(2, v.encode())) for k, v in pairs
    )


def sample_bytes(ts: int, value: float) -> bytes:
    return pb_field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts))


def shaped_pairs(i: int, prefix: str = "node_metric") -> list[tuple[str, str]]:
    """A node-exporter-like series: sorted labels, ~100 bytes."""
    return [
        ("__name__", f"{prefix}_{i % 250}"),
        ("cpu", str(i % 8)),
        ("instance", f"host-{i // 250:04d}:9100"),
        ("job", "node"),
        ("mode", ("idle", "user", "system", "iowait")[i % 4]),
    ]


def shaped_labels(i: int) -> bytes:
    return label_bytes(shaped_pairs(i))


def rw2_request(series: list[list[tuple[str, str]]], ts: int, values: np.ndarray) -> bytes:
    """An uncompressed v2 Request, one sample per series, with the per-series metadata (gauge,
    help text) a Prometheus 3 sender attaches; symbols in order of first use, as it does."""
    table: dict[str, int] = {"": 0}

    def ref(text: str) -> bytes:
        return varint(table.setdefault(text, len(table)))

    parts = []
    for pairs, value in zip(series, values.tolist(), strict=True):
        refs = b"".join(ref(k) + ref(v) for k, v in pairs)
        meta = b"\x08\x02\x18" + ref(f"Help for {pairs[0][1]}.")
        parts.append(pb_field(5, pb_field(1, refs) + sample_bytes(ts, value) + pb_field(5, meta)))
    return b"".join(pb_field(4, t.encode()) for t in table) + b"".join(parts)


def rw2_requests(
    series: list[list[tuple[str, str]]], ts: int, per_request: int, seed: int
) -> list[bytes]:
    """Snappy v2 Requests of ``per_request`` series each, one sample per series at ``ts``."""
    values = np.random.default_rng(seed).random(len(series)) * 1e6
    return [
        bytes(
            cramjam.snappy.compress_raw(
                rw2_request(series[a : a + per_request], ts, values[a : a + per_request])
            )
        )
        for a in range(0, len(series), per_request)
    ]


def rw_requests(labels: list[bytes], ts: int, per_request: int, seed: int) -> list[bytes]:
    """Snappy WriteRequests of ``per_request`` series each, one sample per series at ``ts``."""
    rng = np.random.default_rng(seed)
    values = rng.random(len(labels)) * 1e6
    out = []
    for start in range(0, len(labels), per_request):
        body = b"".join(
            pb_field(1, labels[i] + sample_bytes(ts, float(values[i])))
            for i in range(start, min(start + per_request, len(labels)))
        )
        out.append(bytes(cramjam.snappy.compress_raw(body)))
    return out


def latency_request(labels: list[bytes], t0: int, n: int) -> bytes:
    """Each series gets ``n`` samples 10 ms apart, so 200 requests stay within one block range
    (a head cut inside the measured requests would time the storage's block writer instead)."""
    body = b"".join(
        pb_field(1, lab + b"".join(sample_bytes(t0 + j * 10, float(j)) for j in range(n)))
        for lab in labels
    )
    return bytes(cramjam.snappy.compress_raw(body))


# -- servers ---------------------------------------------------------------------------------
