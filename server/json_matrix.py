"""Range-query results (matrices) as Prometheus JSON bytes, written by one compiled loop.

Why: a 1,000-step answer over 1,000+ series is over a million ``[<t>,"<v>"]`` points (~40 MB).
One Python ``str`` per value and per timestamp cost ~300 ms per million points; byte texts
copied per byte (then ``tobytes``, then joined into the envelope, then joined with the stats)
still cost ~170-220 ms. Here, per answer: each distinct timestamp is written once as
``,[<t>,"`` (the step grid is found in one pass, no sort); whole values below 1e15 (counters,
most gauges) are written as integer digits by the loop itself; orjson writes the other values
(its shortest round-trip digits are Go's ``'f'`` form where it writes positionally); the few
values orjson spells unlike Go (non-finite; magnitudes where the two switch to the exponent form
at different points) are spelled by ``format_float`` into a side buffer. ``_assemble`` then walks
the series once, copying texts by unaligned 8-byte words and finding the end of each orjson
number with a word-wide search for ``,``/``]`` (no separate split pass, no per-value offsets), into
one numpy buffer that already holds the envelope's lead and leaves room for its tail: the body is
never copied again (``server.format.OpenBody`` closes it in place, the HTTP layer sends a view).

Measured on ``bench/json_out.py``'s data (1,220 series x 1,000 points, 100 series x 1,000,
100,000 series x 12), the whole body as sent (envelope and stats included), best of 7 on 2 cores
shared with other work, before (commit 410df35) -> after: random floats x1000 172 -> 51 ms,
integer-valued floats 78 -> 20 ms, 100 k random floats 8.9 -> 3.8 ms, 100,000 series 363 -> 99
ms (labels: one orjson call over the label tuples, not one per series). Of the 51 ms, orjson's
float writer is 26 (it holds the GIL), the loop 15.

Not parallel, measured: a ``prange`` over series (offsets from a sizes pass) took 16.0 ms on 2
threads vs 14.3 on 1 for 1.22 M points and 6.6 vs 1.2 ms for 100 k (thread wake-up), and running
the loop in a second thread beside orjson 68 vs 59 ms: the second core is rarely idle here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
import orjson
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from planner.result import SeriesResult

_NO_BYTES = np.frombuffer(b"\0" * 8, dtype=np.uint8)  # read-only, as every text buffer is
_OPEN, _CLOSE = 91, 93  # ``[`` ``]``
_PAD = 32  # word copies write up to 24 bytes from where a text starts
# Each series' object around its labels: ``,{"metric":`` (no comma for the first) and
# ``,"values":[``, zero-padded so that word copies may read past them.
_FRAME = np.frombuffer(b',{"metric":,"values":['.ljust(48, b"\0"), dtype=np.uint8)
_FRAME_SIZE = 22


def _texts(parts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte texts as one read-only buffer plus per-text start and length."""
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    starts = np.zeros(len(parts), dtype=np.int64)
    if len(parts) > 1:
        np.cumsum(lengths[:-1], out=starts[1:])
    return np.frombuffer(b"".join(parts) or b"\0", dtype=np.uint8), starts, lengths


