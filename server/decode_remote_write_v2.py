"""Remote write 2.0 bodies (``io.prometheus.write.v2.Request``) → ``SampleBatch``.

The compiled walker (``server/rw2_wire.py``) indexes the body; this module checks the symbol
references (vectorized), resolves label sets and metadata, and builds the batch through the same
validation as 1.0 (``server/validate.py``), so both versions accept and reject the same label sets:
labels are sorted here (the spec asks senders to sort, and Prometheus' receiver sorts anyway),
empty values are dropped, and empty or duplicate names, a missing ``__name__``, invalid UTF-8,
odd-length or out-of-range references are a 400 with nothing stored.

Label cache: as in 1.0, label sets are decoded only for series not seen before; the cache key of
a series is built from stable ids of its symbol strings (``server/rw2_symbols.py``), since the
reference numbers themselves mean nothing outside their own request. The same keys are handed to
the store as ``series_keys``.

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
from server.rw2_symbols import SymbolIds, series_keys
from server.rw2_wire import V2Layout, WireFormatErrorV2, walk_request_v2
from server.rw_labels import fast_label_sets
from server.validate import make_batch
from storage.model import METRIC_NAME, Labels, MetricMetadata, SampleBatch

MetaKey = bytes
"""Codes of name, type, help and unit (``SymbolIds``): identifies metadata already stored."""
_NAME_BYTES = np.frombuffer(METRIC_NAME.encode(), dtype=np.uint8)

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


def _series_of(ref_first: np.ndarray, ref_index: int) -> int:
    return int(np.searchsorted(ref_first, ref_index, side="right")) - 1


def _check_refs(layout: V2Layout) -> None:
    """Label references come in pairs and every reference names an existing symbol."""
    nsym = layout.sym_lo.shape[0]
    odd = np.flatnonzero(np.diff(layout.ref_first) & 1)
    if odd.size:
        i = int(odd[0])
        n = int(layout.ref_first[i + 1] - layout.ref_first[i])
        raise IngestRejected(f"series {i}: labels_refs has an odd number of elements ({n})", "refs")
    refs = layout.refs
    if refs.size and (int(refs.min()) < 0 or int(refs.max()) >= nsym):
        k = int(np.flatnonzero((refs < 0) | (refs >= nsym))[0])
        raise IngestRejected(
            f"series {_series_of(layout.ref_first, k)}: label reference {int(refs[k])} is "
            f"outside the symbols table (size {nsym})",
            "refs",
        )
    limit = max(nsym, 1)  # ref 0 means "" even in a request that sent no symbols at all
    for what, arr in (("help_ref", layout.meta_help), ("unit_ref", layout.meta_unit)):
        bad = np.flatnonzero((arr < 0) | (arr >= limit))
        if bad.size:
            i = int(bad[0])
            raise IngestRejected(
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


def _family(name: str, kind: str) -> str:
    """Metric family of a series name: 2.0 attaches metadata to every series (``foo_bucket``,
    ``foo_sum``...), 1.0 senders name the family (``foo``), which ``/api/v1/metadata`` lists."""
    for suffix in _FAMILY_SUFFIXES.get(kind, ()):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


@numba.njit(cache=True, nogil=True)
def _meta_rows(refs, ref_first, is_name, mtype, mhelp, munit, ntypes):  # pragma: no cover
    """(name value ref, type, help ref, unit ref) of each series that carries metadata."""
    ns = ref_first.shape[0] - 1
    out = np.empty((ns, 4), dtype=np.int64)
    k = 0
    for i in range(ns):
        t = mtype[i]
        if t == 0 and mhelp[i] == 0 and munit[i] == 0:
            continue  # no Metadata message (or an all-default one): nothing to record
        name = -1
        for j in range(ref_first[i], ref_first[i + 1], 2):
            if is_name[refs[j]]:
                name = refs[j + 1]
        if name < 0:
            continue
        out[k, 0] = name
        out[k, 1] = t if 0 <= t < ntypes else 0
        out[k, 2] = mhelp[i]
        out[k, 3] = munit[i]
        k += 1
    return out[:k]


def _metadata_rows(raw: bytes, layout: V2Layout) -> np.ndarray:
    """Distinct (name value ref, type, help ref, unit ref) rows of the series with metadata."""
    nsym = layout.sym_lo.shape[0]
    if nsym == 0:
        return np.empty((0, 4), dtype=np.int64)  # no strings, so no __name__: rejected anyway
    is_name = np.zeros(nsym, dtype=np.bool_)
    candidates = np.flatnonzero(layout.sym_hi - layout.sym_lo == _NAME_BYTES.shape[0])
    if candidates.size:  # compare all 8-byte symbols with "__name__" at once
        spans = layout.sym_lo[candidates][:, None] + np.arange(_NAME_BYTES.shape[0])
        is_name[candidates] = (np.frombuffer(raw, dtype=np.uint8)[spans] == _NAME_BYTES).all(axis=1)
    rows = _meta_rows(
        layout.refs,
        layout.ref_first,
        is_name,
        layout.meta_type,
        layout.meta_help,
        layout.meta_unit,
        len(METRIC_TYPES),
    )
    if rows.shape[0] <= 1:
        return rows
    if nsym < 1 << 19:  # one int64 per row: a 1-D unique is far cheaper than unique(axis=0)
        packed = ((rows[:, 0] * 8 + rows[:, 1]) * nsym + rows[:, 2]) * nsym + rows[:, 3]
        return rows[np.unique(packed, return_index=True)[1]]
    return np.unique(rows, axis=0)


def _decode_text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 in metric metadata: {b!r}", "utf8") from err


class RemoteWriteV2Decoder:
    """Decodes v2 Requests, remembering label sets by their symbol ids (thread-safe)."""

    def __init__(self, max_cached_series: int = 262_144) -> None:
        self._cache: dict[bytes, Labels] = {}
        self._max = max_cached_series
        self._symbols = SymbolIds(max_cached_series)
        self._stored_meta: set[MetaKey] = set()
        self._lock = threading.Lock()
        self.skipped_fields = 0
        # Load the compiled kernels now rather than on the first request (see the 1.0 decoder).
        self.decode(_WARM_UP)

    def _labels(self, raw: bytes, layout: V2Layout, keys: list[bytes]) -> list[Labels]:
        cache = self._cache
        series = list(map(cache.get, keys))
        if None not in series:
            return series  # type: ignore[return-value]  # the steady state: every series known
        spans = _label_spans(layout)
        miss = [i for i, known in enumerate(series) if known is None]
        fast = fast_label_sets(raw, spans, np.array(miss, dtype=np.int64))  # type: ignore[arg-type]
        fresh: dict[bytes, Labels] = {}
        offsets: list[int] = []
        first: list[int] = []
        for i, labels in zip(miss, fast, strict=True):
            if labels is None:  # unusual label sets: the careful path (and its error messages)
                if not offsets:
                    offsets, first = spans.lab_off.tolist(), spans.lab_first.tolist()
                labels = _labels_at(raw, offsets, first[i], first[i + 1])
            fresh[keys[i]] = labels
            series[i] = labels
        with self._lock:
            if len(cache) + len(fresh) > self._max:
                cache.clear()  # bounded memory; a steady stream refills it in one round
            cache.update(fresh)
        return series  # type: ignore[return-value]

    def _metadata(
        self, raw: bytes, layout: V2Layout, symbols: list[bytes], codes: np.ndarray
    ) -> tuple[list[MetricMetadata], tuple[MetaKey, ...]]:
        """Metadata not stored before (a steady stream sends the same metadata every time)."""
        rows = _metadata_rows(raw, layout)
        if rows.shape[0] == 0:
            return [], ()
        # Key: the stable codes of name, help and unit plus the type, 32 bytes per row.
        keyed = np.empty((rows.shape[0], 4), dtype=np.uint64)
        keyed[:, 0] = codes[rows[:, 0]]
        keyed[:, 1] = rows[:, 1]
        keyed[:, 2] = codes[rows[:, 2]]
        keyed[:, 3] = codes[rows[:, 3]]
        blob = keyed.tobytes()
        stored = self._stored_meta
        new = [
            (r, blob[32 * r : 32 * r + 32])
            for r in range(rows.shape[0])
            if blob[32 * r : 32 * r + 32] not in stored
        ]
        found: dict[MetricMetadata, None] = {}
        for r, _ in new:
            name_ref, kind_num, help_ref, unit_ref = rows[r].tolist()
            name, help_, unit = (_decode_text(symbols[i]) for i in (name_ref, help_ref, unit_ref))
            kind = METRIC_TYPES[kind_num]
            found[MetricMetadata(_family(name, kind), kind, help_, unit)] = None
        return list(found), tuple(key for _, key in new)

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
        symbols = [
            raw[a:b] for a, b in zip(layout.sym_lo.tolist(), layout.sym_hi.tolist(), strict=True)
        ]
        codes = self._symbols.codes(symbols)
        keys = series_keys(codes, layout.refs, layout.ref_first)
        series = self._labels(raw, layout, keys)
        metadata, meta_keys = self._metadata(raw, layout, symbols, codes)
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
