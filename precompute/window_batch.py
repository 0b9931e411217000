"""Closed windows emitted columnar: one record per (aggregation, window-close event).

Per-series grouping of a columnar aggregation (moments family, Increase) closes thousands of
windows at each slide. Wrapping every one in a ``PrecomputedOutput`` + accumulator object and a
store entry made the engine spend Python work per sample. A ``WindowBatch`` instead carries the
group keys and the state columns of every group whose window ``(start, end]`` closed together;
per-group accumulators are built only when something reads them (``pairs()``), e.g. the sketch
store's entry-based read API.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from precompute.accumulators.base import Accumulator, pack_keys, unpack_keys
from precompute.accumulators.increase import _COLS as COUNTER_COLS
from precompute.accumulators.increase import _DTYPES as COUNTER_DTYPES
from precompute.accumulators.increase import IncreaseAccumulator
from precompute.output import PrecomputedOutput

Key = tuple[str, ...]
MOMENT_COLS = ("sum", "count", "min", "max")
_MOMENT_DTYPES = (np.float64, np.int64, np.float64, np.float64)
INCREASE = "Increase"
_HEAD = struct.Struct("<BIqqq")  # format version, aggregation id, start, end, max_buffer
# 1: keys inline; 2: key ids into a store key table; 3: key ids that are one run first..first+n-1
_VERSION = 3


def columns_of(kind: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    if kind == INCREASE:
        return COUNTER_COLS, COUNTER_DTYPES
    return MOMENT_COLS, _MOMENT_DTYPES


class KeyRows(Sequence[Key]):
    """Keys named by row ids into a worker's append-only key table, looked up only when read:
    emitting a batch of per-series windows costs no Python per window."""

    def __init__(self, table: list[Key], rows: np.ndarray) -> None:
        self.table, self.rows = table, rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.table[g] for g in self.rows[i].tolist()]
        return self.table[int(self.rows[i])]

    def __iter__(self) -> Iterator[Key]:
        table = self.table
        return iter([table[g] for g in self.rows.tolist()])


@dataclass(eq=False)
class WindowBatch:
    """Windows ``(window_start, window_end]`` of one aggregation, one row per group key.

    ``kind`` is the accumulator type name (``Sum``, ``Avg``, …, ``Increase``); ``columns`` holds
    the state named by ``columns_of(kind)``, row-aligned with ``keys``.
    """

    aggregation_id: int
    kind: str
    window_start: int
    window_end: int
    keys: Sequence[Key]  # a list, or KeyRows into the emitting worker's key table
    columns: dict[str, np.ndarray]
    max_buffer: int = 0
    _pairs: list[tuple[PrecomputedOutput, Accumulator]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def accumulators(self) -> list[Accumulator]:
        names, _ = columns_of(self.kind)
        cols = [self.columns[n].tolist() for n in names]
        if self.kind == INCREASE:
            wrap, mb = IncreaseAccumulator.from_row, self.max_buffer
            return [wrap(row, mb) for row in zip(*cols, strict=True)]
        from precompute.accumulators.registry import BY_NAME

        make = BY_NAME[self.kind].from_moments  # type: ignore[attr-defined]
        return [make(s, c, lo, hi) for s, c, lo, hi in zip(*cols, strict=True)]

    def pairs(self) -> list[tuple[PrecomputedOutput, Accumulator]]:
        """The per-group ``(PrecomputedOutput, accumulator)`` view (built once, then cached)."""
        if self._pairs is None:
            agg, start, end = self.aggregation_id, self.window_start, self.window_end
            self._pairs = [
                (PrecomputedOutput(agg, key, start, end), acc)
                for key, acc in zip(self.keys, self.accumulators(), strict=True)
            ]
        return self._pairs

    def __getstate__(self) -> dict[str, Any]:
        # Crossing a process boundary: ship the columns and this batch's keys only, not the
        # lazily built objects nor the worker's whole key table.
        return {**self.__dict__, "keys": list(self.keys), "_pairs": None}

    # --- serialization (one framed store record per batch) ---------------------------------

    def to_bytes(self, key_ids: np.ndarray | None = None) -> bytes:
        """Format 1 carries the keys; format 2 carries ``key_ids`` into a key table the reader
        supplies (the sketch store persists one per aggregation)."""
        return b"".join(self.to_buffers(key_ids))

    def to_buffers(self, key_ids: np.ndarray | None = None) -> list[bytes | memoryview]:
        """``to_bytes`` as a list of pieces whose concatenation is the record: the id and state
        columns are zero-copy views of the arrays, so a store can checksum and ``writev`` them
        without building the record (per-series batches are ~0.5 MB per window close)."""
        kind = self.kind.encode()
        version = 1 if key_ids is None else 3 if _is_run(key_ids) else 2
        head = _HEAD.pack(
            version, self.aggregation_id, self.window_start, self.window_end, self.max_buffer
        )
        out: list[bytes | memoryview] = [head + struct.pack("<H", len(kind)) + kind]
        if key_ids is None:
            out.append(pack_keys(list(self.keys)))
        elif version == 3:  # per-series batches name every group in table order: two numbers
            out.append(struct.pack("<Qq", key_ids.shape[0], int(key_ids[0])))
        else:
            out.append(struct.pack("<Q", key_ids.shape[0]))
            out.append(_view(key_ids, np.int64))
        names, dtypes = columns_of(self.kind)
        out += [_view(self.columns[n], d) for n, d in zip(names, dtypes, strict=True)]
        return out

    @classmethod
    def from_bytes(
        cls, data: bytes | memoryview, key_table: list[Key] | None = None
    ) -> WindowBatch:
        view = memoryview(data)
        version, agg, start, end, max_buffer = _HEAD.unpack_from(view, 0)
        if version > _VERSION:
            raise ValueError(f"window batch format {version} is newer than this build")
        offset = _HEAD.size
        (klen,) = struct.unpack_from("<H", view, offset)
        offset += 2
        kind = bytes(view[offset : offset + klen]).decode()
        offset += klen
        keys: Sequence[Key]
        if version == 1:
            keys, offset = unpack_keys(view, offset)
        elif version == 3:
            if key_table is None:
                raise ValueError("a window batch with key ids needs its key table")
            n, first = struct.unpack_from("<Qq", view, offset)
            keys, offset = (
                KeyRows(key_table, np.arange(first, first + n, dtype=np.int64)),
                offset + 16,
            )
        else:
            if key_table is None:
                raise ValueError("a window batch with key ids needs its key table")
            (n,) = struct.unpack_from("<Q", view, offset)
            ids = np.frombuffer(view[offset + 8 : offset + 8 + 8 * n], dtype=np.int64).copy()
            keys, offset = KeyRows(key_table, ids), offset + 8 + 8 * n
        names, dtypes = columns_of(kind)
        columns = {}
        for name, dtype in zip(names, dtypes, strict=True):
            width = np.dtype(dtype).itemsize * len(keys)
            columns[name] = np.frombuffer(view[offset : offset + width], dtype=dtype).copy()
            offset += width
        return cls(agg, kind, start, end, keys, columns, max_buffer)


def _is_run(ids: np.ndarray) -> bool:
    """Whether ``ids`` are consecutive ascending integers (checked in O(n) without Python)."""
    n = ids.shape[0]
    if n == 0 or int(ids[-1]) - int(ids[0]) != n - 1:
        return False
    return bool(np.all(np.diff(ids) == 1))


def _view(array: np.ndarray, dtype: Any) -> memoryview:
    """The array's bytes as ``dtype``, little-endian and contiguous; no copy when it already is."""
    flat = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return memoryview(flat).cast("B")


def expand(emits: list[Any]) -> list[tuple[PrecomputedOutput, Accumulator]]:
    """Emits with every ``WindowBatch`` replaced by its per-group pairs (tests, simple sinks)."""
    out: list[tuple[PrecomputedOutput, Accumulator]] = []
    for e in emits:
        if isinstance(e, WindowBatch):
            out += e.pairs()
        else:
            out.append(e)
    return out


def count_windows(emits: list[Any]) -> int:
    return sum(len(e) if isinstance(e, WindowBatch) else 1 for e in emits)