def label_texts(rows: Sequence[SeriesResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every series' labels as ``server.format.labels_bytes`` spells them (buffer, starts,
    lengths), from one orjson call over the label tuples (one call per series costs ~1 µs at
    best and ~10 µs when its buffer is fresh memory, 1 s for 100 k series; making a ``dict``
    per series another ~1 µs), rewritten from ``[["k","v"],..]`` to ``{"k":"v",..}``."""
    from server.format import html_safe

    text = html_safe(orjson.dumps([s.labels for s in rows]))
    buf, starts, lengths, ok = _pairs_to_objects(np.frombuffer(text, dtype=np.uint8), len(rows))
    if ok:
        return buf, starts, lengths
    # Not tuples of pairs (a mapping somewhere): one dict per series.
    text = orjson.dumps([dict(s.labels) for s in rows], option=orjson.OPT_NON_STR_KEYS)
    buf = np.frombuffer(html_safe(text), dtype=np.uint8)
    starts, lengths = _split_objects(buf, len(rows))
    return buf, starts, lengths


@numba.njit(cache=True, nogil=True)
def _pairs_to_objects(src, n):
    """orjson's ``[[["k","v"],..],..]`` as one ``{"k":"v",..}`` per series (strings copied as
    they are); ``ok`` is False when the text is not lists of pairs."""
    out = np.empty(src.shape[0] + 8, dtype=np.uint8)
    starts = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    pos = depth = k = 0
    in_string = escaped = False
    for i in range(1, src.shape[0] - 1):  # inside the outer ``[..]``
        c = src[i]
        if in_string:
            out[pos] = c
            pos += 1
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:
                in_string = False
        elif c == 34:
            in_string = True
            out[pos] = c
            pos += 1
        elif c == 91:  # [ opens a series (depth 1) or a pair (depth 2, dropped)
            depth += 1
            if depth == 1:
                starts[k] = pos
                out[pos] = 123  # {
                pos += 1
            elif depth > 2 or k >= n:
                return out, starts, lengths, False
        elif c == 93:  # ]
            if depth == 1:
                out[pos] = 125  # }
                pos += 1
                lengths[k] = pos - starts[k]
                k += 1
            depth -= 1
        elif c == 44:  # , between name and value (depth 2), pairs (1) or series (0, dropped)
            if depth == 2:
                out[pos] = 58  # :
                pos += 1
            elif depth == 1:
                out[pos] = 44
                pos += 1
        else:  # an object or a number: not label pairs
            return out, starts, lengths, False
    return out, starts, lengths, k == n


@numba.njit(cache=True, nogil=True)
def _split_objects(buf, n):
    """Start and length of each object in ``[{..},{..}]`` (braces inside strings skipped)."""
    starts = np.empty(n, dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    k = 0
    in_string = False
    escaped = False
    for i in range(buf.shape[0]):
        c = buf[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == 92:  # backslash
                escaped = True
            elif c == 34:
                in_string = False
        elif c == 34:
            in_string = True
        elif c == 123:  # {  (label values are strings: objects never nest)
            starts[k] = i
        elif c == 125:
            lengths[k] = i + 1 - starts[k]
            k += 1
    return starts, lengths


def value_texts(
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The value texts ``_assemble`` does not write itself: orjson's ``[a,b,..]`` of the values
    that are neither whole nor odd, in order; the odd values' indices with their
    ``format_float`` texts (buffer, starts, lengths); how many values are whole (written by
    ``_assemble``). Odd values are those orjson spells unlike Go: non-finite, and magnitudes
    where the two switch to the exponent form at different points."""
    from server.format import format_float

    v = np.ascontiguousarray(values, dtype=np.float64)
    odd, n_rest = _classify(v)
    texts = [format_float(x).encode() for x in v[odd].tolist()]
    xbuf, xstart, xlen = _texts(texts)
    rest = v if n_rest == v.shape[0] else _rest(v, n_rest)
    vbuf = np.frombuffer(orjson.dumps(rest, option=orjson.OPT_SERIALIZE_NUMPY), dtype=np.uint8)
    return vbuf, odd, xbuf, xstart, xlen, v.shape[0] - n_rest - odd.shape[0]


