"""Range-query results (matrices) as Prometheus JSON bytes, assembled by a compiled copy loop.

Why: a 1,000-step answer over 1,000+ series is over a million ``[<t>,"<v>"]`` points. Making one
Python ``str`` per value and per timestamp and joining them cost ~300 ms per million points,
more than computing most answers. Here the texts stay in byte buffers: orjson writes every value
once (its shortest round-trip digits are Go's ``'f'`` form for the magnitudes it writes
positionally), each distinct timestamp is written once, and a compiled loop copies the pieces
into one output buffer (two passes: sizes, then bytes).

Spellings are ``server.format``'s (see its module docstring): the few values orjson writes
differently (non-finite, and magnitudes where Go and orjson switch to the exponent form at
different points) are spelled by ``format_float`` into a side buffer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import orjson

from planner.result import SeriesResult


def _texts(parts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte texts as one buffer plus per-text start and length."""
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    if len(parts) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return np.frombuffer(b"".join(parts) or b"\0", dtype=np.uint8), starts, lengths


def value_texts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``format_float`` of every value as (buffer, starts, lengths) without a str per value."""
    from server.format import format_float

    v = np.ascontiguousarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    clean = v if bool(finite.all()) else np.where(finite, v, 0.0)
    body = orjson.dumps(clean, option=orjson.OPT_SERIALIZE_NUMPY)
    buf = np.frombuffer(body, dtype=np.uint8)
    starts, lengths = _split_numbers(buf, v.shape[0])
    a = np.abs(clean)
    odd = ~finite | ((a < 1e-4) & (a != 0)) | (a >= 1e15)
    if not odd.any():
        return buf, starts, lengths
    idx = np.flatnonzero(odd)
    extra, extra_starts, extra_lengths = _texts([format_float(x).encode() for x in v[idx]])
    starts = starts.copy()
    starts[idx] = extra_starts + buf.shape[0]
    lengths[idx] = extra_lengths
    return np.concatenate([buf, extra]), starts, lengths


def timestamp_texts(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct timestamps' texts (buffer, starts, lengths) and each point's index into them."""
    from server.format import distinct_timestamps, format_timestamp

    uniq, inverse = distinct_timestamps(ts)
    buf, starts, lengths = _texts([format_timestamp(t).encode() for t in uniq.tolist()])
    return buf, starts, lengths, np.asarray(inverse, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _split_numbers(buf, n):
    """Start and length of each number in orjson's ``[a,b,...]``. orjson writes integers as
    ``1.0``: the ``.0`` is left out (no shortest non-integer ends in ``.0``)."""
    starts = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    k = 0
    begin = 1
    for i in range(1, buf.shape[0]):
        c = buf[i]
        if c == 44 or i == buf.shape[0] - 1:  # ``,`` or the closing ``]``
            size = i - begin
            if size > 2 and buf[i - 1] == 48 and buf[i - 2] == 46:  # ``.0``
                size -= 2
            starts[k] = begin
            lengths[k] = size
            k += 1
            begin = i + 1
    return starts, lengths


@numba.njit(cache=True, nogil=True)
def _assemble(lead, tail, pbuf, pstart, plen, counts, tbuf, tstart, tlen, tidx, vbuf, vstart, vlen):
    n_series = counts.shape[0]
    size = lead.shape[0] + 2 + tail.shape[0]
    for i in range(n_series):
        size += plen[i] + 2 + (1 if i > 0 else 0) + (counts[i] - 1 if counts[i] > 0 else 0)
    for k in range(vlen.shape[0]):
        size += 5 + tlen[tidx[k]] + vlen[k]
    out = np.empty(size, dtype=np.uint8)
    out[: lead.shape[0]] = lead
    pos = lead.shape[0]
    out[pos] = 91  # [
    pos += 1
    k = 0
    for i in range(n_series):
        if i > 0:
            out[pos] = 44  # ,
            pos += 1
        s = pstart[i]
        out[pos : pos + plen[i]] = pbuf[s : s + plen[i]]
        pos += plen[i]
        for m in range(counts[i]):
            if m > 0:
                out[pos] = 44
                pos += 1
            out[pos] = 91
            pos += 1
            t = tidx[k]
            s = tstart[t]
            for j in range(tlen[t]):  # short: a loop beats a slice copy's set-up
                out[pos + j] = tbuf[s + j]
            pos += tlen[t]
            out[pos] = 44
            out[pos + 1] = 34  # "
            pos += 2
            s = vstart[k]
            for j in range(vlen[k]):
                out[pos + j] = vbuf[s + j]
            pos += vlen[k]
            out[pos] = 34
            out[pos + 1] = 93  # ]
            pos += 2
            k += 1
        out[pos] = 93
        out[pos + 1] = 125  # }
        pos += 2
    out[pos] = 93
    pos += 1
    out[pos : pos + tail.shape[0]] = tail
    pos += tail.shape[0]
    assert pos == size
    return out


def matrix_bytes(rows: Sequence[SeriesResult], lead: bytes, tail: bytes) -> bytes:
    """``lead`` + ``[{"metric":..,"values":[[t,"v"],..]},..]`` + ``tail``, as UTF-8 bytes."""
    from server.format import labels_bytes

    counts = np.fromiter((len(s.values) for s in rows), dtype=np.int64, count=len(rows))
    n = int(counts.sum())
    heads = [b'{"metric":' + labels_bytes(s.labels) + b',"values":[' for s in rows]
    pbuf, pstart, plen = _texts(heads)
    if n:
        ts = np.concatenate([np.asarray(s.timestamps, dtype=np.int64) for s in rows])
        vs = np.concatenate([np.asarray(s.values, dtype=np.float64) for s in rows])
        tbuf, tstart, tlen, tidx = timestamp_texts(ts)
        vbuf, vstart, vlen = value_texts(vs)
    else:
        tbuf = vbuf = np.zeros(1, dtype=np.uint8)
        tstart = tlen = tidx = vstart = vlen = np.zeros(0, dtype=np.int64)
    out = _assemble(
        np.frombuffer(lead, dtype=np.uint8) if lead else np.zeros(0, np.uint8),
        np.frombuffer(tail, dtype=np.uint8) if tail else np.zeros(0, np.uint8),
        pbuf, pstart, plen, counts, tbuf, tstart, tlen, tidx, vbuf, vstart, vlen,
    )  # fmt: skip
    return out.tobytes()


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache) before the first request."""
    labels = (("__name__", "x"),)
    one = SeriesResult(labels, np.zeros(1, dtype=np.int64), np.ones(1))
    matrix_bytes([one], b"", b"")
