"""Compiled (numba) wire-format walker for remote write 2.0 ``io.prometheus.write.v2.Request``.

The 1.0 walker's reasoning holds here too (``server/rw_wire.py``): one compiled pass validates
the wire structure and hands Python arrays, never strings. A 2.0 body carries its strings once, in
the ``symbols`` table; the walker records each symbol's byte span and, per series, its label
symbol references, its samples and its metadata references. Reference *values* are checked later
(vectorized) because ``symbols`` may follow ``timeseries`` on the wire. Histograms and exemplars
are only counted: Tidemark stores neither (see ``server/decode_remote_write_v2.py``).

The varint, skip and Sample parsers are the 1.0 walker's. Numba's on-disk cache does not notice
changes in another file: after editing those in ``server/rw_wire.py``, touch this file too (or
clear ``__pycache__``) so that these kernels are recompiled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from server.rw_wire import (
    ERR_FIELD_TYPE,
    ERR_LENGTH_OVERFLOW,
    ERR_TRUNCATED_VARINT,
    ERR_ZERO_FIELD,
    ERROR_TEXT,
    OK,
    WireFormatError,
    _sample,
    _skip,
    _varint,
)

ERR_V1_FIELD = 20
ERR_METADATA_TYPE = 21
ERR_REF_TYPE = 22

ERROR_TEXT_V2 = {
    **ERROR_TEXT,
    ERR_V1_FIELD: "field 1, 2 or 3 is reserved in io.prometheus.write.v2.Request (this looks "
    "like a remote write 1.0 prometheus.WriteRequest; send it without proto= or with "
    "proto=prometheus.WriteRequest)",
    ERR_METADATA_TYPE: "Metadata.type, help_ref and unit_ref must be varints (wire type 0)",
    ERR_REF_TYPE: "labels_refs must be varints, packed or not (wire type 0 or 2)",
}

# counts[] slots shared by the compiled functions.
_SERIES, _SAMPLES, _SYMBOLS, _SKIPPED, _ERR, _ERR_POS, _REFS, _HISTS, _EXEMPLARS, _HIST_SERIES = (
    range(10)
)


@numba.njit(cache=True, nogil=True, inline="always")
def _metadata(buf, pos, end, k, mtype, mhelp, munit):  # pragma: no cover - compiled
    """Parse one Metadata message into slot k; returns 0 or an error code."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        if pos < 0:
            return ERR_TRUNCATED_VARINT
        field = tag >> 3
        wire = tag & 7
        if field == 0:
            return ERR_ZERO_FIELD
        if field == 1 or field == 3 or field == 4:
            if wire != 0:
                return ERR_METADATA_TYPE
            v, pos = _varint(buf, pos, end)
            if pos < 0:
                return ERR_TRUNCATED_VARINT
            if field == 1:
                mtype[k] = v
            elif field == 3:
                mhelp[k] = v
            else:
                munit[k] = v
        else:
            pos = _skip(buf, pos, end, wire)
            if pos < 0:
                return -pos
    return OK


@numba.njit(cache=True, nogil=True, inline="always")
def _refs(buf, pos, end, wire, counts, refs):  # pragma: no cover - compiled
    """Append the label references of one labels_refs field; returns (error, new_pos)."""
    if wire == 0:
        v, pos = _varint(buf, pos, end)
        if pos < 0:
            return ERR_TRUNCATED_VARINT, pos
        refs[counts[_REFS]] = v
        counts[_REFS] += 1
        return OK, pos
    if wire != 2:
        return ERR_REF_TYPE, pos
    n, pos = _varint(buf, pos, end)
    if pos < 0:
        return ERR_TRUNCATED_VARINT, pos
    if n < 0 or n > end - pos:
        return ERR_LENGTH_OVERFLOW, pos
    fend = pos + n
    k = counts[_REFS]  # a local count: the loop below runs once per label string
    while pos < fend:
        b = np.int64(buf[pos])
        if b < 0x80:  # one-byte references (the first 128 symbols) skip the general decoder
            refs[k] = b
            pos += 1
        else:
            v, pos = _varint(buf, pos, fend)
            if pos < 0:
                counts[_REFS] = k
                return ERR_TRUNCATED_VARINT, pos
            refs[k] = v
        k += 1
    counts[_REFS] = k
    return OK, fend


@numba.njit(cache=True, nogil=True, inline="always")
def _series(
    buf, pos, end, ns, counts, ref_first, refs, smp, ts, bits, mtype, mhelp, munit
):  # pragma: no cover - compiled
    """Parse one TimeSeries body; returns 0 or an error code (offset in counts[_ERR_POS])."""
    mtype[ns] = 0
    mhelp[ns] = 0
    munit[ns] = 0
    while pos < end:
        fstart = pos
        tag, pos = _varint(buf, pos, end)
        if pos < 0:
            counts[_ERR_POS] = fstart
            return ERR_TRUNCATED_VARINT
        field = tag >> 3
        wire = tag & 7
        if field == 0:
            counts[_ERR_POS] = fstart
            return ERR_ZERO_FIELD
        if field == 1:
            err, pos = _refs(buf, pos, end, wire, counts, refs)
            if err != OK:
                counts[_ERR_POS] = fstart
                return err
            continue
        if 2 <= field <= 5 and wire != 2:
            counts[_ERR_POS] = fstart
            return ERR_FIELD_TYPE
        fend = _skip(buf, pos, end, wire)
        if fend < 0:
            counts[_ERR_POS] = fstart
            return -fend
        if field == 2 or field == 5:
            _, body = _varint(buf, pos, end)
            if field == 2:
                err = _sample(buf, body, fend, counts[_SAMPLES], ts, bits)
                smp[counts[_SAMPLES]] = ns
                counts[_SAMPLES] += 1
            else:
                err = _metadata(buf, body, fend, ns, mtype, mhelp, munit)
            if err != OK:
                counts[_ERR_POS] = body
                return err
        elif field == 3:
            if counts[_HISTS] == 0:
                counts[_HIST_SERIES] = ns
            counts[_HISTS] += 1
        elif field == 4:
            counts[_EXEMPLARS] += 1
        elif field != 6:  # 6: created_timestamp of rc.0-rc.3 senders, ignored
            counts[_SKIPPED] += 1
        pos = fend
    ref_first[ns + 1] = counts[_REFS]
    return OK


