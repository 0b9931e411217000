"""Bulk label decoding for remote-write series seen for the first time.

Creating series dominates the first round of a Prometheus stream. Decoding each label string and
checking each label set in Python costs microseconds per series, so the compiled part does both in
bulk: ``_status`` marks series whose labels are already canonical (names non-empty, strictly
increasing bytewise, values non-empty, a ``__name__``), and ``_gather`` concatenates all their
strings, separated by the byte 0xFF that valid UTF-8 never contains, so Python decodes every
string of the request with one ``bytes.decode`` and one ``str.split``. Anything unusual (unsorted,
empty values, invalid UTF-8...) goes through the careful per-series path, which also produces the
error messages.
"""

from __future__ import annotations

import re
import sys

import numba
import numpy as np

from server.rw_wire import WireLayout

_NAME = np.frombuffer(b"__name__", dtype=np.uint8)
_SEP = "\udcff"  # how surrogateescape decodes the separator byte 0xFF
_OTHER_ESCAPES = re.compile("[\udc80-\udcfe]")


@numba.njit(cache=True, nogil=True)
def _cmp(buf, alo, ahi, blo, bhi):  # pragma: no cover - compiled
    """Bytewise comparison of buf[alo:ahi] and buf[blo:bhi] (UTF-8 order = code point order)."""
    n = min(ahi - alo, bhi - blo)
    for k in range(n):
        x = buf[alo + k]
        y = buf[blo + k]
        if x != y:
            return -1 if x < y else 1
    la = ahi - alo
    lb = bhi - blo
    return 0 if la == lb else (-1 if la < lb else 1)


@numba.njit(cache=True, nogil=True)
def _status(buf, lab_first, lab_off, idx, name, out):  # pragma: no cover - compiled
    """out[k] = 1 when series idx[k] has canonical labels (fast path), else 0."""
    for k in range(idx.shape[0]):
        i = idx[k]
        ok = True
        has_name = False
        for j in range(lab_first[i], lab_first[i + 1]):
            nlo = lab_off[4 * j]
            nhi = lab_off[4 * j + 1]
            vlo = lab_off[4 * j + 2]
            vhi = lab_off[4 * j + 3]
            if nhi == nlo or vhi == vlo:
                ok = False
                break
            if (
                j > lab_first[i]
                and _cmp(buf, lab_off[4 * j - 4], lab_off[4 * j - 3], nlo, nhi) >= 0
            ):
                ok = False
                break
            if nhi - nlo == 8:
                same = True
                for c in range(8):
                    if buf[nlo + c] != name[c]:
                        same = False
                        break
                has_name = has_name or same
        out[k] = 1 if ok and has_name else 0


@numba.njit(cache=True, nogil=True)
def _gather(buf, lab_first, lab_off, idx):  # pragma: no cover - compiled
    """Every name and value of the series idx, each followed by a 0xFF byte; and whether all
    string bytes were ASCII (then no UTF-8 validation is needed)."""
    size = 0
    for k in range(idx.shape[0]):
        i = idx[k]
        for j in range(lab_first[i], lab_first[i + 1]):
            size += (
                lab_off[4 * j + 1] - lab_off[4 * j] + lab_off[4 * j + 3] - lab_off[4 * j + 2] + 2
            )
    out = np.empty(size, dtype=np.uint8)
    ascii_only = True
    p = 0
    for k in range(idx.shape[0]):
        i = idx[k]
        for j in range(lab_first[i], lab_first[i + 1]):
            for part in range(2):
                lo = lab_off[4 * j + 2 * part]
                hi = lab_off[4 * j + 2 * part + 1]
                for c in range(lo, hi):
                    b = buf[c]
                    ascii_only = ascii_only and b < 0x80
                    out[p] = b
                    p += 1
                out[p] = 0xFF
                p += 1
    return out, ascii_only


def fast_label_sets(
    raw: bytes, layout: WireLayout, idx: np.ndarray
) -> list[tuple[tuple[str, str], ...] | None]:
    """Label tuples of series ``idx`` that are canonical and valid UTF-8; ``None`` for the rest."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ok = np.empty(idx.shape[0], dtype=np.int8)
    _status(buf, layout.lab_first, layout.lab_off, idx, _NAME, ok)
    good = idx[ok == 1]
    result: list[tuple[tuple[str, str], ...] | None] = [None] * idx.shape[0]
    if good.size == 0:
        return result
    gathered, ascii_only = _gather(buf, layout.lab_first, layout.lab_off, good)
    counts = (layout.lab_first[good + 1] - layout.lab_first[good]) * 2
    if ascii_only:  # the common case: latin-1 decoding is a copy, and nothing can be invalid
        parts = gathered.tobytes().decode("latin-1").split("\xff")
    else:
        decoded = gathered.tobytes().decode("utf-8", "surrogateescape")
        parts = decoded.split(_SEP)
        if len(parts) != int(counts.sum()) + 1 or _OTHER_ESCAPES.search(decoded):
            return result  # some string is not valid UTF-8: the careful path reports it
    # All (name, value) pairs in one C-level pass; names interned (few distinct, many series).
    pairs = list(zip(map(sys.intern, parts[0:-1:2]), parts[1::2], strict=True))
    ends = np.cumsum(counts // 2).tolist()
    starts = [0, *ends[:-1]]
    sets = [tuple(pairs[a:b]) for a, b in zip(starts, ends, strict=True)]
    if good.size == idx.size:
        return sets  # type: ignore[return-value]  # the common case: every series was canonical
    for pos, labels in zip(np.flatnonzero(ok == 1).tolist(), sets, strict=True):
        result[pos] = labels
    return result
