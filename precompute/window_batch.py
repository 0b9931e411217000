"""Closed windows emitted columnar: one record per (aggregation, window-close event).

Per-series grouping of a columnar aggregation (moments family, Increase) closes thousands of
windows at each slide. Wrapping every one in a ``PrecomputedOutput`` + accumulator object and a
store entry made the engine spend Python work per sample. A ``WindowBatch`` instead carries the
group keys and the state columns of every group whose window ``(start, end]`` closed together;
per-group accumulators are built only when something reads them (``pairs()``), e.g. the sketch
store's entry-based read API.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from precompute import batch_codec as codec
from precompute.accumulators.base import Accumulator, pack_keys, unpack_keys
from precompute.accumulators.increase import _COLS as COUNTER_COLS
from precompute.accumulators.increase import _DTYPES as COUNTER_DTYPES
from precompute.accumulators.increase import IncreaseAccumulator
from precompute.batch_codec import column_bound
from precompute.output import PrecomputedOutput

Key = tuple[str, ...]
MOMENT_COLS = ("sum", "count", "min", "max")
_MOMENT_DTYPES = (np.float64, np.int64, np.float64, np.float64)
INCREASE = "Increase"
_HEAD = struct.Struct("<BIqqq")  # format version, aggregation id, start, end, max_buffer
# 1: keys inline; 2: key ids into a store key table; 3: key ids that are one run first..first+n-1;
# 4, 5: as 2, 3 with each state column coded (``_code_column``): fewer bytes to checksum and write;
# 6: as 4 with the id column coded too (ascending ids with gaps: a byte per row)
_VERSION = 6
_CODED = {4: 2, 5: 3, 6: 2}  # coded format → the key-id layout it shares


LAST_COLS = ("last_t", "last_v", "stale")
_LAST_DTYPES = (np.int64, np.float64, np.int64)
# Keyed types emitted per cell (one row per group key + sub key, ``precompute/cells.py``).
CELL_KINDS = frozenset({"MultipleSum", "MultipleMinMax", "MultipleIncrease", "MultipleLast"})


def columns_of(kind: str) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    if kind in (INCREASE, "MultipleIncrease"):
        return COUNTER_COLS, COUNTER_DTYPES
    if kind == "MultipleLast":
        return LAST_COLS, _LAST_DTYPES
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

    A keyed type's batch (``kind`` in ``CELL_KINDS``, ``group_width`` set) has one row per
    *cell*: its key is the group key (the first ``group_width`` values) followed by the sub key,
    the same full key the query side names a keyed entry's rows by. ``pairs()`` regroups the
    rows into one keyed accumulator per group key, as the keyed object path emits.
    """

    aggregation_id: int
    kind: str
    window_start: int
    window_end: int
    keys: Sequence[Key]  # a list, or KeyRows into the emitting worker's key table
    columns: dict[str, np.ndarray]
    max_buffer: int = 0
    group_width: int | None = None  # keyed cell rows: how many key values name the group
    _pairs: list[tuple[PrecomputedOutput, Accumulator]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def accumulators(self) -> list[Accumulator]:
        """One accumulator per row. For cell rows a keyed one holding the row's state under the
        empty sub key: row key + sub key is still the row's full key."""
        if self.group_width is not None:
            rows = np.arange(len(self), dtype=np.int64)
            return [
                keyed_from_columns(self.kind, [()], self.columns, rows[i : i + 1], self.max_buffer)
                for i in range(len(self))
            ]
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
            self._pairs = self.fresh_pairs()
        return self._pairs

    def fresh_pairs(self) -> list[tuple[PrecomputedOutput, Accumulator]]:
        """``pairs()`` built anew and not cached (a store materializing entries keeps no
        accumulator objects alive through its batches)."""
        if self.group_width is not None:
            return self._keyed_pairs(self.group_width)
        agg, start, end = self.aggregation_id, self.window_start, self.window_end
        return [
            (PrecomputedOutput(agg, key, start, end), acc)
            for key, acc in zip(self.keys, self.accumulators(), strict=True)
        ]

    def _keyed_pairs(self, width: int) -> list[tuple[PrecomputedOutput, Accumulator]]:
        groups: dict[Key, list[int]] = {}
        for i, key in enumerate(self.keys):
            groups.setdefault(tuple(key[:width]), []).append(i)
        agg, start, end = self.aggregation_id, self.window_start, self.window_end
        out = []
        for group, rows in groups.items():
            subs = [tuple(self.keys[i][width:]) for i in rows]
            acc = keyed_from_columns(
                self.kind, subs, self.columns, np.array(rows, dtype=np.int64), self.max_buffer
            )
            out.append((PrecomputedOutput(agg, group, start, end), acc))
        return out

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
        # A cell batch names its group width in the kind ("MultipleSum@2"): no format change.
        kind = self.kind if self.group_width is None else f"{self.kind}@{self.group_width}"
        kind = kind.encode()
        version = 1 if key_ids is None else 5 if _is_run(key_ids) else 6
        head = _HEAD.pack(
            version, self.aggregation_id, self.window_start, self.window_end, self.max_buffer
        )
        out: list[bytes | memoryview] = [head + struct.pack("<H", len(kind)) + kind]
        if key_ids is None:
            out.append(pack_keys(list(self.keys)))
        elif version == 5:  # per-series batches name every group in table order: two numbers
            out.append(struct.pack("<Qq", key_ids.shape[0], int(key_ids[0])))
        else:
            out.append(struct.pack("<Q", key_ids.shape[0]))
            out += _code_column(key_ids, np.int64, deltas=True)
        names, dtypes = columns_of(self.kind)
        for n, d in zip(names, dtypes, strict=True):
            if version == 1:
                out.append(_view(self.columns[n], d))
            else:  # value columns (sum, min, first_v, …) are rarely zero: not worth a pass
                out += _code_column(self.columns[n], d, zeros=n in _MOSTLY_ZERO)
        return out

    def record_bound(self) -> int:
        """Most bytes ``encode_into`` writes for this batch (with key ids)."""
        names, _ = columns_of(self.kind)
        return _HEAD.size + 2 + 8 + len(self.kind) + 16 + column_bound(len(self)) * (len(names) + 1)

    def encode_into(self, out: np.ndarray, pos: int, key_ids: np.ndarray, run: bool) -> int:
        """``to_bytes(key_ids)`` written at ``out[pos:]`` (a uint8 array with ``record_bound()``
        bytes free) by compiled coders, one call for all state columns: no temporaries, no
        pieces. ``run``
        says whether ``key_ids`` are one ascending run (format 5) — the caller found out while
        mapping them. Returns the end offset."""
        if out.shape[0] - pos < self.record_bound():  # the kernels do not check bounds
            raise ValueError("window batch record: output buffer too small")
        if not codec.ENABLED:
            return _put(out, pos, self.to_bytes(key_ids))
        kind = self.kind if self.group_width is None else f"{self.kind}@{self.group_width}"
        kind_b = kind.encode()
        _HEAD.pack_into(
            out, pos, 5 if run else 6, self.aggregation_id, self.window_start, self.window_end,
            self.max_buffer,
        )  # fmt: skip
        pos += _HEAD.size
        struct.pack_into(f"<H{len(kind_b)}s", out, pos, len(kind_b), kind_b)
        pos += 2 + len(kind_b)
        if run:
            struct.pack_into("<Qq", out, pos, key_ids.shape[0], int(key_ids[0]))
            pos += 16
        else:
            struct.pack_into("<Q", out, pos, key_ids.shape[0])
            ids = np.ascontiguousarray(key_ids, dtype=np.int64)
            pos = codec.code_int_into(ids, ids.view(np.uint64), True, 2, out, pos + 8)
        names, dtypes = columns_of(self.kind)
        cols = [
            np.ascontiguousarray(self.columns[n], dtype=d)
            for n, d in zip(names, dtypes, strict=True)
        ]
        if any(c.shape[0] != len(self) for c in cols) or key_ids.shape[0] != len(self):
            raise ValueError("window batch record: columns and keys differ in length")
        words = tuple(c.view(np.uint64) for c in cols)
        pos = codec.code_columns_into(words, _code_kinds(self.kind), out, pos)
        return int(pos)

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
        group_width = None
        if "@" in kind:
            kind, width = kind.split("@", 1)
            group_width = int(width)
        keys: Sequence[Key]
        coded, coded_ids = version in _CODED, version == 6
        version = _CODED.get(version, version)
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
            if coded_ids:
                ids, offset = _decode_column(view, offset + 8, np.int64, n)
            else:
                ids = np.frombuffer(view[offset + 8 : offset + 8 + 8 * n], dtype=np.int64).copy()
                offset += 8 + 8 * n
            keys = KeyRows(key_table, ids)
        names, dtypes = columns_of(kind)
        columns = {}
        for name, dtype in zip(names, dtypes, strict=True):
            if coded:
                columns[name], offset = _decode_column(view, offset, dtype, len(keys))
                continue
            width = np.dtype(dtype).itemsize * len(keys)
            columns[name] = np.frombuffer(view[offset : offset + width], dtype=dtype).copy()
            offset += width
        return cls(agg, kind, start, end, keys, columns, max_buffer, group_width)


def keyed_from_columns(
    kind: str, subs: list[Key], columns: dict[str, np.ndarray], rows: np.ndarray, max_buffer: int
) -> Accumulator:
    """A keyed accumulator of type ``kind`` holding rows ``rows`` of a cell batch's state
    ``columns`` under sub keys ``subs`` (aligned with ``rows``)."""
    from precompute.accumulators.counter_state import CounterColumns
    from precompute.accumulators.keyed import KeyInterner
    from precompute.accumulators.registry import BY_NAME

    acc: Any = BY_NAME[kind](max_buffer) if kind == "MultipleIncrease" else BY_NAME[kind]()
    acc.interner = KeyInterner(list(subs))
    names, dtypes = columns_of(kind)
    got = [np.asarray(columns[n])[rows].astype(d) for n, d in zip(names, dtypes, strict=True)]
    if kind == "MultipleIncrease":
        acc.cols = CounterColumns(*got)
    elif kind == "MultipleLast":
        acc.last_t, acc.last_v, acc.stale = got[0], got[1], got[2].astype(bool)
    else:
        acc.sums, acc.counts, acc.mins, acc.maxs = got
    return acc


# Column codes (formats 4-5): one byte, then
_RAW = 0  # the column's little-endian bytes
_CONST = 1  # one 8-byte value for every row (e.g. ``n`` of a steady scrape, ``resets`` all 0)
_SPARSE = 2  # u64 k, k u32 row numbers, k 8-byte values; the other rows are all-zero bits
_OFFSET = 3  # int columns: u8 width (1, 2, 4), i64 base, unsigned offsets (timestamps in a window)
_DELTA = 4  # ascending int columns (key ids): u8 width, i64 first, unsigned steps to the next row
_WIDTHS = {1: np.uint8, 2: np.uint16, 4: np.uint32}
_MOSTLY_ZERO = frozenset({"resets"})  # float columns worth checking for all-zero or sparse


@functools.lru_cache(maxsize=64)
def _code_kinds(kind: str) -> np.ndarray:
    """Per state column of ``kind``, how ``batch_codec`` codes it (as ``_code_column`` does)."""
    names, dtypes = columns_of(kind)
    return np.array(
        [
            2 if np.dtype(d).kind == "i" else int(n in _MOSTLY_ZERO)
            for n, d in zip(names, dtypes, strict=True)
        ],
        dtype=np.uint8,
    )


def _code_column(
    array: np.ndarray, dtype: Any, zeros: bool = True, deltas: bool = False
) -> list[bytes | memoryview]:
    """A state column in its smallest code among a few cheap ones (a pass or two of numpy); the
    decoded column has the same bits. Counter timestamps fit 32-bit offsets from their minimum,
    counts a byte, and ``resets`` is all zero but for rare series."""
    col = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    n = col.shape[0]
    if n == 0:
        return [bytes([_RAW])]
    bits = col.view("<u8")
    if col.dtype.kind == "i":
        lo, hi = int(col.min()), int(col.max())
        if lo == hi:
            return [bytes([_CONST]), bits[:1].tobytes()]
        if deltas:
            steps = np.diff(col)
            low, high = int(steps.min()), int(steps.max())
            width = next((w for w in (1, 2) if high < 1 << (8 * w)), 0)
            if low >= 0 and width:
                steps = steps.astype(_WIDTHS[width])
                head = struct.pack("<Bbq", _DELTA, width, int(col[0]))
                return [head, memoryview(steps).cast("B")]
        width = next((w for w in (1, 2, 4) if hi - lo < 1 << (8 * w)), 0)
        if width:
            offsets = (col - lo).astype(_WIDTHS[width])
            return [struct.pack("<Bbq", _OFFSET, width, lo), memoryview(offsets).cast("B")]
        return [bytes([_RAW]), memoryview(col).cast("B")]
    if not zeros:
        return [bytes([_RAW]), memoryview(col).cast("B")]
    nonzero = int(np.count_nonzero(bits))
    if nonzero == 0:
        return [bytes([_CONST]), bits[:1].tobytes()]
    if nonzero * 12 < n * 8:  # rare non-zero rows: row numbers and values beat the column
        rows = np.flatnonzero(bits).astype("<u4")
        head = struct.pack("<BQ", _SPARSE, nonzero)
        return [head, memoryview(rows).cast("B"), bits[rows].tobytes()]
    return [bytes([_RAW]), memoryview(col).cast("B")]


def _decode_column(view: memoryview, offset: int, dtype: Any, n: int) -> tuple[np.ndarray, int]:
    code = view[offset]
    offset += 1
    dt = np.dtype(dtype).newbyteorder("<")
    if code == _RAW:
        width = dt.itemsize * n
        col = np.frombuffer(view[offset : offset + width], dtype=dt).copy()
        return col.astype(dtype, copy=False), offset + width
    if code == _CONST:
        (value,) = struct.unpack_from("<Q", view, offset)
        return np.full(n, value, dtype="<u8").view(dt).astype(dtype, copy=False), offset + 8
    if code == _SPARSE:
        (k,) = struct.unpack_from("<Q", view, offset)
        offset += 8
        rows = np.frombuffer(view[offset : offset + 4 * k], dtype="<u4")
        values = np.frombuffer(view[offset + 4 * k : offset + 12 * k], dtype="<u8")
        bits = np.zeros(n, dtype="<u8")
        bits[rows] = values
        return bits.view(dt).astype(dtype, copy=False), offset + 12 * k
    if code == _OFFSET:
        width, base = struct.unpack_from("<bq", view, offset)
        offset += 9
        offsets = np.frombuffer(view[offset : offset + width * n], dtype=_WIDTHS[width])
        col = offsets.astype(np.int64) + base
        return col.astype(dtype, copy=False), offset + width * n
    if code == _DELTA:
        width, first = struct.unpack_from("<bq", view, offset)
        offset += 9
        steps = np.frombuffer(view[offset : offset + width * (n - 1)], dtype=_WIDTHS[width])
        col = np.empty(n, dtype=np.int64)
        col[0] = first
        np.cumsum(steps, out=col[1:], dtype=np.int64)
        col[1:] += first
        return col.astype(dtype, copy=False), offset + width * (n - 1)
    raise ValueError(f"window batch column code {code} unknown to this build")


def _is_run(ids: np.ndarray) -> bool:
    """Whether ``ids`` are consecutive ascending integers (checked in O(n) without Python)."""
    n = ids.shape[0]
    if n == 0 or int(ids[-1]) - int(ids[0]) != n - 1:
        return False
    return bool(np.all(np.diff(ids) == 1))


def _put(out: np.ndarray, pos: int, data: bytes) -> int:
    end = pos + len(data)
    out[pos:end] = np.frombuffer(data, dtype=np.uint8)
    return end


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