def timestamp_texts(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct timestamps' texts as ``,[<t>,"`` (buffer, starts, lengths) and each point's index
    into them. A series' first point starts one byte later (no comma)."""
    from server.format import _GRID_SLACK

    lo, step, size, inverse = _grid(ts, _GRID_SLACK)
    if size:  # a step grid (range results): no sort
        uniq = lo + np.arange(size, dtype=np.int64) * step
    else:  # scattered (raw samples of a range selector)
        uniq, inverse = np.unique(ts, return_inverse=True)
    buf, starts, lengths = _timestamp_texts(np.asarray(uniq, dtype=np.int64))
    return buf, starts, lengths, np.asarray(inverse, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@numba.njit(cache=True, nogil=True)
def _grid(ts, slack):
    """``distinct_timestamps``' grid without its ``np.gcd.reduce`` and division passes: the step
    is guessed from the first timestamps and checked while every index is computed (one float
    multiply each); a wrong guess falls back to the exact gcd. Returns ``lo, step, size,
    inverse``, size 0 when the grid would exceed the timestamps by more than ``slack``."""
    n = ts.shape[0]
    lo = ts.min()
    step = 0
    for k in range(min(n, 64)):
        step = _gcd(step, ts[k] - lo)
    inverse = np.empty(n, dtype=np.int64)
    if not _grid_indices(ts, lo, step, inverse):
        step = 0
        for k in range(n):
            step = _gcd(step, ts[k] - lo)
        _grid_indices(ts, lo, step, inverse)
    size = (ts.max() - lo) // max(step, 1) + 1
    return lo, step, size if size <= n + slack else 0, inverse


@numba.njit(cache=True, nogil=True)
def _grid_indices(ts, lo, step, inverse):
    """``inverse[k] = (ts[k] - lo) / step``; False at the first timestamp off the grid."""
    if step == 0:
        for k in range(ts.shape[0]):
            if ts[k] != lo:
                return False
            inverse[k] = 0
        return True
    inv = 1.0 / step
    for k in range(ts.shape[0]):
        d = ts[k] - lo
        q = np.int64(d * inv + 0.5)  # exact below 2**53; the product check catches the rest
        if q * step != d:
            q = d // step
            if q * step != d:
                return False
        inverse[k] = q
    return True


@numba.njit(cache=True, nogil=True)
def _timestamp_texts(uniq):
    """``format_timestamp`` (``-``, whole seconds, ``.`` and three millisecond digits when not
    zero) between ``,[`` and ``,"`` for every timestamp."""
    buf = np.empty(uniq.shape[0] * 32 + 8, dtype=np.uint8)
    starts = np.empty(uniq.shape[0], dtype=np.int64)
    lengths = np.empty(uniq.shape[0], dtype=np.int64)
    pos = 0
    for i in range(uniq.shape[0]):
        starts[i] = pos
        buf[pos] = 44  # ,
        buf[pos + 1] = 91  # [
        pos += 2
        t = uniq[i]
        if t < 0:
            buf[pos] = 45  # -
            pos += 1
            t = -t
        pos = _write_digits(buf, pos, t // 1000)
        frac = t % 1000
        if frac:
            buf[pos] = 46  # .
            buf[pos + 1] = 48 + frac // 100
            buf[pos + 2] = _DIGIT_PAIRS[2 * (frac % 100)]
            buf[pos + 3] = _DIGIT_PAIRS[2 * (frac % 100) + 1]
            pos += 4
        buf[pos] = 44  # ,
        buf[pos + 1] = 34  # "
        pos += 2
        lengths[i] = pos - starts[i]
    return buf, starts, lengths


@numba.njit(cache=True, nogil=True, inline="always")
def _is_whole(x):
    """Whole and below 1e15: spelt as its integer digits (orjson would add ``.0``). A shortest
    round-trip text of a whole double below 2**53 has all its integer digits."""
    return abs(x) < 1e15 and x == np.floor(x)  # NaN and infinities fail the first test


@numba.njit(cache=True, nogil=True, inline="always")
def _is_odd(x):
    a = abs(x)
    return not (a < 1e15) or (a < 1e-4 and a != 0)  # NaN compares false: caught by the first


@numba.njit(cache=True, nogil=True)
def _classify(v):
    """Indices of the odd values and how many values are neither odd nor whole."""
    odd = np.empty(v.shape[0], dtype=np.int64)
    n_odd = 0
    n_rest = 0
    for k in range(v.shape[0]):
        x = v[k]
        if _is_odd(x):
            odd[n_odd] = k
            n_odd += 1
        elif not _is_whole(x):
            n_rest += 1
    return odd[:n_odd].copy(), n_rest


@numba.njit(cache=True, nogil=True)
def _rest(v, n_rest):
    rest = np.empty(n_rest, dtype=np.float64)
    j = 0
    for k in range(v.shape[0]):
        x = v[k]
        if not _is_odd(x) and not _is_whole(x):
            rest[j] = x
            j += 1
    return rest


_DIGIT_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)


@numba.njit(cache=True, nogil=True, inline="always")
def _write_whole(out, pos, x):
    """The integer digits of a whole ``x`` (``_is_whole``), ``-0`` for negative zero."""
    if x < 0 or (x == 0 and math.copysign(1.0, x) < 0):
        out[pos] = 45  # -
        pos += 1
    return _write_digits(out, pos, np.int64(abs(x)))


@numba.njit(cache=True, nogil=True, inline="always")
def _write_digits(out, pos, u):
    """The decimal digits of ``0 <= u < 10**18``; returns the new ``pos``."""
    end = pos + 1
    p = np.int64(10)
    while u >= p:
        end += 1
        p *= 10
    q = end
    while u >= 100:  # two digits per division
        r = 2 * (u % 100)
        u //= 100
        q -= 2
        out[q] = _DIGIT_PAIRS[r]
        out[q + 1] = _DIGIT_PAIRS[r + 1]
    if u >= 10:
        out[q - 2] = _DIGIT_PAIRS[2 * u]
        out[q - 1] = _DIGIT_PAIRS[2 * u + 1]
    else:
        out[q - 1] = 48 + u
    return end


# Unaligned 8-byte loads and stores and a trailing-zero count: numba has no such operations on a
# byte array, LLVM does. Words are read little-endian (x86-64, arm64): byte 0 is the low byte.
@intrinsic
def _load8(typingctx, arr, idx):
    sig = types.uint64(arr, types.int64)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        word = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(word, align=1)

    return sig, codegen


@intrinsic
def _store8(typingctx, arr, idx, value):
    sig = types.void(arr, types.int64, types.uint64)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        word = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], word, align=1)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _trailing_zeros(typingctx, value):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_COMMAS = np.uint64(0x2C2C2C2C2C2C2C2C)
