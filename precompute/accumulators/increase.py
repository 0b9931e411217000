"""Counter state for ``rate``/``increase``: Increase (one series) and MultipleIncrease (keyed).

Per key the state is what Prometheus' ``extrapolatedRate`` (promql/functions.go, v3.x) reads from
the samples of a range: sample count, first and last sample (time and value), and the
counter-reset correction (the sum of the value before each reset), so that after merging
consecutive panes ``increase = last − first + resets`` and the extrapolation are exactly what
Prometheus computes over the same samples.

Samples inside one open pane may arrive out of order across batches, so new samples are buffered
and folded in time order lazily (on snapshot, merge, statistics, or when the buffer passes
``max_buffer``). A sample older than the folded state's last sample cannot be placed any more; it is
counted in ``out_of_order`` instead of corrupting the reset correction.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from precompute.accumulators.base import _HEADER as _ACC_HEADER
from precompute.accumulators.base import (
    MAGIC,
    Accumulator,
    Key,
    pack_array,
    pack_keys,
    unpack_array,
    unpack_keys,
)

# The state kernels live in counter_state.py; imported here for this module and re-exported
# for the modules and tests that import them from here.
from precompute.accumulators.counter_state import (  # noqa: F401
    _COLS,
    _DTYPES,
    CounterColumns,
    _fold_general,
    _fold_one_each,
    _prefix,
    fold_sorted,
    merge_pair,
    merge_rows,
    merge_stack,
)
from precompute.accumulators.keyed import KeyInterner


def extrapolated_increase(
    n: int,
    first_t: int,
    first_v: float,
    last_t: int,
    last_v: float,
    resets: float,
    range_start_ms: int,
    range_end_ms: int,
    is_rate: bool = False,
) -> float | None:
    """Prometheus' ``extrapolatedRate`` for a counter (promql/functions.go, v3.x), from state.

    ``range_start_ms``/``range_end_ms`` are the query's ``t − range`` and ``t``. Returns None where
    Prometheus returns no sample (fewer than two samples).
    """
    if n < 2:
        return None
    result = last_v - first_v + resets
    duration_to_start = (first_t - range_start_ms) / 1000
    duration_to_end = (range_end_ms - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    avg_between = sampled / (n - 1)
    threshold = avg_between * 1.1
    if duration_to_start >= threshold:
        duration_to_start = avg_between / 2
    if result > 0 and first_v >= 0:
        duration_to_zero = sampled * (first_v / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    if duration_to_end >= threshold:
        duration_to_end = avg_between / 2
    factor = (sampled + duration_to_start + duration_to_end) / sampled
    if is_rate:
        factor /= (range_end_ms - range_start_ms) / 1000
    return result * factor


def _array_pieces(arr: np.ndarray) -> list[bytes | memoryview]:
    """``pack_array(arr)`` as a prefix and a view of the array's bytes (no copy if contiguous)."""
    arr = np.ascontiguousarray(arr)
    dtype = arr.dtype.str.encode()
    head = struct.pack("<BQ", len(dtype), arr.shape[0]) + dtype
    return [head, memoryview(arr).cast("B")] if arr.shape[0] else [head]


# Per worker key table (append-only): its packed prefix, reused while the prefix length is the
# same — every window of a keyed aggregation over a stable series set writes the same key block.
_PACKED: dict[int, tuple[list, int, bytes]] = {}


def _packed_prefix(table: list, n: int) -> bytes:
    hit = _PACKED.get(id(table))
    if hit is not None and hit[0] is table and hit[1] == n:
        return hit[2]
    packed = pack_keys(table[:n])
    if len(_PACKED) > 64:  # tables of removed aggregations: do not keep them forever
        _PACKED.clear()
    _PACKED[id(table)] = (table, n, packed)  # holds the table: its id cannot be reused
    return packed


