"""Append-only column pools of decoded window rows and items (``planner.sketch_table``).

A window table keeps every cached block's rows in one array per column, so a query reading many
blocks gathers each column once. Large pool buffers are anonymous mappings populated when made:
a server that has been ingesting for a while has no free huge pages, and numpy's large arrays
(advised for huge pages) then fault each page in under memory compaction — 686 ms to first write
320 MB, against ~100 ms populated at once (measured in the benchmark's process after ingest).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

POPULATE_MIN_BYTES = 4 << 20  # pool buffers from this size on are mapped and populated at once


class Growing:
    """An append-only array with spare capacity: appending never copies what is stored
    (amortized), and a ``view`` taken earlier keeps its contents."""

    def __init__(self, dtype) -> None:
        self.buf = np.zeros(0, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + values.shape[0]
        if need > self.buf.shape[0]:
            # Growth by 1/4: the spare capacity counts against the cache budget.
            grown = pool_array(max(need, self.buf.shape[0] * 5 // 4, 1024), self.buf.dtype)
            grown[: self.size] = self.buf[: self.size]
            self.buf = grown
        self.buf[self.size : need] = values
        self.size = need

    def claim(self, n: int) -> np.ndarray:
        """The next ``n`` cells, appended now, for the caller to fill."""
        self.reserve_growing(n)
        self.size += n
        return self.buf[self.size - n : self.size]

    def reserve_growing(self, extra: int) -> None:
        need = self.size + int(extra)
        if need > self.buf.shape[0]:
            self.reserve(max(need, self.buf.shape[0] * 5 // 4) - self.size)

    def reserve(self, extra: int) -> None:
        """Capacity for ``extra`` more values (one copy now, none while they arrive)."""
        need = self.size + int(extra)
        if need > self.buf.shape[0]:
            grown = pool_array(need, self.buf.dtype)
            grown[: self.size] = self.buf[: self.size]
            self.buf = grown

    def view(self) -> np.ndarray:
        return self.buf[: self.size]

    def widen(self, dtype) -> None:
        self.buf = self.buf.astype(dtype)


def pool_array(n: int, dtype) -> np.ndarray:
    """An uninitialised array for a pool (large ones mapped and populated at once)."""
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes < POPULATE_MIN_BYTES or not populate:
        return np.empty(n, dtype=dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype=dtype)


def slices(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``values[starts[i] : starts[i] + sizes[i]]`` concatenated: one copy per block (a few
    dozen), at memory speed, where a gather through an index of every item cost ~10× more."""
    out = pool_array(int(sizes.sum()), values.dtype)
    at = 0
    for a, n in zip(starts.tolist(), sizes.tolist(), strict=True):
        out[at : at + n] = values[a : a + n]
        at += n
    return out


def exact_pool(values: np.ndarray) -> Growing:
    """A pool holding exactly ``values`` (no spare capacity)."""
    out = Growing(values.dtype)
    out.buf, out.size = values, int(values.shape[0])
    return out


@dataclass(frozen=True)
class Compacted:
    """Pools holding only the kept ranges, back to back, and where each range starts now."""

    rows: dict[str, Growing]
    items: Growing | None
    cumw: Growing | None
    row_at: np.ndarray  # new first row of each kept row range
    item_at: np.ndarray  # new first item of each kept item range


def compact_copy(
    rows: dict[str, np.ndarray],
    row_ranges: np.ndarray,
    items: tuple[np.ndarray, np.ndarray] | None = None,
    item_ranges: np.ndarray | None = None,
    item_refs: tuple[str, ...] = ("lo", "hi"),
) -> Compacted:
    """Copy the row ranges (``[a, z)`` pairs, ascending) of every row column and, with
    ``items`` (items and cumulative weights), the item ranges, into exactly sized pools; the row
    columns ``item_refs`` (item positions) are shifted to the new item positions. Reads only the
    given arrays, which appends never change, so it runs without the table's lock."""
    row_a, row_n = row_ranges[:, 0], row_ranges[:, 1] - row_ranges[:, 0]
    row_at = np.cumsum(row_n) - row_n
    pools = {n: exact_pool(slices(v, row_a, row_n)) for n, v in rows.items()}
    if items is None or item_ranges is None:
        return Compacted(pools, None, None, row_at, np.zeros_like(row_at))
    item_a, item_n = item_ranges[:, 0], item_ranges[:, 1] - item_ranges[:, 0]
    item_at = np.cumsum(item_n) - item_n
    vals, cumw = (exact_pool(slices(v, item_a, item_n)) for v in items)
    shift = np.repeat(item_at - item_a, row_n)  # a range's items moved by the same offset
    for n in item_refs:
        pools[n].buf += shift
    return Compacted(pools, vals, cumw, row_at, item_at)
