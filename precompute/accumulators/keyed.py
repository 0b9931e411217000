"""Keyed moments: MultipleSum and MultipleMinMax (one row of sum/count/min/max per sub-key).

Rows are interned per accumulator (key tuple → row); a batch costs one dictionary lookup per
distinct sub-key and numpy reductions over the samples.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from precompute.accumulators.base import (
    Accumulator,
    Key,
    pack_array,
    pack_keys,
    unpack_array,
    unpack_keys,
)


class TableMap:
    """Per-accumulator cache from ids in a caller's append-only key table (the worker's sub-key
    table) to values computed once per key, so steady-state batches map ids with one numpy
    gather instead of a dictionary lookup per distinct key."""

    def __init__(self, width: int = 0) -> None:
        self.width = width  # 0: one int per key; else a row of ``width`` ints per key
        self.table: object | None = None
        self.values = np.full((0, width) if width else 0, -1, dtype=np.int64)

    def lookup(self, keys, ids: np.ndarray, compute) -> np.ndarray:
        if keys is not self.table:
            self.table = keys
            self.values = np.full((0, self.width) if self.width else 0, -1, dtype=np.int64)
        size = len(keys)
        if size > self.values.shape[0]:
            shape = (
                (size - self.values.shape[0], self.width)
                if self.width
                else size - self.values.shape[0]
            )
            self.values = np.concatenate([self.values, np.full(shape, -1, dtype=np.int64)])
        vals = self.values[ids]
        missing = (vals[:, 0] if self.width else vals) < 0
        if missing.any():
            todo = np.unique(ids[missing])
            self.values[todo] = np.asarray(compute([keys[i] for i in todo.tolist()]), np.int64)
            vals = self.values[ids]
        return vals


class KeyInterner:
    """Sub-key tuples ↔ dense row numbers.

    An accumulator created in a worker starts in *table mode*: its rows are simply the ids of the
    worker's append-only sub-key table, so updates and merges between panes of the same worker
    need no per-key Python at all. Anything else (a deserialized accumulator, keys from another
    table) switches to *own mode*: a private key list and a lazily built index; rows keep their
    numbers, and ``table_ids`` remembers each row's id in the last table seen so merges from it
    stay vectorized.
    """

    def __init__(self, keys: list[Key] | None = None) -> None:
        self._own: list[Key] = list(keys or [])
        self._index: dict[Key, int] | None = None
        self.table: list[Key] | None = None
        self._map = TableMap()
        self.table_ids = np.full(len(self._own), -1, dtype=np.int64)

    @property
    def keys(self) -> list[Key]:
        return self.table if self.table is not None else self._own

    @property
    def index(self) -> dict[Key, int]:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self._own)}
        return self._index

    def _leave_table_mode(self) -> None:
        if self.table is None:
            return
        table, self.table = self.table, None
        self._own, self._index = list(table), None
        self._map.table, self._map.values = table, np.arange(len(table), dtype=np.int64)
        self.table_ids = np.arange(len(table), dtype=np.int64)

    def intern(self, key: Key) -> int:
        self._leave_table_mode()
        index = self.index
        idx = index.get(key)
        if idx is None:
            idx = index[key] = len(self._own)
            self._own.append(key)
        return idx

    def rows_for(self, keys: list[Key]) -> np.ndarray:
        return np.fromiter((self.intern(k) for k in keys), np.int64, len(keys))

    def _track(self, rows: np.ndarray, ids: np.ndarray) -> None:
        if self.table_ids.shape[0] < len(self._own):
            extra = len(self._own) - self.table_ids.shape[0]
            self.table_ids = np.concatenate([self.table_ids, np.full(extra, -1, dtype=np.int64)])
        self.table_ids[rows] = ids

    def rows_from_table(self, keys: list[Key], key_ids: np.ndarray) -> np.ndarray:
        """Local row of each id of the caller's key table (per sample)."""
        if self.table is None and not self._own:
            self.table = keys
        if self.table is keys:
            return key_ids
        self._leave_table_mode()
        rows = self._map.lookup(keys, key_ids, self.rows_for)
        self._track(rows, key_ids)
        return rows

    def local_ids(self, keys: list[Key], key_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distinct local rows, per-sample index into them)."""
        uniq, inverse = np.unique(self.rows_from_table(keys, key_ids), return_inverse=True)
        return uniq, inverse

    def rows_from(self, other: KeyInterner, n: int) -> np.ndarray:
        """Local rows for ``other``'s rows ``0..n-1``, interning keys not seen yet."""
        every = np.arange(n, dtype=np.int64)
        if other.table is not None:
            return self.rows_from_table(other.table, every)
        if self.table is None and not self._own:  # adopt a copy of an own-mode interner
            self._own, self._index = list(other._own), None
            self._map.table, self._map.values = other._map.table, other._map.values.copy()
            self.table_ids = other.table_ids.copy()
            return every
        ids = other.table_ids[:n]
        table = other._map.table
        if table is not None and ids.shape[0] == n and (ids >= 0).all():
            return self.rows_from_table(table, ids)  # type: ignore[arg-type]
        return self.rows_for(other._own[:n])