class _CounterBase(Accumulator):
    """Shared buffer-and-fold machinery; ``_keys`` is None for the single-series Increase."""

    def __init__(self, max_buffer: int = 10_000) -> None:
        self.max_buffer = max_buffer
        self.cols = CounterColumns.zeros(0 if self.keyed else 1)
        self.interner = KeyInterner() if self.keyed else None
        self._buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self.out_of_order = 0

    def _local_ids(self, keys: Sequence[Key] | None, key_ids: np.ndarray | None, n: int):
        if not self.keyed:
            return np.zeros(n, dtype=np.int64)
        assert keys is not None and key_ids is not None
        return self.interner.rows_from_table(keys, key_ids)

    @property
    def _keys(self) -> list[Key]:
        return self.interner.keys if self.interner is not None else []

    def update(self, values, timestamps, keys=None, key_ids=None) -> None:
        n = int(values.shape[0])
        if n == 0:
            return
        kid = self._local_ids(keys, key_ids, n)
        self._buf.append((kid, np.asarray(timestamps, np.int64), np.asarray(values, np.float64)))
        self._buffered += n
        # The bound is per key: a keyed state over 100k series buffers up to 100k × max_buffer.
        if self._buffered > self.max_buffer * max(1, len(self._keys)):
            self._fold()

    def _fold(self) -> None:
        if not self._buf:
            return
        self.cols.grow(len(self._keys))
        if len(self._buf) == 1:  # one batch since the last fold (the usual case): no copy
            kid, t, v = self._buf[0]
        else:
            kid, t, v = (np.concatenate(parts) for parts in zip(*self._buf, strict=True))
        self._buf, self._buffered = [], 0
        self.out_of_order += fold_sorted(self.cols, kid, t, v)

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, _CounterBase)
        self._fold()
        other._fold()
        if self.keyed:
            n = other.cols.n.shape[0]
            fresh = not self._keys or not bool((self.cols.n > 0).any())
            rows = self.interner.rows_from(other.interner, n)
            self.cols.grow(len(self._keys))
            if fresh and np.array_equal(rows, np.arange(n)):  # merging into an empty window
                for name in _COLS:
                    getattr(self.cols, name)[:n] = getattr(other.cols, name)
                self.out_of_order += other.out_of_order
                return
        else:
            rows = np.zeros(1, dtype=np.int64)
        merge_rows(self.cols, rows, other.cols)
        self.out_of_order += other.out_of_order

    @classmethod
    def merged_panes(cls, parts: Sequence[Accumulator]) -> Accumulator | None:
        """A window's state from its panes (time order, disjoint, same worker key table): one
        ``merge_pair`` chain over whole-prefix views, results copied once — what folding
        ``merge`` over the panes into an empty accumulator gives, without writing every step
        back. None (nothing changed) when the panes are not all of that shape."""
        table = cls.table_of(parts)
        if table is None:
            return None
        for p in parts:
            p._fold()  # type: ignore[attr-defined]
        n = max(p.cols.n.shape[0] for p in parts)  # type: ignore[attr-defined]
        cols = [_prefix(p.cols, n) for p in parts]  # type: ignore[attr-defined]
        merged = cols[0]
        for later in cols[1:]:
            if bool(((later.n > 0) & (merged.n > 0) & (later.first_t < merged.first_t)).any()):
                return None  # not in time order: the general merge orders each row
            merged = merge_pair(merged, later)
        # The chain's result may alias pane columns (rows no later pane changed); panes live on.
        return cls.from_table_columns(table, merged, parts)

    @classmethod
    def from_table_columns(
        cls, table: list[Key], merged: CounterColumns, parts: Sequence[Accumulator]
    ) -> Accumulator:
        """A window accumulator over rows of the worker key table ``table`` holding a copy of
        ``merged`` (the merge of the window's panes ``parts``)."""
        out = cls(parts[0].max_buffer)  # type: ignore[attr-defined]
        out.interner.table = table
        out.cols = CounterColumns(*(np.array(getattr(merged, c), copy=True) for c in _COLS))
        out.out_of_order = sum(p.out_of_order for p in parts)  # type: ignore[attr-defined]
        return out

    @classmethod
    def table_of(cls, parts: Sequence[Accumulator]) -> list[Key] | None:
        """The worker key table all ``parts`` index in table mode, or None."""
        if not cls.keyed or not parts:
            return None
        table = getattr(parts[0].interner, "table", None)  # type: ignore[attr-defined]
        if table is None or any(
            type(p) is not cls or p.interner.table is not table  # type: ignore[attr-defined]
            for p in parts
        ):
            return None
        return table

    def _present(self) -> np.ndarray:
        """Rows holding data (all rows for the single-series Increase)."""
        if not self.keyed:
            return np.arange(self.cols.n.shape[0])
        return np.flatnonzero(self.cols.n > 0)

    def is_empty(self) -> bool:
        return self._buffered == 0 and not bool((self.cols.n > 0).any())

    def _payload(self) -> bytes:
        return b"".join(self._payload_pieces())

    def to_bytes(self) -> bytes:
        # One copy of a keyed window's state (100k keys: ~5 MB) instead of gather, ``tobytes``,
        # join and header concatenation — the same bytes as ``Accumulator.to_bytes``.
        if not self.keyed:  # one row: Increase's own cheap payload
            return super().to_bytes()
        return b"".join(self.to_pieces())

    def to_pieces(self) -> list[bytes | memoryview]:
        """``to_bytes()`` as pieces whose concatenation it is, the columns as zero-copy views:
        a store can checksum and ``writev`` a keyed window without building its bytes. The
        views alias this accumulator's state: use them before changing it."""
        return [_ACC_HEADER.pack(MAGIC, self.type_code, self.version), *self._payload_pieces()]

    def _payload_pieces(self) -> list[bytes | memoryview]:
        """The payload as pieces: header fields, the key block, and per column ``pack_array``'s
        prefix followed by a zero-copy view of the column (a prefix view when every row of the
        table holds data, the common case for a stable series set)."""
        self._fold()
        rows = self._present()
        keys: list[tuple[str, ...]] = []
        n = rows.shape[0]
        dense = bool(n) and int(rows[-1]) == n - 1  # rows are sorted and distinct
        if self.keyed:
            table = self._keys
            keys = table[:n] if dense else [table[i] for i in rows.tolist()]
        if keys and dense and self.interner.table is not None:
            packed = _packed_prefix(self.interner.table, len(keys))
        else:
            packed = pack_keys(keys)
        parts: list[bytes | memoryview] = [
            struct.pack("<qq", self.max_buffer, self.out_of_order),
            packed,
        ]
        for name in _COLS:
            col = getattr(self.cols, name)
            col = col[:n] if dense else col[rows]
            parts += _array_pieces(col)
        return parts

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int):
        max_buffer, ooo = struct.unpack_from("<qq", payload, 0)
        acc = cls(max_buffer)
        acc.out_of_order = ooo
        keys, offset = unpack_keys(payload, 16)
        acc.interner = KeyInterner(keys) if cls.keyed else None
        arrays = []
        for _ in _COLS:
            arr, offset = unpack_array(payload, offset)
            arrays.append(arr)
        acc.cols = CounterColumns(*arrays)
        return acc

    def empty_like(self):
        return type(self)(self.max_buffer)

    def _row_stats(self, i: int) -> dict[str, Any]:
        c = self.cols
        n = int(c.n[i])
        return {
            "count": n,
            "increase": float(c.last_v[i] - c.first_v[i] + c.resets[i]) if n else math.nan,
            "first_t": int(c.first_t[i]),
            "first_v": float(c.first_v[i]),
            "last_t": int(c.last_t[i]),
            "last_v": float(c.last_v[i]),
            "resets": float(c.resets[i]),
        }


