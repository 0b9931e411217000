"""XXH64 (xxHash, 64-bit; Yann Collet's specification, version 0.1.1 of the format) compiled, for
the sketch store's log frames.

A per-series window batch record is ~0.3 MB at every slide. ``zlib.crc32`` (zlib 1.2.13 here,
no carry-less multiply) checksums it at ~3 GB/s; this loop of four independent multiply-rotate
lanes runs at ~8 GB/s on the same machine. Frames checked this way are flagged in their length
word (``storage/sketch_store.py``), so logs of CRC-32 frames still read.
"""

from __future__ import annotations

import sys

import numba
import numpy as np

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always")
def _round(acc, lane):
    return _rotl(acc + lane * _P2, 31) * _P1


@numba.njit(inline="always")
def _merge(acc, lane):
    return (acc ^ _round(np.uint64(0), lane)) * _P1 + _P4


@numba.njit(inline="always")
def _le(buf, i, width):
    """``width`` bytes of ``buf`` from ``i`` as a little-endian unsigned number."""
    k = np.uint64(0)
    for b in range(width):
        k |= np.uint64(buf[i + b]) << np.uint64(8 * b)
    return k


@numba.njit(**_JIT)
def _xxh64(buf, seed):
    n = buf.shape[0]
    i = 0
    if n >= 32:
        stripes = n // 32
        words = buf[: stripes * 32].view(np.uint64)  # little-endian host (the log's order)
        v1, v2, v3, v4 = seed + _P1 + _P2, seed + _P2, seed, seed - _P1
        for j in range(0, 4 * stripes, 4):
            v1 = _round(v1, words[j])
            v2 = _round(v2, words[j + 1])
            v3 = _round(v3, words[j + 2])
            v4 = _round(v4, words[j + 3])
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
        i = stripes * 32
    else:
        h = seed + _P5
    h += np.uint64(n)
    while i + 8 <= n:
        h = _rotl(h ^ _round(np.uint64(0), _le(buf, i, 8)), 27) * _P1 + _P4
        i += 8
    if i + 4 <= n:
        h = _rotl(h ^ (_le(buf, i, 4) * _P1), 23) * _P2 + _P3
        i += 4
    while i < n:
        h = _rotl(h ^ (np.uint64(buf[i]) * _P5), 11) * _P1
        i += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    return h ^ (h >> np.uint64(32))


def xxh64(data: np.ndarray | bytes | memoryview, seed: int = 0) -> int:
    """XXH64 of ``data`` (a contiguous uint8 array, or any bytes-like object)."""
    if sys.byteorder != "little":  # the stripe loop reads native words: refuse, never misread
        raise NotImplementedError("XXH64 frames are read and written on little-endian hosts")
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    return int(_xxh64(buf, np.uint64(seed)))


def frame_check(data: np.ndarray | bytes | memoryview) -> int:
    """The 32-bit check a log frame stores: the low half of XXH64 with seed 0."""
    return xxh64(data) & 0xFFFF_FFFF
