"""The sketch store's log records: entry and batch encodings, frames, and decoding.

A log is a sequence of frames ``u32 length word, u32 check, payload``. The payload starts with
``_ENTRY`` (kind, aggregation id, start, end): a window entry (key + accumulator bytes), a raw
passthrough batch, a ``WindowBatch`` (format versioned inside), or keys appended to an
aggregation's key table. The check is CRC-32 of the payload, or — when the length word's top bit
is set — the low half of XXH64 (``storage/sketch_checksum.py``), which the store uses for the
batches it codes in its scratch buffer; logs of CRC-32 frames only still read.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from precompute.accumulators.base import Accumulator, pack_keys, unpack_keys
from precompute.window_batch import WindowBatch
from storage.sketch_checksum import frame_check

Key = tuple[str, ...]
_FRAME = struct.Struct("<II")  # length, check (CRC-32; XXH64's low half if flagged)
# Frame versions: the length word's top bit set means the check is XXH64 (records written from
# the scratch buffer, ``_frame_batch_into``); clear, CRC-32 (every record before, and pieces).
_XXH_FRAME = 0x8000_0000
_ENTRY = struct.Struct("<BIqq")  # kind, aggregation id, start, end
_KIND_WINDOW = 1
_KIND_RAW = 2
_KIND_BATCH = 3  # a WindowBatch (format versioned inside)
_KIND_KEYS = 4  # keys appended to an aggregation's key table at index ``start``


@dataclass(frozen=True)
class SketchEntry:
    aggregation_id: int
    key: Key
    window_start: int  # exclusive, ms
    window_end: int  # inclusive, ms
    data: bytes  # Accumulator.to_bytes()

    def accumulator(self) -> Accumulator:
        return Accumulator.from_bytes(self.data)


@dataclass(frozen=True)
class RawBatch:
    aggregation_id: int
    series: list[tuple[tuple[str, str], ...]]
    sample_series: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


class _DeferredEntry(SketchEntry):
    """A window entry whose accumulator bytes are built when first read, not when appended.

    Keyed windows (``MultipleIncrease`` over 100k series: ~6 MB per window close) cost the
    engine more to serialize than to compute; the store keeps the emitted accumulator (never
    changed after emit) and writes the log record from its column views. Equal to, and hashed
    like, the ``SketchEntry`` with the same fields."""

    def __init__(self, aggregation_id: int, key: Key, start: int, end: int, acc: Accumulator):
        for name, value in (("aggregation_id", aggregation_id), ("key", key),
                            ("window_start", start), ("window_end", end), ("_acc", acc)):  # fmt: skip
            object.__setattr__(self, name, value)

    @property
    def data(self) -> bytes:  # type: ignore[override]
        # Set before the accumulator is dropped, so a concurrent reader finds one or the other.
        d = self.__dict__.get("_data")
        if d is None:
            acc = self.__dict__.get("_acc")
            if acc is None:
                return self.__dict__["_data"]
            d = self.__dict__["_data"] = acc.to_bytes()
            self.__dict__.pop("_acc", None)
        return d

    def pieces(self) -> list[Buffer]:
        acc = self.__dict__.get("_acc")
        return acc.to_pieces() if acc is not None else [self.data]

    def _fields(self) -> tuple:
        return (self.aggregation_id, self.key, self.window_start, self.window_end, self.data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SketchEntry):
            return self._fields() == (other.aggregation_id, other.key, other.window_start,
                                      other.window_end, other.data)  # fmt: skip
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"SketchEntry(aggregation_id={self.aggregation_id!r}, key={self.key!r}, "
                f"window_start={self.window_start!r}, window_end={self.window_end!r}, deferred)")  # fmt: skip


def _entry_of(out: object, acc: Accumulator) -> SketchEntry:
    o = out  # a PrecomputedOutput
    if getattr(acc, "keyed", False) and hasattr(acc, "to_pieces"):
        return _DeferredEntry(o.aggregation_id, o.key, o.window_start, o.window_end, acc)  # type: ignore[attr-defined]
    return SketchEntry(o.aggregation_id, o.key, o.window_start, o.window_end, acc.to_bytes())  # type: ignore[attr-defined]


def _encode_entry(e: SketchEntry) -> bytes:
    return b"".join(_entry_pieces(e))


def _entry_pieces(e: SketchEntry) -> list[Buffer]:
    # The accumulator bytes stay pieces of their own: a keyed window over 100k keys is ~6 MB,
    # written with ``writev`` rather than copied into a record first.
    head = _ENTRY.pack(_KIND_WINDOW, e.aggregation_id, e.window_start, e.window_end)
    body = e.pieces() if isinstance(e, _DeferredEntry) else [e.data]
    return [head + _packed_key(e.key), *body]


@functools.lru_cache(maxsize=4096)
def _packed_key(key: Key) -> bytes:
    # A group's key is written with every window it closes (KLL, count-min, Sum: one entry per
    # group and close); packing it through Arrow costs ~15 µs, a cached lookup well under 1.
    return pack_keys([key])


def _encode_raw(r: RawBatch) -> bytes:
    flat = [tuple(x for pair in labels for x in pair) for labels in r.series]
    t_min = int(r.timestamps.min()) if r.timestamps.shape[0] else 0
    t_max = int(r.timestamps.max()) if r.timestamps.shape[0] else 0
    arrays = (r.sample_series.astype(np.int64), r.timestamps.astype(np.int64), r.values)
    body = b"".join(struct.pack("<Q", a.shape[0]) + a.tobytes() for a in arrays)
    return _ENTRY.pack(_KIND_RAW, r.aggregation_id, t_min, t_max) + pack_keys(flat) + body


def _encode_batch(b: WindowBatch) -> bytes:
    return _ENTRY.pack(_KIND_BATCH, b.aggregation_id, b.window_start, b.window_end) + b.to_bytes()


def _framed(records: Iterable[Sequence[Buffer]]) -> list[Buffer]:
    """Records given as pieces, each preceded by its frame (length and crc of the pieces)."""
    iov: list[Buffer] = []
    for pieces in records:
        length, crc = 0, 0
        for piece in pieces:
            length += memoryview(piece).nbytes
            crc = zlib.crc32(piece, crc)
        iov.append(_FRAME.pack(length, crc))
        iov += pieces
    return iov


def _frame_batch_into(buf: np.ndarray, pos: int, b: WindowBatch, ids: np.ndarray, run: bool) -> int:
    """A window batch's framed log record written at ``buf[pos:]``, checked by XXH64 (the
    payload is the bytes ``_framed`` would write for its pieces); returns the end."""
    start = pos + _FRAME.size
    _ENTRY.pack_into(buf, start, _KIND_BATCH, b.aggregation_id, b.window_start, b.window_end)
    end = b.encode_into(buf, start + _ENTRY.size, ids, run)
    _FRAME.pack_into(buf, pos, (end - start) | _XXH_FRAME, frame_check(buf[start:end]))
    return end


def _frame_ok(length_word: int, check: int, payload: memoryview) -> bool:
    if length_word & _XXH_FRAME:
        return frame_check(payload) == check
    return zlib.crc32(payload) == check


def _materialize(b: WindowBatch) -> list[SketchEntry]:
    # One entry per group: a keyed type's cell rows regroup into keyed states.
    return [
        SketchEntry(b.aggregation_id, out.key, b.window_start, b.window_end, acc.to_bytes())
        for out, acc in b.fresh_pairs()
    ]


Chunk = SketchEntry | WindowBatch
Buffer = bytes | memoryview


@dataclass(frozen=True)
class _KeyRecord:
    aggregation_id: int
    start: int
    keys: list[Key]


def _decode(
    payload: memoryview, tables: dict[int, list[Key]] | None = None
) -> SketchEntry | RawBatch | WindowBatch | _KeyRecord:
    kind, agg, start, end = _ENTRY.unpack_from(payload, 0)
    key_table = tables.get(agg) if tables is not None else None
    if kind == _KIND_BATCH:
        return WindowBatch.from_bytes(payload[_ENTRY.size :], key_table)
    if kind == _KIND_KEYS:
        return _KeyRecord(agg, start, unpack_keys(payload, _ENTRY.size)[0])
    keys, offset = unpack_keys(payload, _ENTRY.size)
    if kind == _KIND_WINDOW:
        return SketchEntry(agg, keys[0], start, end, bytes(payload[offset:]))
    arrays = []
    for dtype in (np.int64, np.int64, np.float64):
        (n,) = struct.unpack_from("<Q", payload, offset)
        offset += 8
        arrays.append(np.frombuffer(payload[offset : offset + 8 * n], dtype=dtype).copy())
        offset += 8 * n
    series = [tuple(zip(k[::2], k[1::2], strict=True)) for k in keys]
    return RawBatch(agg, series, *arrays)