_EMPTY_KEYS = pack_keys([])
_ROW_PREFIX = [pack_array(np.zeros(1, dtype=d))[:-8] for d in _DTYPES]
_ROW_FORMAT = [struct.Struct("<q" if d is np.int64 else "<d") for d in _DTYPES]


class IncreaseAccumulator(_CounterBase):
    type_name = "Increase"
    type_code = 7

    @classmethod
    def from_row(cls, row: tuple, max_buffer: int) -> IncreaseAccumulator:
        """Wrap one state row ``(n, first_t, first_v, last_t, last_v, resets)`` cheaply: the
        columns are only built if the accumulator is used beyond being stored."""
        acc = cls.__new__(cls)
        acc.max_buffer, acc._cols, acc._row, acc.interner = max_buffer, None, row, None
        acc._buf, acc._buffered, acc.out_of_order = [], 0, 0
        return acc

    @property
    def cols(self) -> CounterColumns:
        if self._cols is None:
            self._cols = CounterColumns(
                *(np.array([v], dtype=d) for v, d in zip(self._row, _DTYPES, strict=True))
            )
        return self._cols

    @cols.setter
    def cols(self, value: CounterColumns) -> None:
        self._cols = value

    def _payload(self) -> bytes:
        if self._cols is not None or self._buffered:
            return super()._payload()
        # Same bytes as the generic path, without building six one-element arrays.
        return (
            struct.pack("<qq", self.max_buffer, self.out_of_order)
            + _EMPTY_KEYS
            + b"".join(_ROW_PREFIX[i] + _ROW_FORMAT[i].pack(v) for i, v in enumerate(self._row))
        )

    def stats(self) -> dict[str, Any]:
        self._fold()
        return self._row_stats(0)

    def extrapolated(self, range_start_ms: int, range_end_ms: int, is_rate: bool = False):
        s = self.stats()
        return extrapolated_increase(
            s["count"], s["first_t"], s["first_v"], s["last_t"], s["last_v"], s["resets"],
            range_start_ms, range_end_ms, is_rate,
        )  # fmt: skip


class MultipleIncreaseAccumulator(_CounterBase):
    type_name = "MultipleIncrease"
    type_code = 8
    keyed = True

    def stats(self) -> dict[str, Any]:
        self._fold()
        keys = self._keys
        return {
            "keys": [
                {"key": keys[i], "stats": self._row_stats(i)} for i in self._present().tolist()
            ]
        }

    def keys(self) -> list[Key]:
        self._fold()
        return [self._keys[i] for i in self._present().tolist()]

    def columns(self) -> CounterColumns:
        """State rows aligned with ``keys()`` (keys that have samples), e.g. for the query side
        to compute ``extrapolated_increase`` per key with numpy."""
        self._fold()
        rows = self._present()
        return CounterColumns(*(getattr(self.cols, name)[rows] for name in _COLS))