_BRACKETS = np.uint64(0x5D5D5D5D5D5D5D5D)


@numba.njit(cache=True, nogil=True, inline="always")
def _copy(out, pos, src, start, n):
    """``src[start:start+n]`` to ``out[pos:]``; returns the new ``pos``. Texts are short: whole
    words, whose overrun (< 8 bytes) the next piece rewrites (``out`` has ``_PAD`` spare bytes
    at its end), unless the read would leave ``src``."""
    if start + n + 8 <= src.shape[0]:
        j = 0
        while j < n:
            _store8(out, pos + j, _load8(src, start + j))
            j += 8
    else:
        for j in range(n):
            out[pos + j] = src[start + j]
    return pos + n


@numba.njit(cache=True, nogil=True, inline="always")
def _copy_short(out, pos, src, start, n):
    """``_copy`` for texts of at most 24 bytes (timestamps): three words, no loop."""
    if n <= 24 and start + 24 <= src.shape[0]:
        _store8(out, pos, _load8(src, start))
        _store8(out, pos + 8, _load8(src, start + 8))
        _store8(out, pos + 16, _load8(src, start + 16))
        return pos + n
    return _copy(out, pos, src, start, n)


@numba.njit(cache=True, nogil=True, inline="always")
def _stops(w):
    """The high bit of every ``,`` or ``]`` byte of ``w`` (the classic zero-byte test: a borrow
    may flag a byte above a real match, so only the lowest flag is exact)."""
    a = w ^ _COMMAS
    b = w ^ _BRACKETS
    return (((a - _ONES) & ~a) | ((b - _ONES) & ~b)) & _HIGHS


@numba.njit(cache=True, nogil=True, inline="always")
def _copy_number(out, pos, src, start):
    """Copies the number at ``src[start:]`` up to the next ``,`` or ``]`` to ``out[pos:]``;
    returns its length. Every number orjson writes positionally fits in 23 bytes, so three
    words are copied without a branch on the length; longer ones and the buffer's end loop."""
    if start + 24 <= src.shape[0]:
        w0 = _load8(src, start)
        w1 = _load8(src, start + 8)
        w2 = _load8(src, start + 16)
        _store8(out, pos, w0)
        _store8(out, pos + 8, w1)
        _store8(out, pos + 16, w2)
        s0 = _stops(w0)
        s1 = _stops(w1)
        s2 = _stops(w2)
        if s0 != 0:
            return np.int64(_trailing_zeros(s0) >> np.uint64(3))
        if s1 != 0:
            return 8 + np.int64(_trailing_zeros(s1) >> np.uint64(3))
        if s2 != 0:
            return 16 + np.int64(_trailing_zeros(s2) >> np.uint64(3))
    j = 0
    while src[start + j] != 44 and src[start + j] != 93:
        out[pos + j] = src[start + j]
        j += 1
    return j


