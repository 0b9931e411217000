"""Stable ids for remote write 2.0 symbols, and series cache keys built from them.

A 2.0 body's label references index its own ``symbols`` table, which differs from request to
request, so neither the references nor their bytes can key a cache. Each distinct symbol string
gets an id that stays the same across requests, and a series' key is the sequence of its
references' ids: one dict lookup per *symbol* (a request has far fewer symbols than label
strings: names and common values repeat), then numpy gathers the keys of all series at once.

Ids are never reused within the process: the table is bounded and cleared when full, but ids come
from one process-wide counter, so a key once handed out (the store keeps keys as ``series_keys``
aliases, in memory) can never come to mean another label set, not even through another decoder
over the same store. Each id is encoded as 8 big-endian bytes whose first byte is 0xFF, so every
key starts with 0xFF, which a 1.0 raw key (a protobuf tag for field 1) never does, and whose last
byte is 0x01: a key never ends in a NUL byte, so keys can be padded with NULs into one fixed-width
numpy ``S`` array, whose ``tolist()`` strips the padding and makes all the ``bytes`` objects in
one C loop (several times cheaper than slicing a buffer once per series).
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

_NEXT_ID = itertools.count()  # process-wide: see the module docstring
_MARK = np.uint64(0xFF << 56 | 0x01)
_MAX_PAD = 4
"""Pad to the widest series only while that costs at most this many times the exact size."""


class SymbolIds:
    """Bytes → id, consistent across requests and threads (bounded; ids never reused)."""

    def __init__(self, max_symbols: int = 262_144) -> None:
        self._ids: dict[bytes, int] = {}
        self._max = max_symbols
        self._lock = threading.Lock()

    def codes(self, symbols: list[bytes]) -> np.ndarray:
        """Each symbol's id as 8 key bytes (0xFF, the id big-endian, 0x01) in a uint64 array."""
        ids = list(map(self._ids.get, symbols, itertools.repeat(-1)))
        if -1 in ids:
            self._assign(symbols, ids)
        # Byte-swapped into a native uint64 array, so that its memory holds the big-endian bytes
        # and the gathers below are plain native-integer copies.
        return (
            ((np.array(ids, dtype=np.uint64) << np.uint64(8)) | _MARK).astype(">u8").view(np.uint64)
        )

    def _assign(self, symbols: list[bytes], ids: list[int]) -> None:
        with self._lock:
            table = self._ids
            if len(table) + ids.count(-1) > self._max:
                table.clear()  # bounded memory: later requests get fresh ids (never old ones)
            for k, known in enumerate(ids):
                if known < 0:
                    got = table.get(symbols[k])
                    if got is None:
                        got = table[symbols[k]] = next(_NEXT_ID)
                    ids[k] = got


def series_keys(codes: np.ndarray, refs: np.ndarray, ref_first: np.ndarray) -> list[bytes]:
    """Series i's key: the codes of ``refs[ref_first[i]:ref_first[i+1]]``, concatenated."""
    ns = ref_first.shape[0] - 1
    counts = np.diff(ref_first)
    width = int(counts.max()) if ns else 0
    if width == 0:
        return [b""] * ns
    if width * ns > _MAX_PAD * refs.shape[0]:  # very uneven label counts: slice instead
        blob = codes[refs].tobytes()
        bounds = (ref_first * 8).tolist()
        return [blob[a:b] for a, b in itertools.pairwise(bounds)]
    gathered = codes[refs]
    if gathered.shape[0] != ns * width:  # uneven label counts: NUL-pad to the widest series
        padded = np.zeros(ns * width, dtype=np.uint64)
        padded[
            np.arange(refs.shape[0]) + np.repeat(np.arange(ns) * width - ref_first[:-1], counts)
        ] = gathered
        gathered = padded
    return gathered.view(f"S{8 * width}").tolist()
