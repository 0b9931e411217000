"""Key sets: SetAggregator (which sub-keys occurred in the window) and DeltaSetAggregator
(each sub-key with its first and last occurrence time, so consumers can tell which keys
appeared or disappeared between windows)."""

from __future__ import annotations

from typing import Any

import numpy as np

from precompute.accumulators.base import (
    Accumulator,
    pack_array,
    pack_keys,
    unpack_array,
    unpack_keys,
)
from precompute.accumulators.keyed import KeyInterner


class SetAccumulator(Accumulator):
    type_name = "SetAggregator"
    type_code = 15
    keyed = True

    def __init__(self) -> None:
        self.interner = KeyInterner()
        self.first_t = np.zeros(0, dtype=np.int64)
        self.last_t = np.zeros(0, dtype=np.int64)

    def _fold(self, rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        size = len(self.interner.keys)
        old = self.first_t.shape[0]
        if size > old:
            big = np.iinfo(np.int64)
            self.first_t = np.concatenate([self.first_t, np.full(size - old, big.max)])
            self.last_t = np.concatenate([self.last_t, np.full(size - old, big.min)])
        self.first_t[rows] = np.minimum(self.first_t[rows], first)
        self.last_t[rows] = np.maximum(self.last_t[rows], last)

    def update(self, values, timestamps, keys=None, key_ids=None) -> None:
        assert keys is not None and key_ids is not None
        if values.shape[0] == 0:
            return
        rows, inverse = self.interner.local_ids(keys, key_ids)
        ts = np.asarray(timestamps, np.int64)
        first = np.full(rows.shape[0], np.iinfo(np.int64).max)
        last = np.full(rows.shape[0], np.iinfo(np.int64).min)
        np.minimum.at(first, inverse, ts)
        np.maximum.at(last, inverse, ts)
        self._fold(rows, first, last)

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, SetAccumulator)
        rows = self.interner.rows_from(other.interner, other.first_t.shape[0])
        self._fold(rows, other.first_t, other.last_t)

    def present(self) -> np.ndarray:
        return np.flatnonzero(self.first_t <= self.last_t)

    def present_keys(self) -> list:
        keys = self.interner.keys
        return [keys[i] for i in self.present().tolist()]

    def is_empty(self) -> bool:
        return self.present().shape[0] == 0

    def stats(self) -> dict[str, Any]:
        keys = sorted(self.present_keys())
        return {"count": len(keys), "keys": [{"key": k, "stats": {}} for k in keys]}

    def _payload(self) -> bytes:
        rows = self.present()
        keys = [self.interner.keys[i] for i in rows.tolist()]
        return pack_keys(keys) + pack_array(self.first_t[rows]) + pack_array(self.last_t[rows])

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int):
        acc = cls()
        keys, offset = unpack_keys(payload, 0)
        acc.interner = KeyInterner(keys)
        acc.first_t, offset = unpack_array(payload, offset)
        acc.last_t, _ = unpack_array(payload, offset)
        return acc

    def empty_like(self):
        return type(self)()


class DeltaSetAccumulator(SetAccumulator):
    type_name = "DeltaSetAggregator"
    type_code = 16

    def stats(self) -> dict[str, Any]:
        order = sorted(self.present().tolist(), key=lambda i: self.interner.keys[i])
        return {
            "count": len(order),
            "keys": [
                {
                    "key": self.interner.keys[i],
                    "stats": {"first_t": int(self.first_t[i]), "last_t": int(self.last_t[i])},
                }
                for i in order
            ],
        }