@numba.njit(cache=True, nogil=True)
def _walk(
    buf, counts, sym_lo, sym_hi, ref_first, refs, smp, ts, bits, mtype, mhelp, munit
):  # pragma: no cover - compiled
    """Walk a v2 Request into caller-allocated arrays sized for the worst case."""
    n = buf.shape[0]
    pos = 0
    while pos < n:
        start = pos
        tag, pos = _varint(buf, pos, n)
        if pos < 0:
            counts[_ERR] = ERR_TRUNCATED_VARINT
            counts[_ERR_POS] = start
            return
        field = tag >> 3
        wire = tag & 7
        if field == 0 or 1 <= field <= 3 or ((field == 4 or field == 5) and wire != 2):
            counts[_ERR] = (
                ERR_ZERO_FIELD if field == 0 else (ERR_V1_FIELD if field <= 3 else ERR_FIELD_TYPE)
            )
            counts[_ERR_POS] = start
            return
        body_end = _skip(buf, pos, n, wire)
        if body_end < 0:
            counts[_ERR] = -body_end
            counts[_ERR_POS] = start
            return
        if field == 4 or field == 5:
            _, body = _varint(buf, pos, n)
            if field == 4:
                sym_lo[counts[_SYMBOLS]] = body
                sym_hi[counts[_SYMBOLS]] = body_end
                counts[_SYMBOLS] += 1
            else:
                ns = counts[_SERIES]
                err = _series(
                    buf,
                    body,
                    body_end,
                    ns,
                    counts,
                    ref_first,
                    refs,
                    smp,
                    ts,
                    bits,
                    mtype,
                    mhelp,
                    munit,
                )
                if err != OK:
                    counts[_ERR] = err
                    return
                counts[_SERIES] = ns + 1
        else:
            counts[_SKIPPED] += 1
        pos = body_end


@dataclass(frozen=True)
class V2Layout:
    """What one walk of a v2 Request found, as arrays (no strings decoded).

    ``sym_lo/sym_hi[k]``: byte span of symbol k. Series i's label references are
    ``refs[ref_first[i]:ref_first[i+1]]`` (unchecked symbol indexes, name/value alternating).
    ``sample_series[j]``: series index of sample j. ``meta_type/help/unit[i]``: series i's
    Metadata fields (all 0 when it had none). ``histograms``/``exemplars``: how many were sent
    (not decoded); ``histogram_series``: index of the first series that had histograms, or -1.
    ``skipped``: unknown fields ignored.
    """

    sym_lo: np.ndarray
    sym_hi: np.ndarray
    ref_first: np.ndarray
    refs: np.ndarray
    sample_series: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    meta_type: np.ndarray
    meta_help: np.ndarray
    meta_unit: np.ndarray
    histograms: int
    histogram_series: int
    exemplars: int
    skipped: int


class WireFormatErrorV2(WireFormatError):
    texts = ERROR_TEXT_V2


def walk_request_v2(buf: bytes | bytearray | memoryview | np.ndarray) -> V2Layout:
    """Validate and index a serialized v2 Request; raises ``WireFormatErrorV2``.

    Every symbol, series, sample and metadata takes at least two bytes and every reference at
    least one, which bounds the arrays; ``np.empty`` leaves untouched pages unallocated.
    """
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    cap = arr.shape[0] // 2 + 1
    counts = np.zeros(10, dtype=np.int64)
    counts[_HIST_SERIES] = -1
    block = np.empty(9 * cap + 1, np.int64)
    sym_lo, sym_hi, smp, ts, bits, mtype, mhelp, munit = (
        block[k * cap : (k + 1) * cap] for k in range(8)
    )
    ref_first = block[8 * cap :]
    ref_first[0] = 0
    refs = np.empty(arr.shape[0] + 1, np.int64)
    _walk(arr, counts, sym_lo, sym_hi, ref_first, refs, smp, ts, bits, mtype, mhelp, munit)
    if counts[_ERR] != OK:
        raise WireFormatErrorV2(int(counts[_ERR]), int(counts[_ERR_POS]))
    ns, nsm, nsym, nref = (int(counts[i]) for i in (_SERIES, _SAMPLES, _SYMBOLS, _REFS))
    return V2Layout(
        sym_lo=sym_lo[:nsym],
        sym_hi=sym_hi[:nsym],
        ref_first=ref_first[: ns + 1],
        refs=refs[:nref],
        # Copies: these outlive the call (the store may keep them) and must not pin ``block``.
        sample_series=smp[:nsm].copy(),
        timestamps=ts[:nsm].copy(),
        values=bits[:nsm].view(np.float64).copy(),
        meta_type=mtype[:ns],
        meta_help=mhelp[:ns],
        meta_unit=munit[:ns],
        histograms=int(counts[_HISTS]),
        histogram_series=int(counts[_HIST_SERIES]),
        exemplars=int(counts[_EXEMPLARS]),
        skipped=int(counts[_SKIPPED]),
    )
