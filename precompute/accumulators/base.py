"""The one contract every accumulator follows, and its versioned binary framing.

An accumulator summarises the samples of one (aggregation, key, pane or window). It is updated
from whole arrays (never a Python call per sample), merged with another of its kind, snapshotted
(``snapshot`` copies, ``take`` copies and resets), asked for statistics, and serialized with a
type code and a format version so stored windows survive upgrades.

Keyed accumulators additionally receive per-sample sub-keys as ``key_ids`` indexing a table of
key tuples (``keys``); keys are tuples of label values, never joined strings.
"""

from __future__ import annotations

import itertools
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import pyarrow as pa

MAGIC = b"TA"
_HEADER = struct.Struct("<2sBB")  # magic, type code, format version

Key = tuple[str, ...]
A = TypeVar("A", bound="Accumulator")


class Accumulator(ABC):
    type_name: ClassVar[str]
    type_code: ClassVar[int]
    version: ClassVar[int] = 1
    keyed: ClassVar[bool] = False

    @abstractmethod
    def update(
        self,
        values: np.ndarray,
        timestamps: np.ndarray,
        keys: Sequence[Key] | None = None,
        key_ids: np.ndarray | None = None,
    ) -> None:
        """Fold a batch of samples (float64 values, int64 ms timestamps) into the state."""

    @abstractmethod
    def merge(self, other: Accumulator) -> None:
        """Fold another accumulator of the same type and parameters into this one."""

    @abstractmethod
    def is_empty(self) -> bool: ...

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """The statistics this accumulator answers (``sum``, ``count``, ``quantiles``, ...)."""

    @abstractmethod
    def _payload(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def _from_payload(cls: type[A], payload: memoryview, version: int) -> A: ...

    @abstractmethod
    def empty_like(self: A) -> A:
        """A fresh accumulator with the same parameters."""

    def snapshot(self: A) -> A:
        return type(self).from_bytes(self.to_bytes())  # type: ignore[return-value]

    def take(self: A) -> A:
        """Return the current state and reset this accumulator to empty."""
        out = self.snapshot()
        self.__dict__.update(self.empty_like().__dict__)
        return out

    def query(self, statistic: str) -> Any:
        stats = self.stats()
        if statistic not in stats:
            raise KeyError(f"{self.type_name} does not answer {statistic!r}")
        return stats[statistic]

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, self.type_code, self.version) + self._payload()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Accumulator:
        from precompute.accumulators.registry import class_for_code

        view = memoryview(data)
        magic, code, version = _HEADER.unpack_from(view, 0)
        if magic != MAGIC:
            raise ValueError("not a serialized accumulator")
        klass = class_for_code(code)
        if version > klass.version:
            raise ValueError(f"{klass.type_name} format v{version} is newer than this build")
        return klass._from_payload(view[_HEADER.size :], version)

    def _check_same(self, other: Accumulator) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {other.type_name} into {self.type_name}")


# --- small framing helpers shared by the payload encoders ------------------------------------


def pack_array(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr)
    dtype = arr.dtype.str.encode()
    return struct.pack("<BQ", len(dtype), arr.shape[0]) + dtype + arr.tobytes()


def unpack_array(view: memoryview, offset: int) -> tuple[np.ndarray, int]:
    dlen, n = struct.unpack_from("<BQ", view, offset)
    offset += 9
    dtype = np.dtype(bytes(view[offset : offset + dlen]).decode())
    offset += dlen
    nbytes = n * dtype.itemsize
    arr = np.frombuffer(view[offset : offset + nbytes], dtype=dtype).copy()
    return arr, offset + nbytes


def pack_bytes(data: bytes) -> bytes:
    return struct.pack("<Q", len(data)) + data


def unpack_bytes(view: memoryview, offset: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<Q", view, offset)
    offset += 8
    return bytes(view[offset : offset + n]), offset + n


def pack_keys(keys: Sequence[Key]) -> bytes:
    """Key tuples as a block: ``u8 kind, u64 n, u32 width`` then, for tuples of one width (the
    normal case: one label set per accumulator), Arrow large-string buffers of the flattened values
    (``u64 len, int64 offsets, u64 len, utf-8 data``) — C speed for 100k keys; mixed widths fall
    back to length-prefixed values per key. No separators that label values could contain."""
    n = len(keys)
    width = len(keys[0]) if n else 0
    if n == 0 or set(map(len, keys)) == {width}:  # one C pass, not a generator
        head = struct.pack("<BQI", 1, n, width)
        if n == 0 or width == 0:
            return head
        flat = pa.array(list(itertools.chain.from_iterable(keys)), pa.large_string())
        _, offsets, data = flat.buffers()
        offsets_b = offsets.to_pybytes()[: 8 * (n * width + 1)]
        data_b = data.to_pybytes() if data is not None else b""
        return head + pack_bytes(offsets_b) + pack_bytes(data_b)
    parts = [struct.pack("<BQI", 2, n, 0)]
    for key in keys:
        parts.append(struct.pack("<I", len(key)))
        for value in key:
            raw = value.encode()
            parts.append(struct.pack("<I", len(raw)) + raw)
    return b"".join(parts)


def unpack_keys(view: memoryview, offset: int) -> tuple[list[Key], int]:
    kind, n, width = struct.unpack_from("<BQI", view, offset)
    offset += 13
    if kind == 1:
        if n == 0 or width == 0:
            return [()] * n, offset
        offsets_b, offset = unpack_bytes(view, offset)
        data_b, offset = unpack_bytes(view, offset)
        flat = pa.LargeStringArray.from_buffers(
            n * width, pa.py_buffer(offsets_b), pa.py_buffer(data_b)
        ).to_pylist()
        return list(zip(*[iter(flat)] * width, strict=True)), offset
    keys: list[Key] = []
    for _ in range(n):
        (w,) = struct.unpack_from("<I", view, offset)
        offset += 4
        parts = []
        for _ in range(w):
            (length,) = struct.unpack_from("<I", view, offset)
            offset += 4
            parts.append(bytes(view[offset : offset + length]).decode())
            offset += length
        keys.append(tuple(parts))
    return keys, offset