class _KeyedMoments(Accumulator):
    keyed = True
    fields: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self.interner = KeyInterner()
        self.sums = np.zeros(0)
        self.counts = np.zeros(0, dtype=np.int64)
        self.mins = np.zeros(0)
        self.maxs = np.zeros(0)

    def _grow(self) -> None:
        size = len(self.interner.keys)
        old = self.sums.shape[0]
        if size <= old:
            return
        extra = size - old
        self.sums = np.concatenate([self.sums, np.zeros(extra)])
        self.counts = np.concatenate([self.counts, np.zeros(extra, dtype=np.int64)])
        self.mins = np.concatenate([self.mins, np.full(extra, math.nan)])
        self.maxs = np.concatenate([self.maxs, np.full(extra, math.nan)])

    def _fold(self, rows, sums, counts, mins, maxs) -> None:
        self._grow()
        self.sums[rows] += sums
        self.counts[rows] += counts
        self.mins[rows] = np.fmin(self.mins[rows], mins)
        self.maxs[rows] = np.fmax(self.maxs[rows], maxs)

    def update(self, values, timestamps, keys=None, key_ids=None) -> None:
        assert keys is not None and key_ids is not None
        if values.shape[0] == 0:
            return
        rows, inverse = self.interner.local_ids(keys, key_ids)
        order = np.argsort(inverse, kind="stable")
        v = np.asarray(values, np.float64)[order]
        starts = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])
        counts = np.diff(np.append(starts, v.shape[0]))
        self._fold(
            rows,
            np.add.reduceat(v, starts),
            counts,
            np.fmin.reduceat(v, starts),
            np.fmax.reduceat(v, starts),
        )

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, _KeyedMoments)
        rows = self.interner.rows_from(other.interner, other.sums.shape[0])
        self._fold(rows, other.sums, other.counts, other.mins, other.maxs)

    def present(self) -> np.ndarray:
        return np.flatnonzero(self.counts > 0)

    def is_empty(self) -> bool:
        return self.present().shape[0] == 0

    def row_stats(self, i: int) -> dict[str, Any]:
        everything = {
            "sum": float(self.sums[i]),
            "count": int(self.counts[i]),
            "min": float(self.mins[i]),
            "max": float(self.maxs[i]),
        }
        return {name: everything[name] for name in self.fields}

    def stats(self) -> dict[str, Any]:
        keys = self.interner.keys
        return {
            "keys": [{"key": keys[i], "stats": self.row_stats(i)} for i in self.present().tolist()]
        }

    def _payload(self) -> bytes:
        rows = self.present()
        keys = [self.interner.keys[i] for i in rows.tolist()]
        arrays = (self.sums[rows], self.counts[rows], self.mins[rows], self.maxs[rows])
        return pack_keys(keys) + b"".join(pack_array(a) for a in arrays)

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int):
        acc = cls()
        keys, offset = unpack_keys(payload, 0)
        acc.interner = KeyInterner(keys)
        arrays = []
        for _ in range(4):
            arr, offset = unpack_array(payload, offset)
            arrays.append(arr)
        acc.sums, acc.counts, acc.mins, acc.maxs = arrays
        return acc

    def empty_like(self):
        return type(self)()


class MultipleSumAccumulator(_KeyedMoments):
    type_name = "MultipleSum"
    type_code = 13
    fields = ("sum", "count")


class MultipleMinMaxAccumulator(_KeyedMoments):
    type_name = "MultipleMinMax"
    type_code = 14
    fields = ("min", "max", "count")