@numba.njit(cache=True, nogil=True)
def _assemble(
    out,
    pos,
    frame,
    lbuf,
    lstart,
    llen,
    first,
    tbuf,
    tstart,
    tlen,
    tidx,
    vals,
    vbuf,
    odd,
    xbuf,
    xstart,
    xlen,
):
    """Writes every series at ``out[pos:]``; returns the end. Whole values are written here,
    odd ones copied from the side buffer, the others taken from orjson's ``[a,b,..]`` in
    order."""
    cur = 1  # orjson's text, after its ``[``
    j = 0  # next odd value
    for i in range(llen.shape[0]):
        skip = 1 if i == 0 else 0  # the comma between two series leads the second one
        pos = _copy(out, pos, frame, skip, 11 - skip)
        pos = _copy(out, pos, lbuf, lstart[i], llen[i])
        pos = _copy(out, pos, frame, 11, 11)
        for k in range(first[i], first[i + 1]):
            t = tidx[k]
            skip = 1 if k == first[i] else 0  # the first point has no comma before it
            pos = _copy_short(out, pos, tbuf, tstart[t] + skip, tlen[t] - skip)
            x = vals[k]
            if _is_whole(x):
                pos = _write_whole(out, pos, x)
            elif j < odd.shape[0] and odd[j] == k:
                pos = _copy(out, pos, xbuf, xstart[j], xlen[j])
                j += 1
            else:
                size = _copy_number(out, pos, vbuf, cur)
                cur += size + 1
                pos += size
            out[pos] = 34  # "
            out[pos + 1] = 93  # ]
            pos += 2
        out[pos] = 93  # ]
        out[pos + 1] = 125  # }
        pos += 2
    return pos


def matrix_into(rows: Sequence[SeriesResult], lead: bytes, room: int) -> tuple[np.ndarray, int]:
    """``lead`` + ``[{"metric":..,"values":[[t,"v"],..]},..]`` as UTF-8 in a new buffer with at
    least ``room`` spare bytes after it (for the caller's tail); returns (buffer, end of text)."""
    values = [s.values for s in rows]
    counts = np.fromiter(map(len, values), dtype=np.int64, count=len(rows))
    first = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    n = int(first[-1])
    lbuf, lstart, llen = label_texts(rows)
    if n:
        # One call each (a per-series ``asarray`` costs ~0.5 µs, 0.1 s for 200 k arrays).
        ts = np.concatenate([s.timestamps for s in rows], dtype=np.int64, casting="unsafe")
        vs = np.concatenate(values, dtype=np.float64, casting="unsafe")
        tbuf, tstart, tlen, tidx = timestamp_texts(ts)
        vbuf, odd, xbuf, xstart, xlen, n_whole = value_texts(vs)
        longest = int(tlen.max())
    else:
        tbuf = np.zeros(8, dtype=np.uint8)  # writable, as ``_timestamp_texts``' buffer
        vbuf = xbuf = _NO_BYTES
        tstart = tlen = tidx = odd = xstart = xlen = np.zeros(0, dtype=np.int64)
        vs = np.zeros(0, dtype=np.float64)
        longest = n_whole = 0
    # An upper bound (a whole value has at most 16 bytes): exact sizes would cost a pass, and
    # pages never written are never touched.
    bound = len(lead) + 1 + lbuf.shape[0] + n * (longest + 2) + 16 * n_whole
    bound += vbuf.shape[0] + xbuf.shape[0]
    bound += (_FRAME_SIZE + 2) * len(rows) + 1
    out = np.empty(bound + room + _PAD, dtype=np.uint8)
    out[: len(lead)] = np.frombuffer(lead, dtype=np.uint8)
    out[len(lead)] = _OPEN
    args = (_FRAME, lbuf, lstart, llen, first, tbuf, tstart, tlen, tidx, vs, vbuf, odd, xbuf)
    args += (xstart, xlen)
    end = _assemble(out, len(lead) + 1, *args)
    out[end] = _CLOSE
    return out, end + 1


def matrix_bytes(rows: Sequence[SeriesResult], lead: bytes, tail: bytes) -> bytes:
    """``lead`` + the result array + ``tail`` as ``bytes`` (one more copy: for ``str`` callers;
    responses use ``matrix_into``)."""
    out, end = matrix_into(rows, lead, len(tail))
    out[end : end + len(tail)] = np.frombuffer(tail, dtype=np.uint8)
    return out[: end + len(tail)].tobytes()


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache) before the first request."""
    labels = (("__name__", "x"),)
    odd = SeriesResult(labels, np.arange(3, dtype=np.int64), np.array([1.5, np.nan, 1e-9]))
    matrix_bytes([odd, SeriesResult(labels, np.zeros(0, np.int64), np.zeros(0))], b"", b"")
    matrix_bytes([], b"", b"")
    _split_objects(np.frombuffer(b'[{"a":"b"}]', dtype=np.uint8), 1)  # labels that are not pairs
