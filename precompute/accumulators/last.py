"""MultipleLast: per series key, the newest sample of a window (timestamp, value, stale marker).

This is the state an instant selector reads: Prometheus takes each series' newest sample in
``(t − lookback, t]`` and drops the series when that sample is a stale marker. Windows that tile
the lookback answer it exactly when each keeps, per key, its newest sample *including* stale
markers (so this is the only accumulator the router feeds markers to).

Ties on the timestamp follow storage (``storage.arrays.sort_dedupe``: the last written sample of a
duplicate ``(series, ts)`` wins): within a batch the later sample wins, and in ``merge`` the
merged-in accumulator (written later: a later pane, a late mini-accumulator) wins.
"""

from __future__ import annotations

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
from precompute.accumulators.keyed import KeyInterner
from storage.model import is_stale

_NONE = np.iinfo(np.int64).min  # "no sample yet" (no real sample is this old)
LAST_COLS = ("last_t", "last_v", "stale")


class MultipleLastAccumulator(Accumulator):
    type_name = "MultipleLast"
    type_code = 17
    keyed = True

    def __init__(self) -> None:
        self.interner = KeyInterner()
        self.last_t = np.zeros(0, dtype=np.int64)
        self.last_v = np.zeros(0)
        self.stale = np.zeros(0, dtype=bool)

    def _grow(self) -> None:
        size = len(self.interner.keys)
        extra = size - self.last_t.shape[0]
        if extra <= 0:
            return
        self.last_t = np.concatenate([self.last_t, np.full(extra, _NONE, dtype=np.int64)])
        self.last_v = np.concatenate([self.last_v, np.zeros(extra)])
        self.stale = np.concatenate([self.stale, np.zeros(extra, dtype=bool)])

    def _fold(self, rows: np.ndarray, t: np.ndarray, v: np.ndarray, stale: np.ndarray) -> None:
        """``rows`` distinct; the incoming sample wins unless it is older (ties: incoming)."""
        self._grow()
        newer = t >= self.last_t[rows]
        rows = rows[newer]
        self.last_t[rows] = t[newer]
        self.last_v[rows] = v[newer]
        self.stale[rows] = stale[newer]

    def update(
        self,
        values: np.ndarray,
        timestamps: np.ndarray,
        keys=None,
        key_ids: np.ndarray | None = None,
    ) -> None:
        assert keys is not None and key_ids is not None
        n = values.shape[0]
        if n == 0:
            return
        rows, inverse = self.interner.local_ids(keys, key_ids)
        t = np.asarray(timestamps, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        # Per key the newest sample, and of equal timestamps the last given (write order).
        order = np.lexsort((np.arange(n), t, inverse))
        g = inverse[order]
        last = order[np.flatnonzero(np.r_[g[1:] != g[:-1], True])]
        self._fold(rows, t[last], v[last], is_stale(v[last]))

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, MultipleLastAccumulator)
        size = other.last_t.shape[0]
        rows = self.interner.rows_from(other.interner, size)
        has = other.last_t != _NONE
        self._fold(rows[has], other.last_t[has], other.last_v[has], other.stale[has])

    def present(self) -> np.ndarray:
        return np.flatnonzero(self.last_t != _NONE)

    def is_empty(self) -> bool:
        return self.present().shape[0] == 0

    def key_columns(self) -> tuple[tuple[Key, ...], np.ndarray, dict[str, np.ndarray]]:
        """(keys with a sample, their rows, the ``LAST_COLS`` columns indexed by row) — the form
        the query side's window tables read keyed states in."""
        rows = self.present()
        keys = tuple(self.interner.keys[i] for i in rows.tolist())
        cols = {"last_t": self.last_t, "last_v": self.last_v, "stale": self.stale.astype(np.int64)}
        return keys, rows, cols

    def stats(self) -> dict[str, Any]:
        keys = self.interner.keys
        return {
            "keys": [
                {
                    "key": keys[i],
                    "stats": {
                        "last": float(self.last_v[i]),
                        "timestamp": int(self.last_t[i]) / 1000,
                        "stale": bool(self.stale[i]),
                    },
                }
                for i in self.present().tolist()
            ]
        }

    def _payload(self) -> bytes:
        rows = self.present()
        keys = [self.interner.keys[i] for i in rows.tolist()]
        arrays = (self.last_t[rows], self.last_v[rows], self.stale[rows].astype(np.uint8))
        return pack_keys(keys) + b"".join(pack_array(a) for a in arrays)

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int) -> MultipleLastAccumulator:
        acc = cls()
        keys, offset = unpack_keys(payload, 0)
        acc.interner = KeyInterner(keys)
        acc.last_t, offset = unpack_array(payload, offset)
        acc.last_v, offset = unpack_array(payload, offset)
        stale, offset = unpack_array(payload, offset)
        acc.stale = stale.astype(bool)
        return acc

    def empty_like(self) -> MultipleLastAccumulator:
        return MultipleLastAccumulator()
