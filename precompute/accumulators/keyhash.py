"""Deterministic 64-bit hashes of key tuples, identical in every process and across restarts.

Python's ``hash()`` is salted per process, so sketches built by worker processes or restored from
disk would disagree; blake2b over the length-prefixed values does not. Row hashes use the
Kirsch–Mitzenmacher double-hashing scheme ``h1 + r·h2`` (vectorized over keys and rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

Key = tuple[str, ...]


@lru_cache(maxsize=1 << 18)
def key_hash128(key: Key) -> tuple[int, int]:
    h = hashlib.blake2b(digest_size=16)
    for value in key:
        raw = value.encode()
        h.update(len(raw).to_bytes(4, "little"))
        h.update(raw)
    digest = h.digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1


def row_columns(keys: Sequence[Key], rows: int, cols: int) -> np.ndarray:
    """Column of each key in each row: an int64 array of shape (rows, len(keys))."""
    pairs = np.array([key_hash128(k) for k in keys], dtype=np.uint64).reshape(-1, 2)
    r = np.arange(rows, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        mixed = pairs[:, 0][None, :] + r * pairs[:, 1][None, :]
    return (mixed % np.uint64(cols)).astype(np.int64)
