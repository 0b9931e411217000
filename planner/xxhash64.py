"""XXH64 (seed 0) in pure Python, for Prometheus' ``labels.Hash()`` where results depend on it.

Only ``limit_ratio`` needs it (once per series, never per sample), so no C binding is required.
"""

from __future__ import annotations

import struct

from storage.model import Labels

_M = (1 << 64) - 1
P1, P2, P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
P4, P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * P2) & _M, 31) * P1) & _M


def _merge(acc: int, val: int) -> int:
    return (((acc ^ _round(0, val)) * P1) + P4) & _M


def xxh64(data: bytes) -> int:
    n, i = len(data), 0
    if n >= 32:
        v = [(P1 + P2) & _M, P2, 0, (-P1) & _M]
        while i + 32 <= n:
            lanes = struct.unpack_from("<4Q", data, i)
            v = [_round(a, b) for a, b in zip(v, lanes, strict=True)]
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
        for lane in v:
            h = _merge(h, lane)
    else:
        h = P5
    h = (h + n) & _M
    while i + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        h = (_rotl(h, 27) * P1 + P4) & _M
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & _M
        h = (_rotl(h, 23) * P2 + P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * P5) & _M
        h = (_rotl(h, 11) * P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * P2) & _M
    h ^= h >> 29
    h = (h * P3) & _M
    return h ^ (h >> 32)


def labels_hash(labels: Labels) -> int:
    """Prometheus ``labels.Labels.Hash()``: XXH64 of ``name 0xff value 0xff ...``."""
    return xxh64(b"".join(k.encode() + b"\xff" + v.encode() + b"\xff" for k, v in labels))
