"""Prometheus' label-set hash (``labels.Labels.Hash``), needed by ``limit_ratio``.

Prometheus' default build (``stringlabels``) hashes the encoded label data with XXH64 (seed 0):
for each label, sorted by name, ``size(name) name size(value) value`` where a size below 255 is
one byte and larger sizes are ``0xff`` plus 3 little-endian bytes (``encodeSize`` in
``model/labels/labels_stringlabels.go``). Computed once per series, so plain Python is fine.
"""

from __future__ import annotations

import numpy as np

from storage.model import Labels

_M64 = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data`` (reference algorithm)."""
    n = len(data)
    i = 0
    if n >= 32:
        v = [
            (seed + _P1 + _P2) & _M64,
            (seed + _P2) & _M64,
            seed & _M64,
            (seed - _P1) & _M64,
        ]
        while i + 32 <= n:
            for k in range(4):
                v[k] = _round(v[k], int.from_bytes(data[i + 8 * k : i + 8 * k + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M64
        for lane in v:
            h = _merge(h, lane)
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i : i + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


def _size(n: int) -> bytes:
    return bytes([n]) if n < 255 else bytes([255]) + n.to_bytes(3, "little")


def encode_labels(labels: Labels) -> bytes:
    """The ``stringlabels`` byte encoding of a label set."""
    out = bytearray()
    for name, value in sorted(labels):
        for s in (name.encode(), value.encode()):
            out += _size(len(s))
            out += s
    return bytes(out)


def label_hash(labels: Labels) -> int:
    return xxh64(encode_labels(labels))


def label_hashes(series: list[Labels]) -> np.ndarray:
    """uint64 hash per series, the ``hashes`` input of ``aggregation.limit_ratio``."""
    return np.array([label_hash(lbls) for lbls in series], dtype=np.uint64)
