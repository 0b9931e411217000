"""Remote write 1.0 bodies (snappy or zstd protobuf ``WriteRequest``) → ``SampleBatch``.

The compiled walker (``server/rw_wire.py``) validates the wire format and returns per-series byte
ranges and the sample columns. Label sets are decoded in Python only for series whose raw label
bytes were not seen before: ``RemoteWriteDecoder`` keeps a bounded bytes → ``Labels`` cache, so
a steady Prometheus stream costs one dict lookup per series. The raw bytes are also handed to
the store as ``series_keys``.
"""

from __future__ import annotations

import threading

import numpy as np

from server.errors import IngestRejected
from server.remote_pb import METRIC_TYPES
from server.rw_labels import fast_label_sets
from server.rw_wire import WireFormatError, WireLayout, walk_write_request
from server.validate import canonical_labels, make_batch
from storage.model import Labels, MetricMetadata, SampleBatch


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, lo: int, hi: int):
    """(field, wire, payload_lo, payload_hi, varint_value) of a structurally valid message."""
    pos = lo
    while pos < hi:
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            v, end = _varint(buf, pos)
            yield field, wire, pos, end, v
        elif wire == 2:
            n, pos = _varint(buf, pos)
            end = pos + n
            yield field, wire, pos, end, 0
        else:
            end = pos + (8 if wire == 1 else 4)
            yield field, wire, pos, end, 0
        pos = end


def _utf8(buf: bytes, lo: int, hi: int, what: str) -> str:
    try:
        return buf[lo:hi].decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 in {what}: {buf[lo:hi]!r}", "utf8") from err


def _labels_at(raw: bytes, off: list[int], lo: int, hi: int) -> Labels:
    """Label set from the ``(name_lo, name_hi, value_lo, value_hi)`` quadruples lo..hi."""
    try:
        pairs = [
            (raw[off[j] : off[j + 1]].decode(), raw[off[j + 2] : off[j + 3]].decode())
            for j in range(4 * lo, 4 * hi, 4)
        ]
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 in a label name or value: {err}", "utf8") from err
    return canonical_labels(pairs)


def _metadata(buf: bytes, lo: int, hi: int) -> MetricMetadata:
    mtype, name, help_, unit = 0, "", "", ""
    for field, wire, flo, fhi, v in _fields(buf, lo, hi):
        if field == 1 and wire == 0:
            mtype = v
        elif wire == 2 and field in (2, 4, 5):
            text = _utf8(buf, flo, fhi, "metric metadata")
            if field == 2:
                name = text
            elif field == 4:
                help_ = text
            else:
                unit = text
    kind = METRIC_TYPES[mtype] if 0 <= mtype < len(METRIC_TYPES) else "unknown"
    return MetricMetadata(metric_family_name=name, type=kind, help=help_, unit=unit)


_WARM_UP = b"\x0a\x1a\x0a\x0d\x0a\x08__name__\x12\x01w\x12\x09\x09" + bytes(8)
"""A WriteRequest with one series ``{__name__="w"}`` and one sample (value field only)."""


class RemoteWriteDecoder:
    """Decodes WriteRequests, remembering label sets by their raw bytes (thread-safe)."""

    def __init__(self, max_cached_series: int = 262_144) -> None:
        self._cache: dict[bytes, Labels] = {}
        self._max = max_cached_series
        self._lock = threading.Lock()
        self.skipped_fields = 0
        # Load the compiled kernels now (~0.5 s from numba's cache) rather than on the first
        # request, which would otherwise stall a sender right after (re)start.
        fast_label_sets(_WARM_UP, walk_write_request(_WARM_UP), np.zeros(1, dtype=np.int64))

    @staticmethod
    def _fresh_labels(
        raw: bytes, layout: WireLayout, keys: list[bytes], series: list[Labels | None]
    ) -> dict[bytes, Labels]:
        miss = [i for i, known in enumerate(series) if known is None]
        fast = fast_label_sets(raw, layout, np.array(miss, dtype=np.int64))
        miss_keys = [keys[i] for i in miss]
        fresh: dict[bytes, Labels] = dict(zip(miss_keys, fast, strict=True))  # type: ignore[arg-type]
        if None in fast:  # unusual label sets: the careful path (and its error messages)
            offsets = layout.lab_off.tolist()
            first = layout.lab_first.tolist()
            for i, key, labels in zip(miss, miss_keys, fast, strict=True):
                if labels is None:
                    fresh[key] = _labels_at(raw, offsets, first[i], first[i + 1])
        return fresh

    def decode(self, raw: bytes) -> SampleBatch:
        """Decode an uncompressed WriteRequest; raises ``IngestRejected``."""
        try:
            layout = walk_write_request(raw)
        except WireFormatError as err:
            raise IngestRejected(f"malformed protobuf WriteRequest: {err}", "protobuf") from err
        self.skipped_fields += layout.skipped
        keys = [
            raw[a:b] for a, b in zip(layout.key_lo.tolist(), layout.key_hi.tolist(), strict=True)
        ]
        cache = self._cache
        series = [cache.get(k) for k in keys]
        if None in series:
            fresh = self._fresh_labels(raw, layout, keys, series)
            series = [
                s or fresh[k] for k, s in zip(keys, series, strict=True)
            ]  # labels are never ()
            with self._lock:
                if len(cache) + len(fresh) > self._max:
                    cache.clear()  # bounded memory; a steady stream refills it in one round
                cache.update(fresh)
        metadata = [
            _metadata(raw, lo, hi)
            for lo, hi in zip(layout.meta_lo.tolist(), layout.meta_hi.tolist(), strict=True)
        ]
        return make_batch(
            series,  # type: ignore[arg-type]  # no None left
            layout.sample_series,
            layout.timestamps,
            layout.values,
            metadata=metadata,
            series_keys=keys,
        )
