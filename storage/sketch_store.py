"""The sketch store: closed precompute windows, append-only, persisted, with retention.

Each entry is ``(aggregation_id, key, window_start, window_end) → serialized accumulator``; a
window may have several entries (late mini-accumulators, several workers) that the query side
merges. On disk: an append-only framed log (``u32 length, u32 check, payload``; records and frames
in ``storage/sketch_records.py``; a torn or corrupt tail is truncated at open, like the WAL) plus
a periodic Arrow IPC snapshot that compacts the log: the log is rotated first, the snapshot
written to a temporary file, fsynced and renamed, and only then are older logs deleted, so a
crash at any point leaves a loadable state. Raw passthrough samples are kept columnar (one record
per batch), not one entry per sample.

Columnar aggregations emit ``WindowBatch`` records (all groups whose window closed together, as
key and state columns); they are stored and persisted as one record each (log kind 3) and turned
into per-entry ``SketchEntry`` objects only when the entry-based read API asks, once, in insertion
order — so writing per-series windows costs no Python per window. ``window_batches`` reads them
columnar. Logs and snapshots written before kind 3 existed load unchanged. Batches naming their
keys by worker rows are coded by compiled kernels into one reused scratch buffer and framed there
(XXH64-checked frames), so a window close is one contiguous ``writev`` with no per-column pieces.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from precompute import batch_codec as codec
from precompute.accumulators.base import Accumulator, pack_keys
from precompute.window_batch import KeyRows, WindowBatch, _is_run
from storage.sketch_checksum import frame_check
from storage.sketch_log import _LogWriter, _writev_all
from storage.sketch_records import (
    _ENTRY,
    _FRAME,
    _KIND_BATCH,
    _KIND_KEYS,
    _XXH_FRAME,
    Buffer,
    Chunk,
    RawBatch,
    SketchEntry,
    _decode,
    _encode_batch,
    _encode_raw,
    _entry_of,
    _entry_pieces,
    _frame_batch_into,
    _frame_ok,
    _framed,
    _KeyRecord,
    _materialize,
)

Key = tuple[str, ...]
_SNAPSHOT = "sketches.arrow"


class SketchStore:
    """Thread-safe; ``directory=None`` keeps everything in memory only."""

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        retention_ms: int | None = None,
        fsync: bool = False,
        compact_every: int = 100_000,
        compact_interval_s: float = 600.0,
        background_writes: bool = False,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.retention_ms = retention_ms
        self.fsync = fsync
        self.compact_every = compact_every
        self.compact_interval_s = compact_interval_s
        self._last_compact = time.monotonic()
        self._lock = threading.RLock()
        # Per aggregation: what was appended, in order (entries and window batches), and the
        # entry view materialized from its first ``_done[agg]`` chunks.
        self._chunks: dict[int, list[Chunk]] = defaultdict(list)
        self._flat: dict[int, list[SketchEntry]] = defaultdict(list)
        self._done: dict[int, int] = defaultdict(int)
        self._counts: dict[int, int] = defaultdict(int)
        # Persisted per-aggregation key tables: window batches on disk name their keys by id, so
        # a batch of per-series windows writes its keys once, not at every slide. Worker key
        # tables map onto them through ``_row_maps`` (Python once per new key).
        self._keys: dict[int, list[Key]] = defaultdict(list)
        self._key_index: dict[int, dict[Key, int]] = defaultdict(dict)
        self._row_maps: dict[tuple[int, int], tuple[list[Key], np.ndarray]] = {}
        self._raw: dict[int, list[RawBatch]] = defaultdict(list)
        self._since_compact = 0
        self._generation = 0
        self._log: int | None = None
        self._scratch = np.empty(0, dtype=np.uint8)  # ``_write_chunks``' reused record buffer
        self.appended_total = 0
        # By default an append returns once its records are in the OS (a process crash keeps
        # them) or, with fsync, on disk. ``background_writes`` (no fsync) hands records to a
        # writer thread instead: cheaper for the caller, but a process crash can lose the last
        # few appends — opt-in only, since windows lost that way are answered from raw data.
        use_writer = background_writes and directory is not None and not fsync
        self._writer = _LogWriter() if use_writer else None
        if self._writer is not None:
            atexit.register(self.close)
        if self.directory is not None:
            codec.warm()  # compiled (or loaded) now, not inside the first window closes
            frame_check(b"")
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    # --- persistence ------------------------------------------------------------------------

    def _log_path(self, gen: int) -> Path:
        assert self.directory is not None
        return self.directory / f"sketches.{gen:08d}.log"

    def _load(self) -> None:
        assert self.directory is not None
        snap_gen = -1
        snap = self.directory / _SNAPSHOT
        if snap.exists():
            with pa.memory_map(str(snap)) as source:
                table = ipc.open_file(source).read_all()
            snap_gen = int((table.schema.metadata or {}).get(b"generation", b"-1"))
            for record in table.column("payload").to_pylist():
                self._index(_decode(memoryview(record), self._keys))
        gens = sorted(int(p.name.split(".")[1]) for p in self.directory.glob("sketches.*.log"))
        for gen in gens:
            if gen <= snap_gen:
                self._log_path(gen).unlink(missing_ok=True)
                continue
            self._replay(self._log_path(gen))
        self._generation = max([snap_gen + 1, *(g + 1 for g in gens)])
        self._open_log()

    def _replay(self, path: Path) -> None:
        data = path.read_bytes()
        view, offset, good = memoryview(data), 0, 0
        while offset + _FRAME.size <= len(data):
            word, check = _FRAME.unpack_from(view, offset)
            end = offset + _FRAME.size + (word & ~_XXH_FRAME)
            payload = view[offset + _FRAME.size : end]
            if end > len(data) or not _frame_ok(word, check, payload):
                break
            self._index(_decode(payload, self._keys))
            offset = good = end
        if good < len(data):  # torn or corrupt tail from a crash: drop it
            with open(path, "r+b") as fh:
                fh.truncate(good)

    def _open_log(self) -> None:
        path = self._log_path(self._generation)
        self._log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write(self, payloads: Iterable[bytes]) -> None:
        self._write_pieces([p] for p in payloads)

    def _write_pieces(self, records: Iterable[Sequence[Buffer]]) -> None:
        """Frame records given as pieces (a record is their concatenation) and write them in one
        ``writev``: length and crc come from the pieces, so large column buffers are neither
        concatenated nor copied. The bytes on disk are those of one framed ``write``."""
        if self._log is not None:
            self._submit(_framed(records))

    def _submit(self, iov: list[Buffer]) -> None:
        """Write ``iov`` to the log: before returning (and fsynced with ``fsync``), or through
        the writer thread — which needs bytes nothing will overwrite, not views of scratch."""
        assert self._log is not None
        if self._writer is not None:
            self._writer.submit(self._log, iov)
            return
        _writev_all(self._log, iov)
        if self.fsync:
            os.fsync(self._log)

    def _write_chunks(self, chunks: Sequence[Chunk]) -> None:
        """The log records of ``chunks``, in order, in one ``writev``. Window batches naming
        their keys by worker rows (per-series windows, every slide) are coded by compiled
        kernels into one reused scratch buffer, framed in place: no pieces, no temporaries, one
        contiguous span to checksum and write. Other records go as framed pieces between."""
        coded = [c for c in chunks if isinstance(c, WindowBatch) and isinstance(c.keys, KeyRows)]
        if not coded or not codec.ENABLED:
            self._write_pieces([r for c in chunks for r in self._chunk_pieces(c)])
            return
        buf = self._scratch_for(sum(_FRAME.size + _ENTRY.size + b.record_bound() for b in coded))
        iov: list[Buffer] = []
        span = pos = 0  # scratch bytes from ``span`` to ``pos`` are framed, not yet in ``iov``
        for c in chunks:
            coded_here = isinstance(c, WindowBatch) and isinstance(c.keys, KeyRows)
            if coded_here:
                ids, run, others = self._batch_ids(c)  # type: ignore[arg-type]
                records = [[k] for k in others]
            else:
                records = self._chunk_pieces(c)
            if records:  # pieces between scratch spans keep the log order
                if pos > span:
                    iov.append(self._span(buf, span, pos))
                iov += _framed(records)
                span = pos
            if coded_here:
                pos = _frame_batch_into(buf, pos, c, ids, run)  # type: ignore[arg-type]
        if pos > span:
            iov.append(self._span(buf, span, pos))
        self._submit(iov)

    def _span(self, buf: np.ndarray, start: int, end: int) -> Buffer:
        # The writer thread writes after the next append may have reused the scratch: a copy.
        view = memoryview(buf[start:end])
        return bytes(view) if self._writer is not None else view

    def _scratch_for(self, size: int) -> np.ndarray:
        """The reused record buffer, at least ``size`` bytes (lock held; a synchronous write
        is done with it before the next append, the writer thread is given copies)."""
        if self._scratch.shape[0] < size:
            self._scratch = np.empty(max(size, 2 * self._scratch.shape[0]), dtype=np.uint8)
        return self._scratch

    def _batch_ids(self, chunk: WindowBatch) -> tuple[np.ndarray, bool, list[bytes]]:
        """Store key ids of a batch with ``KeyRows`` keys, whether they are one ascending run,
        and the key records to write before it (keys the store names for the first time)."""
        keys = chunk.keys
        assert isinstance(keys, KeyRows)
        if keys.table is self._keys[chunk.aggregation_id]:  # loaded from disk: store ids
            ids = np.asarray(keys.rows, dtype=np.int64)
            return ids, _is_run(ids), []
        return self._store_ids(chunk.aggregation_id, keys)

    def _index(self, item: SketchEntry | RawBatch | WindowBatch | _KeyRecord) -> None:
        if isinstance(item, _KeyRecord):
            table = self._keys[item.aggregation_id]
            if item.start < len(table):  # never written so; keep earlier batches' table intact
                table = self._keys[item.aggregation_id] = table[: item.start]
                self._key_index.pop(item.aggregation_id, None)
            table.extend(item.keys)
            index = self._key_index[item.aggregation_id]
            for i, key in enumerate(item.keys, item.start):
                index.setdefault(key, i)
            return
        if isinstance(item, RawBatch):
            self._raw[item.aggregation_id].append(item)
            return
        self._chunks[item.aggregation_id].append(item)
        self._counts[item.aggregation_id] += len(item) if isinstance(item, WindowBatch) else 1

    def _entry_view(self, aggregation_id: int) -> list[SketchEntry]:
        """The materialized entries of an aggregation, brought up to date (lock held)."""
        chunks, flat = self._chunks.get(aggregation_id, []), self._flat[aggregation_id]
        for chunk in chunks[self._done[aggregation_id] :]:
            if isinstance(chunk, WindowBatch):
                flat += _materialize(chunk)
            else:
                flat.append(chunk)
        self._done[aggregation_id] = len(chunks)
        return flat

    # --- writes -----------------------------------------------------------------------------

    def append(self, entries: Sequence[SketchEntry]) -> None:
        if not entries:
            return
        with self._lock:
            self._write_pieces(_entry_pieces(e) for e in entries)
            for e in entries:
                self._index(e)
            self._after_write(len(entries))

    def append_outputs(self, outputs: Sequence[tuple[object, Accumulator] | WindowBatch]) -> None:
        """Append what the engine emits: ``(PrecomputedOutput, Accumulator)`` pairs and
        ``WindowBatch`` records (kept columnar until read)."""
        chunks: list[Chunk] = []
        for out in outputs:
            if isinstance(out, WindowBatch):
                if len(out):
                    chunks.append(out)
                continue
            chunks.append(_entry_of(*out))
        if not chunks:
            return
        with self._lock:
            if self._log is not None:
                self._write_chunks(chunks)
            for c in chunks:
                self._index(c)
            entries = sum(len(c) if isinstance(c, WindowBatch) else 1 for c in chunks)
            self._after_write(entries, records=len(chunks))

    def append_raw(self, raw: RawBatch) -> None:
        with self._lock:
            self._write([_encode_raw(raw)])
            self._raw[raw.aggregation_id].append(raw)
            self._after_write(1)

    def _encode_chunk(self, chunk: Chunk) -> list[bytes]:
        return [b"".join(pieces) for pieces in self._chunk_pieces(chunk)]

    def _chunk_pieces(self, chunk: Chunk) -> list[list[Buffer]]:
        """Log records for a chunk (lock held): a window batch whose keys are rows of a key table
        is written as key ids, preceded by a key record for keys the store has not seen."""
        if isinstance(chunk, SketchEntry):
            return [_entry_pieces(chunk)]
        keys = chunk.keys
        if not isinstance(keys, KeyRows):
            return [[_encode_batch(chunk)]]
        agg = chunk.aggregation_id
        ids, _, out = self._batch_ids(chunk)
        head = _ENTRY.pack(_KIND_BATCH, agg, chunk.window_start, chunk.window_end)
        pieces = chunk.to_buffers(ids)
        return [*([k] for k in out), [head, *pieces]]

    def _store_ids(self, agg: int, keys: KeyRows) -> tuple[np.ndarray, bool, list[bytes]]:
        """``_batch_ids`` for keys that are rows of a worker's key table."""
        table, rows = keys.table, keys.rows
        known = self._row_maps.get((agg, id(table)))
        mapping = known[1] if known is not None and known[0] is table else np.zeros(0, np.int64)
        if codec.ENABLED:  # steady state: every key named already, found in one compiled pass
            ids, named, run = codec.map_ids(mapping, rows)
            if named:
                return ids, run, []
        need = int(rows.max()) + 1 if rows.shape[0] else 0
        if mapping.shape[0] < need:
            mapping = np.concatenate([mapping, np.full(need - mapping.shape[0], -1, np.int64)])
            self._row_maps[(agg, id(table))] = (table, mapping)  # holds the table: ids unique
        ids = mapping[rows]
        if not rows.shape[0] or int(ids.min()) >= 0:
            return ids, _is_run(ids), []
        # A batch's rows are distinct (one per group); new store ids in ascending row order.
        missing = np.sort(rows[ids < 0])
        new_keys = [table[r] for r in missing.tolist()]
        store_keys, index = self._keys[agg], self._key_index[agg]
        first = len(store_keys)
        found = list(map(index.get, new_keys))  # keys the store named before (a restart)
        if found.count(None) == len(found):  # all new: named in one go
            sids = np.arange(first, first + len(new_keys), dtype=np.int64)
            index.update(zip(new_keys, sids.tolist(), strict=True))
            store_keys.extend(new_keys)
            new = new_keys
        else:
            new = []
            for i, key in enumerate(new_keys):
                if found[i] is None:
                    found[i] = index[key] = len(store_keys)
                    store_keys.append(key)
                    new.append(key)
            sids = np.array(found, dtype=np.int64)
        mapping[missing] = sids
        out = [_ENTRY.pack(_KIND_KEYS, agg, first, 0) + pack_keys(new)] if new else []
        ids = mapping[rows]
        return ids, _is_run(ids), out

    def _after_write(self, n: int, records: int | None = None) -> None:
        self.appended_total += n
        # Compaction bounds the log to replay, which is per record: a window batch counts once
        # (counting its entries would rewrite the snapshot every few slides of per-series data).
        self._since_compact += n if records is None else records
        # Compact by volume, and by time so that retention applies even when windows are rare.
        due = self._since_compact >= self.compact_every or (
            time.monotonic() - self._last_compact >= self.compact_interval_s
        )
        if due:
            self.compact()

    def compact(self, now_ms: int | None = None) -> None:
        """Apply retention, write an Arrow snapshot of everything, drop the covered logs."""
        with self._lock:
            self.apply_retention(now_ms)
            self._last_compact = time.monotonic()
            self._since_compact = 0
            if self.directory is None:
                return
            covered = self._generation
            assert self._log is not None
            self.flush()
            os.close(self._log)
            self._generation += 1
            self._open_log()
            # Chunks first (they may extend key tables), then the tables ahead of them.
            body = [p for cs in self._chunks.values() for c in cs for p in self._encode_chunk(c)]
            body = [p for p in body if _ENTRY.unpack_from(p, 0)[0] != _KIND_KEYS]
            payloads = [
                _ENTRY.pack(_KIND_KEYS, agg, 0, 0) + pack_keys(keys)
                for agg, keys in self._keys.items()
                if keys
            ]
            payloads += body
            payloads += [_encode_raw(r) for rs in self._raw.values() for r in rs]
            table = pa.table(
                {"payload": pa.array(payloads, type=pa.binary())},
                metadata={"generation": str(covered)},
            )
            tmp = self.directory / (_SNAPSHOT + ".tmp")
            with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / _SNAPSHOT)
            for gen in range(covered + 1):
                self._log_path(gen).unlink(missing_ok=True)
            self._since_compact = 0

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Drop windows ending before ``now − retention``; returns how many were dropped."""
        if self.retention_ms is None:
            return 0
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - self.retention_ms
        dropped = 0
        with self._lock:
            for agg, chunks in self._chunks.items():
                keep = [c for c in chunks if c.window_end >= cutoff]
                if len(keep) == len(chunks):
                    continue
                # Kept entries keep their identity: readers caching by position see a rebuilt
                # log only where it really changed.
                done = self._done[agg]
                self._done[agg] = sum(1 for c in chunks[:done] if c.window_end >= cutoff)
                self._flat[agg] = [e for e in self._flat[agg] if e.window_end >= cutoff]
                self._chunks[agg] = keep
                total = sum(len(c) if isinstance(c, WindowBatch) else 1 for c in keep)
                dropped += self._counts[agg] - total
                self._counts[agg] = total
            for agg, raws in self._raw.items():
                self._raw[agg] = [
                    r for r in raws if r.timestamps.shape[0] and r.timestamps.max() >= cutoff
                ]
        return dropped

    def remove_aggregation(self, aggregation_id: int) -> None:
        with self._lock:
            for table in (self._chunks, self._flat, self._done, self._counts, self._raw):
                table.pop(aggregation_id, None)

    def flush(self) -> None:
        """Wait until every appended record is written to the log (not fsynced)."""
        with self._lock:
            if self._writer is not None:
                self._writer.drain()

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                try:
                    if self._writer is not None:
                        self._writer.stop()
                finally:
                    os.fsync(self._log)
                    os.close(self._log)
                    self._log = None

    # --- reads ------------------------------------------------------------------------------

    def entries(
        self, aggregation_id: int, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[SketchEntry]:
        """Entries whose window ``(start, end]`` lies inside ``[start_ms, end_ms]``, ordered by
        window end, key and insertion."""
        lo = start_ms if start_ms is not None else np.iinfo(np.int64).min
        hi = end_ms if end_ms is not None else np.iinfo(np.int64).max
        with self._lock:
            found = [
                e
                for e in self._entry_view(aggregation_id)
                if e.window_start >= lo and e.window_end <= hi
            ]
        return sorted(found, key=lambda e: (e.window_end, e.key))

    def windows(
        self, aggregation_id: int, start_ms: int | None = None, end_ms: int | None = None
    ) -> dict[tuple[Key, int, int], list[SketchEntry]]:
        """Entries grouped per (key, start, end): what the query side merges."""
        grouped: dict[tuple[Key, int, int], list[SketchEntry]] = {}
        for e in self.entries(aggregation_id, start_ms, end_ms):
            grouped.setdefault((e.key, e.window_start, e.window_end), []).append(e)
        return grouped

    def log_view(self, aggregation_id: int) -> list[SketchEntry]:
        """The aggregation's entries in insertion order (a shallow copy). Appends only extend it;
        retention and removal rebuild it — readers that cache by position check the prefix."""
        with self._lock:
            return list(self._entry_view(aggregation_id))

    def chunk_view(self, aggregation_id: int) -> list[SketchEntry | WindowBatch]:
        """The aggregation's records in insertion order — ``WindowBatch`` records unexpanded —
        as a shallow copy. Appends only extend it; retention and removal rebuild it (readers
        that cache by position check the prefix). Do not mutate the records."""
        with self._lock:
            return list(self._chunks.get(aggregation_id, []))

    def chunk_mark(self, aggregation_id: int, seen: int) -> tuple[int, object, object]:
        """(record count, first record, record ``seen - 1``) of ``chunk_view``, read together
        without copying the list: what a reader that indexed ``seen`` records checks before
        asking for the view again."""
        with self._lock:
            chunks = self._chunks.get(aggregation_id, [])
            n = len(chunks)
            return n, chunks[0] if n else None, chunks[seen - 1] if 0 < seen <= n else None

    def window_batches(
        self, aggregation_id: int, start_ms: int | None = None, end_ms: int | None = None
    ) -> tuple[list[WindowBatch], list[SketchEntry]]:
        """Columnar read: the window batches, and the single entries (late mini-accumulators,
        non-columnar types), whose windows lie inside ``[start_ms, end_ms]``, each in insertion
        order. A batch's ``keys`` and ``columns`` are row-aligned arrays; do not mutate them."""
        lo = start_ms if start_ms is not None else np.iinfo(np.int64).min
        hi = end_ms if end_ms is not None else np.iinfo(np.int64).max
        with self._lock:
            chunks = [
                c
                for c in self._chunks.get(aggregation_id, [])
                if c.window_start >= lo and c.window_end <= hi
            ]
        batches = [c for c in chunks if isinstance(c, WindowBatch)]
        return batches, [c for c in chunks if isinstance(c, SketchEntry)]

    def raw(self, aggregation_id: int) -> list[RawBatch]:
        with self._lock:
            return list(self._raw.get(aggregation_id, []))

    def stats(self) -> dict[str, float]:
        with self._lock:
            return {
                "sketch_entries": float(sum(self._counts.values())),
                "sketch_raw_batches": float(sum(len(v) for v in self._raw.values())),
                "sketch_appended_total": float(self.appended_total),
            }
