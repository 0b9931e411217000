"""Count-min sketches over sub-keys: CountMinSketch (sum or count) and CountMinSketchWithHeap.

Implemented with numpy rather than ``datasketches.count_min_sketch`` because the latter only
updates one item per Python call; here a batch is one ``bincount`` over (row, column) cells.
Guarantee (Cormode & Muthukrishnan, non-negative weights): with ``ε = e / width`` and
``δ = e^(−depth)``, ``true ≤ estimate ≤ true + ε · total_weight`` with probability ``1 − δ``.
"""

from __future__ import annotations

import math
import struct
import threading
from typing import Any

import numpy as np

from precompute.accumulators.base import (
    Accumulator,
    Key,
    pack_array,
    pack_keys,
    unpack_array,
    unpack_keys,
)
from precompute.accumulators.keyed import TableMap
from precompute.accumulators.keyhash import row_columns

_CELL_MAPS: dict[tuple[int, int, int], tuple[object, TableMap]] = {}
_CELL_MAPS_LOCK = threading.Lock()


def _shared_cell_map(table: object, depth: int, width: int) -> TableMap:
    """One cell cache per (key table, shape), shared by every pane of an aggregation, so a key is
    hashed once per worker rather than once per pane. Holds the table so its id stays unique."""
    slot = (id(table), depth, width)
    with _CELL_MAPS_LOCK:
        found = _CELL_MAPS.get(slot)
        if found is None or found[0] is not table:
            if len(_CELL_MAPS) >= 256:  # tables of removed aggregations: start over
                _CELL_MAPS.clear()
            found = _CELL_MAPS[slot] = (table, TableMap(width=depth))
        return found[1]


class CountMinSketchAccumulator(Accumulator):
    type_name = "CountMinSketch"
    type_code = 11
    keyed = True

    def __init__(self, depth: int, width: int, count_only: bool = False) -> None:
        self.depth, self.width, self.count_only = depth, width, count_only
        self.table = np.zeros(depth * width, dtype=np.float64)
        self.total = 0.0

    def _cells(self, keys: list[Key]) -> np.ndarray:
        offsets = (np.arange(self.depth, dtype=np.int64) * self.width)[:, None]
        return row_columns(keys, self.depth, self.width) + offsets  # depth × len(keys)

    def update(self, values, timestamps, keys=None, key_ids=None) -> None:
        assert keys is not None and key_ids is not None
        n = values.shape[0]
        if n == 0:
            return
        # Cells per key id of the caller's key table are hashed once, then gathered: one row of
        # ``depth`` flat cells per sample. ``bincount`` sums repeated keys itself, so there is no
        # per-batch ``unique`` (a pane batch is one sample per series, keys rarely repeat).
        cell_map = _shared_cell_map(keys, self.depth, self.width)
        cells = cell_map.lookup(keys, key_ids, lambda ks: self._cells(ks).T).ravel()
        size = self.table.shape[0]
        if self.count_only:
            self.table += np.bincount(cells, minlength=size)
            self.total += float(n)
        else:
            weights = np.asarray(values, np.float64)
            self.table += np.bincount(cells, weights=np.repeat(weights, self.depth), minlength=size)
            self.total += float(weights.sum())
        self._after_update(keys, key_ids)

    def _after_update(self, keys: list[Key], ids: np.ndarray) -> None:
        return None

    def estimate_many(self, keys: list[Key]) -> np.ndarray:
        if not keys:
            return np.empty(0)
        return self.table[self._cells(keys)].min(axis=0)

    def estimate(self, key: Key) -> float:
        return float(self.estimate_many([key])[0])

    def error_bound(self) -> tuple[float, float]:
        """(additive error ε·total, failure probability δ)."""
        return math.e / self.width * self.total, math.exp(-self.depth)

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, CountMinSketchAccumulator)
        if (other.depth, other.width) != (self.depth, self.width):
            raise ValueError("cannot merge count-min sketches of different shapes")
        self.table += other.table
        self.total += other.total

    def is_empty(self) -> bool:
        return self.total == 0 and not self.table.any()

    def stats(self) -> dict[str, Any]:
        eps, delta = self.error_bound()
        return {"count" if self.count_only else "sum": self.total, "error": eps, "delta": delta}

    def _payload(self) -> bytes:
        head = struct.pack("<IIBd", self.depth, self.width, int(self.count_only), self.total)
        return head + pack_array(self.table)

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int):
        depth, width, count_only, total = struct.unpack_from("<IIBd", payload, 0)
        acc = cls(depth, width, bool(count_only))
        acc.total = total
        acc.table, _ = unpack_array(payload, 17)
        return acc

    def empty_like(self):
        return type(self)(self.depth, self.width, self.count_only)


class CountMinSketchWithHeapAccumulator(CountMinSketchAccumulator):
    """Count-min sketch plus the ``heapsize`` keys with the largest estimates (top-k)."""

    type_name = "CountMinSketchWithHeap"
    type_code = 12

    def __init__(self, depth: int, width: int, heapsize: int, count_only: bool = False) -> None:
        super().__init__(depth, width, count_only)
        self.heapsize = heapsize
        self.candidates: list[Key] = []

    def _after_update(self, keys: list[Key], ids: np.ndarray) -> None:
        self._retain([keys[i] for i in np.unique(ids).tolist()])

    def _retain(self, new_keys: list[Key]) -> None:
        pool = list(dict.fromkeys([*self.candidates, *new_keys]))
        if len(pool) > self.heapsize:
            est = self.estimate_many(pool)
            keep = np.argsort(-est, kind="stable")[: self.heapsize]
            pool = [pool[i] for i in sorted(keep.tolist())]
        self.candidates = pool

    def merge(self, other: Accumulator) -> None:
        super().merge(other)
        assert isinstance(other, CountMinSketchWithHeapAccumulator)
        self._retain(other.candidates)

    def topk(self) -> list[tuple[Key, float]]:
        est = self.estimate_many(self.candidates)
        order = np.argsort(-est, kind="stable")
        return [(self.candidates[i], float(est[i])) for i in order.tolist()]

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        name = "count" if self.count_only else "sum"
        out["keys"] = [{"key": k, "stats": {name: v}} for k, v in self.topk()]
        return out

    def _payload(self) -> bytes:
        return struct.pack("<I", self.heapsize) + pack_keys(self.candidates) + super()._payload()

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int):
        (heapsize,) = struct.unpack_from("<I", payload, 0)
        keys, offset = unpack_keys(payload, 4)
        base = CountMinSketchAccumulator._from_payload(payload[offset:], version)
        acc = cls(base.depth, base.width, heapsize, base.count_only)
        acc.table, acc.total, acc.candidates = base.table, base.total, keys
        return acc

    def empty_like(self):
        return type(self)(self.depth, self.width, self.heapsize, self.count_only)
