"""Remote write 2.0 bodies (``io.prometheus.write.v2.Request``) → ``SampleBatch``.

The compiled walker (``server/rw2_wire.py``) indexes the body; this module checks the symbol
references (vectorized), resolves label sets and metadata, and builds the batch through the same
validation as 1.0 (``server/validate.py``), so both versions accept and reject the same label sets:
labels are sorted here (the spec asks senders to sort, and Prometheus' receiver sorts anyway),
empty values are dropped, and empty or duplicate names, a missing ``__name__``, invalid UTF-8,
odd-length or out-of-range references are a 400 with nothing stored.

Label cache: a 2.0 body's reference bytes mean nothing outside their own symbol table, so the
cache key is each series' *strings*: a compiled gather concatenates the referenced names and values
of all series, each string followed by the byte 0xFF (never part of valid UTF-8), and a series'
key is its slice of that buffer, starting with the 0xFF before it. Keys are handed to the store as
``series_keys`` too: they start with 0xFF, which a 1.0 raw key (a protobuf tag) never does.

Histograms and exemplars: 1.0 skips both; here exemplars are accepted and discarded (reported as
written, as Prometheus does without exemplar storage) and native histogram samples are not
stored; the route answers such a request 400 after storing its float samples (a partial write).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np

from server.decode_remote_write import _labels_at
from server.errors import IngestRejected
from server.remote_pb import METRIC_TYPES
from server.rw2_wire import V2Layout, WireFormatErrorV2, walk_request_v2
from server.rw_labels import fast_label_sets
from server.validate import make_batch
from storage.model import METRIC_NAME, Labels, MetricMetadata, SampleBatch

MetaKey = tuple[int, bytes, bytes, bytes]
"""(type, metric name, help, unit) as raw bytes: identifies metadata already stored."""

_FAMILY_SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


@dataclass(frozen=True)
class DecodedV2:
    """One decoded request: the batch to append plus what the response headers report."""

    batch: SampleBatch
    histograms: int  # native histogram samples received (not stored)
    histogram_series: Labels | None  # the first series that carried some
    exemplars: int  # exemplars received (accepted, not stored)
    metadata_keys: tuple[MetaKey, ...]  # metadata in ``batch`` not stored before


@dataclass(frozen=True)
class _LabelSpans:
    """The two ``WireLayout`` fields ``fast_label_sets`` reads, built from symbol spans."""

    lab_first: np.ndarray
    lab_off: np.ndarray


@numba.njit(cache=True, nogil=True)
def _gather_keys(buf, lab_off):  # pragma: no cover - compiled
    """0xFF, then every name and value followed by 0xFF; and whether any string holds 0xFF."""
    npairs = lab_off.shape[0] // 4
    size = 1
    for j in range(npairs):
        size += lab_off[4 * j + 1] - lab_off[4 * j] + lab_off[4 * j + 3] - lab_off[4 * j + 2] + 2
    out = np.empty(size, dtype=np.uint8)
    out[0] = 0xFF
    has_ff = False
    p = 1
    for j in range(npairs):
        for part in range(2):
            for c in range(lab_off[4 * j + 2 * part], lab_off[4 * j + 2 * part + 1]):
                b = buf[c]
                has_ff = has_ff or b == 0xFF
                out[p] = b
                p += 1
            out[p] = 0xFF
            p += 1
    return out, has_ff


def _reject(message: str, reason: str = "labels") -> IngestRejected:
    return IngestRejected(message, reason)


def _series_of(ref_first: np.ndarray, ref_index: int) -> int:
    return int(np.searchsorted(ref_first, ref_index, side="right")) - 1


def _check_refs(layout: V2Layout) -> None:
    """Label references come in pairs and every reference names an existing symbol."""
    nsym = layout.sym_lo.shape[0]
    odd = np.flatnonzero(np.diff(layout.ref_first) & 1)
    if odd.size:
        i = int(odd[0])
        n = int(layout.ref_first[i + 1] - layout.ref_first[i])
        raise _reject(f"series {i}: labels_refs has an odd number of elements ({n})", "refs")
    refs = layout.refs
    if refs.size and (int(refs.min()) < 0 or int(refs.max()) >= nsym):
        k = int(np.flatnonzero((refs < 0) | (refs >= nsym))[0])
        raise _reject(
            f"series {_series_of(layout.ref_first, k)}: label reference {int(refs[k])} is "
            f"outside the symbols table (size {nsym})",
            "refs",
        )
    limit = max(nsym, 1)  # ref 0 means "" even in a request that sent no symbols at all
    for what, arr in (("help_ref", layout.meta_help), ("unit_ref", layout.meta_unit)):
        bad = np.flatnonzero((arr < 0) | (arr >= limit))
        if bad.size:
            i = int(bad[0])
            raise _reject(
                f"series {i}: metadata {what} {int(arr[i])} is outside the symbols table "
                f"(size {nsym})",
                "refs",
            )


def _label_spans(layout: V2Layout) -> _LabelSpans:
    """Per label, the byte spans of its name and value symbols (the 1.0 walker's quadruples)."""
    names, values = layout.refs[0::2], layout.refs[1::2]
    lab_off = np.empty(4 * names.shape[0], dtype=np.int64)
    lab_off[0::4] = layout.sym_lo[names]
    lab_off[1::4] = layout.sym_hi[names]
    lab_off[2::4] = layout.sym_lo[values]
    lab_off[3::4] = layout.sym_hi[values]
    return _LabelSpans(layout.ref_first // 2, lab_off)


def _series_keys(raw: bytes, spans: _LabelSpans) -> list[bytes] | None:
    """Each series' cache key, or None when some string contains 0xFF (keys would be ambiguous;
    such a string is invalid UTF-8 and the careful path rejects it)."""
    lab_off = spans.lab_off
    gathered, has_ff = _gather_keys(np.frombuffer(raw, dtype=np.uint8), lab_off)
    if has_ff:
        return None
    sizes = lab_off[1::4] - lab_off[0::4] + lab_off[3::4] - lab_off[2::4] + 2
    pair_start = np.empty(sizes.shape[0] + 1, dtype=np.int64)
    pair_start[0] = 1
    np.cumsum(sizes, out=pair_start[1:])
    pair_start[1:] += 1
    bounds = pair_start[spans.lab_first]
    blob = gathered.tobytes()
    return [blob[a - 1 : b] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def _family(name: str, kind: str) -> str:
    """Metric family of a series name: 2.0 attaches metadata to every series (``foo_bucket``,
    ``foo_sum``...), 1.0 senders name the family (``foo``), which ``/api/v1/metadata`` lists."""
    for suffix in _FAMILY_SUFFIXES.get(kind, ()):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _symbol(raw: bytes, layout: V2Layout, ref: int) -> bytes:
    if layout.sym_lo.shape[0] == 0:
        return b""
    return raw[int(layout.sym_lo[ref]) : int(layout.sym_hi[ref])]


def _metadata_rows(raw: bytes, layout: V2Layout) -> list[tuple[int, int, int, int]]:
    """Distinct (name ref, type, help ref, unit ref) of the series that carry metadata."""
    mtype, mhelp, munit = layout.meta_type, layout.meta_help, layout.meta_unit
    present = np.flatnonzero((mtype != 0) | (mhelp != 0) | (munit != 0))
    if present.size == 0:
        return []
    lengths = layout.sym_hi - layout.sym_lo
    name_syms = [
        k
        for k in np.flatnonzero(lengths == len(METRIC_NAME)).tolist()
        if _symbol(raw, layout, k) == METRIC_NAME.encode()
    ]
    pair_names, pair_values = layout.refs[0::2], layout.refs[1::2]
    is_name = np.isin(pair_names, name_syms)
    pair_series = np.repeat(
        np.arange(layout.ref_first.shape[0] - 1), np.diff(layout.ref_first) // 2
    )
    name_ref = np.full(layout.ref_first.shape[0] - 1, -1, dtype=np.int64)
    name_ref[pair_series[is_name]] = pair_values[is_name]
    kind = np.where((mtype >= 0) & (mtype < len(METRIC_TYPES)), mtype, 0)
    rows = np.stack([name_ref, kind, mhelp, munit], axis=1)[present]
    rows = rows[rows[:, 0] >= 0]
    return [tuple(r) for r in np.unique(rows, axis=0).tolist()]  # type: ignore[misc]


def _decode_text(b: bytes, what: str) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 in metric metadata {what}: {b!r}", "utf8") from err


class RemoteWriteV2Decoder:
    """Decodes v2 Requests, remembering label sets by their strings (thread-safe)."""

    def __init__(self, max_cached_series: int = 262_144) -> None:
        self._cache: dict[bytes, Labels] = {}
        self._max = max_cached_series
        self._stored_meta: set[MetaKey] = set()
        self._lock = threading.Lock()
        self.skipped_fields = 0
        # Load the compiled kernels now rather than on the first request (see the 1.0 decoder).
        self.decode(_WARM_UP)

    def _labels(self, raw: bytes, layout: V2Layout) -> tuple[list[Labels], list[bytes] | None]:
        spans = _label_spans(layout)
        keys = _series_keys(raw, spans)
        ns = layout.ref_first.shape[0] - 1
        if keys is None:  # a string with 0xFF: invalid UTF-8, the careful path says where
            offsets, first = spans.lab_off.tolist(), spans.lab_first.tolist()
            return [_labels_at(raw, offsets, first[i], first[i + 1]) for i in range(ns)], None
        cache = self._cache
        series = [cache.get(k) for k in keys]
        if None not in series:
            return series, keys  # type: ignore[return-value]  # no None left
        miss = [i for i, known in enumerate(series) if known is None]
        fast = fast_label_sets(raw, spans, np.array(miss, dtype=np.int64))  # type: ignore[arg-type]
        fresh: dict[bytes, Labels] = {}
        offsets = first = None
        for i, labels in zip(miss, fast, strict=True):
            if labels is None:  # unusual label sets: the careful path (and its error messages)
                if offsets is None:
                    offsets, first = spans.lab_off.tolist(), spans.lab_first.tolist()
                labels = _labels_at(raw, offsets, first[i], first[i + 1])  # type: ignore[index]
            fresh[keys[i]] = labels
            series[i] = labels
        with self._lock:
            if len(cache) + len(fresh) > self._max:
                cache.clear()  # bounded memory; a steady stream refills it in one round
            cache.update(fresh)
        return series, keys  # type: ignore[return-value]

    def _metadata(
        self, raw: bytes, layout: V2Layout
    ) -> tuple[list[MetricMetadata], tuple[MetaKey, ...]]:
        """Metadata not stored before (a steady stream sends the same metadata every time)."""
        found: dict[MetricMetadata, None] = {}
        keys: list[MetaKey] = []
        stored = self._stored_meta
        for name_ref, kind, help_ref, unit_ref in _metadata_rows(raw, layout):
            key = (
                kind,
                _symbol(raw, layout, name_ref),
                _symbol(raw, layout, help_ref),
                _symbol(raw, layout, unit_ref),
            )
            if key in stored:
                continue
            kind_name = METRIC_TYPES[kind]
            name = _decode_text(key[1], "name")
            found[
                MetricMetadata(
                    metric_family_name=_family(name, kind_name),
                    type=kind_name,
                    help=_decode_text(key[2], "help"),
                    unit=_decode_text(key[3], "unit"),
                )
            ] = None
            keys.append(key)
        return list(found), tuple(keys)

    def decode(self, raw: bytes) -> DecodedV2:
        """Decode an uncompressed v2 Request; raises ``IngestRejected``."""
        try:
            layout = walk_request_v2(raw)
        except WireFormatErrorV2 as err:
            raise IngestRejected(
                f"malformed protobuf io.prometheus.write.v2.Request: {err}", "protobuf"
            ) from err
        self.skipped_fields += layout.skipped
        _check_refs(layout)
        series, keys = self._labels(raw, layout)
        metadata, meta_keys = self._metadata(raw, layout)
        batch = make_batch(
            series,
            layout.sample_series,
            layout.timestamps,
            layout.values,
            metadata=metadata,
            series_keys=keys,
        )
        hist = layout.histogram_series
        return DecodedV2(
            batch=batch,
            histograms=layout.histograms,
            histogram_series=series[hist] if hist >= 0 else None,
            exemplars=layout.exemplars,
            metadata_keys=meta_keys,
        )

    def metadata_stored(self, decoded: DecodedV2) -> None:
        """Remember metadata once the store holds it, so later requests do not log it again."""
        with self._lock:
            if len(self._stored_meta) + len(decoded.metadata_keys) > self._max:
                self._stored_meta.clear()
            self._stored_meta.update(decoded.metadata_keys)


_WARM_UP = b'"\x00"\x08__name__"\x01w*\x0f\n\x02\x01\x02\x12\t\t' + bytes(8)
"""A v2 Request: symbols ``["", "__name__", "w"]``, one series ``{__name__="w"}``, one sample."""
