"""The embedded store's public API: ``Storage``.

Write path (``append``): validate the whole batch (nothing is stored on error), then under one
writer lock intern new series, write one WAL record, apply the samples to the head; outside the
lock, optionally wait for a group fsync, then hand the ``DurableBatch`` to listeners.

Read path (``select``): resolve matchers on the label index, order the series by label set, gather
each source's samples (blocks oldest first, then head segments, then the head's unsorted tail,
i.e. write order) and, only when more than one source contributed, merge them with one stable
sort keeping the last written sample of each ``(series, ts)``.

Head -> blocks: when the head spans 1.5 block durations, everything before the newest complete
block boundary is cut into blocks (one per aligned ``block_duration_ms`` window, late samples
included) in the background, then the WAL is trimmed and compaction/retention run; see
``storage/maintenance.py``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from promql.errors import BadDataError
from promql.types import Matcher
from storage.append_log import AppendLog
from storage.arrays import Runs, mark_overlapping, merge_runs, sort_dedupe
from storage.block import Block, list_block_dirs
from storage.dirlock import DirectoryLock
from storage.head import Head
from storage.index import LabelIndex, validate_labels
from storage.maintenance import Maintenance
from storage.model import DurableBatch, Labels, MetricMetadata, SampleBatch
from storage.wal import WAL, encode_cut, encode_record

log = logging.getLogger(__name__)

_I64 = np.int64
_MIN_TS = -(1 << 62)
_MAX_TS = 1 << 62
_CHECKPOINT_SAMPLES = 1 << 20


@dataclass(frozen=True)
class StorageOptions:
    fsync: bool = False
    """fsync the WAL before acknowledging (group commit across threads)."""
    block_duration_ms: int = 2 * 3600 * 1000
    retention_ms: int | None = None
    """Blocks entirely older than (newest sample - retention) are deleted; None keeps all."""
    wal_segment_bytes: int = 128 << 20
    head_freeze_samples: int = 1 << 16
    compaction_levels: int = 4
    """Compacted block ranges are block_duration * 3**level for level < compaction_levels."""
    late_cut_interval_s: float = 60.0
    """Minimum time between cuts triggered only by late samples (not by time advancing)."""
    background_maintenance: bool = True
    """Cut/compact in a background thread; False runs them in the appending thread (tests)."""


@dataclass(frozen=True)
class SeriesSet:
    labels: list[Labels]
    series_ids: np.ndarray
    offsets: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def series(self, i: int) -> tuple[Labels, np.ndarray, np.ndarray]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.labels[i], self.timestamps[lo:hi], self.values[lo:hi]


def _empty_set() -> SeriesSet:
    z = np.zeros(0, dtype=_I64)
    return SeriesSet([], z, np.zeros(1, dtype=_I64), z, np.zeros(0, dtype=np.float64))


class Storage:
    def __init__(self, data_dir: Path | None, options: StorageOptions) -> None:
        self.options = options
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._index = LabelIndex()
        self._head = Head(freeze_samples=options.head_freeze_samples)
        self.appends = AppendLog()  # the earliest timestamp written since a mark (read-only)
        self._blocks: list[Block] = []
        self._wal: WAL | None = None
        self._in_wal = np.zeros(0, dtype=bool)
        self._metadata: dict[str, dict[tuple[str, str, str], MetricMetadata]] = {}
        self._listeners: list[Callable[[DurableBatch], None]] = []
        self._next_seq = 1
        self._closed = False
        self._dir_lock: DirectoryLock | None = None
        self._maint = Maintenance(self, options.background_maintenance)
        self.counters: dict[str, float] = {
            "samples_appended": 0,
            "batches_appended": 0,
            "compactions": 0,
            "compaction_seconds": 0.0,
            "blocks_cut": 0,
            "blocks_deleted": 0,
            "wal_truncated_bytes": 0,
        }

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike, options: StorageOptions | None = None) -> Storage:
        root = Path(data_dir)
        root.mkdir(parents=True, exist_ok=True)
        dir_lock = DirectoryLock(root)
        try:
            db = cls._open_locked(root, options or StorageOptions())
        except BaseException:
            dir_lock.release()
            raise
        db._dir_lock = dir_lock
        return db

    @classmethod
    def _open_locked(cls, root: Path, options: StorageOptions) -> Storage:
        db = cls(root, options)
        for path in list_block_dirs(root / "blocks"):
            block = Block(path)
            block.bind(db._index)
            db._blocks.append(block)
            db._next_seq = max(db._next_seq, block.seq + 1)
        db._wal = WAL(root / "wal", db.options.wal_segment_bytes)
        db._replay()
        db._wal.open_for_append()
        db.counters["wal_truncated_bytes"] = db._wal.truncated_bytes
        with db._lock:
            if len(db._wal.segments()) > 1:
                # Segments of an earlier process use that process's series ids; one full
                # checkpoint now means every segment left is in this process's id space.
                db._checkpoint_full()
        # Inline: a cut may be due, a crash between writing a compacted block and deleting its
        # inputs leaves overlapping blocks, and retention may be due after downtime.
        db._maint.run()
        return db

    @classmethod
    def in_memory(cls, options: StorageOptions | None = None) -> Storage:
        return cls(None, options or StorageOptions())

    def _replay(self) -> None:
        assert self._wal is not None
        remap_arr = np.zeros(0, dtype=_I64)  # WAL series id -> store id (-1: undefined)
        n = 0
        for rec in self._wal.replay():
            if rec.cut is not None:
                continue  # the WAL already left out the samples the cut persisted
            if rec.series:
                wal_ids = np.array([i for i, _ in rec.series], dtype=_I64)
                ids = np.array([self._index.add(lab) for _, lab in rec.series], dtype=_I64)
                top = int(wal_ids.max()) + 1
                if top > remap_arr.shape[0]:
                    grown = np.full(max(top, 2 * remap_arr.shape[0]), -1, dtype=_I64)
                    grown[: remap_arr.shape[0]] = remap_arr
                    remap_arr = grown
                remap_arr[wal_ids] = ids
            for m in rec.metadata:
                self._add_metadata(m)
            if rec.ts.shape[0]:
                if rec.sid.max() >= remap_arr.shape[0] or (remap_arr[rec.sid] < 0).any():
                    raise OSError("WAL references a series it never defined")
                self._head.append(remap_arr[rec.sid], rec.ts, rec.values)
                n += rec.ts.shape[0]
        log.info("WAL replay: %d samples, %d series", n, len(self._index))

    # -- writing -------------------------------------------------------------------------------

    def add_listener(self, fn: Callable[[DurableBatch], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[DurableBatch], None]) -> None:
        with self._lock:
            self._listeners.remove(fn)

    def append(self, batch: SampleBatch) -> DurableBatch:
        """Validate, write to the WAL, apply to the head, notify listeners (see module doc)."""
        sample_series, ts, values = _validated_arrays(batch)
        for m in batch.metadata:
            _validate_metadata(m)
        with self._lock:
            if self._closed:
                raise RuntimeError("storage is closed")
            resolved = self._index.resolve(batch.series, batch.series_keys)
            if not resolved[1]:
                for i, sid in enumerate(resolved[0]):
                    if sid < 0:
                        validate_labels(batch.series[i])
            series_ids = self._index.intern(batch.series, batch.series_keys, resolved)
            sample_ids = series_ids[sample_series]
            sample_ids.flags.writeable = False  # shared by the head and every listener
            seq = self._log(series_ids, batch.metadata, sample_ids, ts, values)
            self._head.append(sample_ids, ts, values)
            if ts.shape[0]:
                self.appends.wrote(int(ts.min()))
            for m in batch.metadata:
                self._add_metadata(m)
            self.counters["samples_appended"] += ts.shape[0]
            self.counters["batches_appended"] += 1
            cut_due = self._maint.cut_boundary() is not None
            listeners = list(self._listeners)
        if self._wal is not None and self.options.fsync:
            self._wal.sync(seq)
        durable = DurableBatch(batch, series_ids, sample_ids)
        for fn in listeners:
            try:
                fn(durable)
            except Exception:
                # The batch is durable; failing the request would only make the client resend
                # it. A listener's error is its own to report.
                log.exception("ingest listener %r failed", fn)
        if cut_due:
            self._maint.trigger()
        return durable

    def _log(
        self,
        series_ids: np.ndarray,
        metadata: list[MetricMetadata],
        sample_ids: np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
    ) -> int:
        """Write one WAL record defining the series this WAL has not seen yet."""
        if self._wal is None:
            return 0
        n = len(self._index)
        if self._in_wal.shape[0] < n:
            self._in_wal = np.concatenate((self._in_wal, np.zeros(n - len(self._in_wal), bool)))
        new = np.unique(series_ids[~self._in_wal[series_ids]])
        defs = [(int(i), self._index.labels(int(i))) for i in new]
        payload = encode_record(defs, metadata, sample_ids, ts, values)
        seq = self._wal.write(payload, int(ts.max()) if ts.shape[0] else None)
        self._in_wal[new] = True
        return seq

    def _add_metadata(self, m: MetricMetadata) -> None:
        entries = self._metadata.setdefault(m.metric_family_name, {})
        key = (m.type, m.help, m.unit)
        entries.pop(key, None)
        entries[key] = m

    # -- reading -------------------------------------------------------------------------------

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> SeriesSet:
        """Series matching all matchers with samples in ``[mint_ms, maxt_ms]``, label-sorted."""
        with self._lock:
            ids = self._index.sort_ids(self._index.select(matchers))
            if ids.shape[0] == 0 or mint_ms > maxt_ms:
                return _empty_set()
            blocks = [b for b in self._blocks if b.overlaps(mint_ms, maxt_ms)]
            head = self._head.snapshot()
            index = self._index
        sources = [r for b in blocks for r in b.runs(ids, mint_ms, maxt_ms)]
        sources.extend(_head_runs(head, ids, mint_ms, maxt_ms))
        sources = [r for r in sources if r.group.shape[0]]
        if not sources:
            return _empty_set()
        all_offsets, ts, vals = merge_runs(sources, ids.shape[0])
        present = np.flatnonzero(all_offsets[1:] > all_offsets[:-1])
        offsets = np.append(all_offsets[present], all_offsets[-1])
        offsets -= offsets[0]
        sel = ids[present]
        return SeriesSet(index.labels_of(sel.tolist()), sel, offsets, ts, vals)

    def _present_ids(
        self, matcher_sets: Sequence[Sequence[Matcher]] | None, mint: int | None, maxt: int | None
    ) -> np.ndarray:
        """Sorted ids of series matching any matcher set whose data overlaps the time range
        (judged by per-series first/last sample in each block and head segment)."""
        lo = _MIN_TS if mint is None else mint
        hi = _MAX_TS if maxt is None else maxt
        with self._lock:
            if matcher_sets:
                sets = [self._index.select(ms) for ms in matcher_sets]
                ids = sets[0] if len(sets) == 1 else np.unique(np.concatenate(sets))
            else:
                ids = np.arange(len(self._index), dtype=_I64)
            blocks = [b for b in self._blocks if b.overlaps(lo, hi)]
            head = self._head.snapshot()
            n = len(self._index)
        if ids.shape[0] == 0:
            return ids
        present = np.zeros(ids.shape[0], dtype=bool)
        # Per-series bounds: like Prometheus (which answers at chunk granularity), a series
        # whose samples straddle the range without one inside it still counts.
        for b in blocks:
            mark_overlapping(*b.bounds_by_global, ids, lo, hi, present)
        for seg in head.segments:
            if seg.sids.shape[0]:
                mark_overlapping(seg.sids, *seg.series_bounds, ids, lo, hi, present)
        if head.tail:
            has = np.zeros(n, dtype=bool)
            for sid, ts, _ in head.tail:
                has[sid[(ts >= lo) & (ts <= hi)]] = True
            present |= has[ids]
        return ids[present]

    def series(
        self,
        matcher_sets: Sequence[Sequence[Matcher]],
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Labels]:
        ids = self._index.sort_ids(self._present_ids(matcher_sets, mint_ms, maxt_ms))
        if limit is not None and limit > 0:
            ids = ids[:limit]
        return self._index.labels_of(ids.tolist())

    def label_names(
        self,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        ids = self._present_ids(matcher_sets, mint_ms, maxt_ms)
        with self._lock:
            if ids.shape[0] == len(self._index):
                return self._index.label_names()
        names = {name for lab in self._index.labels_of(ids.tolist()) for name, _ in lab}
        return sorted(names)

    def label_values(
        self,
        name: str,
        matcher_sets: Sequence[Sequence[Matcher]] | None = None,
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        ids = self._present_ids(matcher_sets, mint_ms, maxt_ms)
        with self._lock:
            if ids.shape[0] == len(self._index):
                return self._index.label_values(name)
        values = {v for lab in self._index.labels_of(ids.tolist()) for n, v in lab if n == name}
        return sorted(values)

    def metadata(
        self, metric: str | None = None, limit: int | None = None
    ) -> dict[str, list[MetricMetadata]]:
        with self._lock:
            names = sorted(self._metadata) if metric is None else [metric]
            out: dict[str, list[MetricMetadata]] = {}
            for name in names:
                if limit is not None and limit >= 0 and len(out) >= limit:
                    break
                entries = self._metadata.get(name)
                if entries:
                    out[name] = list(entries.values())
            return out

    def max_time(self) -> int | None:
        """The newest sample timestamp stored (head or blocks, after WAL replay), None if empty."""
        with self._lock:
            times = [b.meta.maxt for b in self._blocks]
            if self._head.maxt is not None:
                times.append(int(self._head.maxt))
            return max(times) if times else None

    def cardinality(self, limit: int = 10) -> dict[str, Any]:
        """Prometheus' ``/api/v1/status/tsdb`` figures: head statistics and the ``limit``
        largest entries of each cardinality table (series per metric name, values per label
        name, bytes of values per label name, series per label pair)."""
        with self._lock:
            pairs = self._index.pair_counts()
            n_series = len(self._index)
            head = self._head.snapshot()
            mint, maxt = self._head.mint, self._head.maxt
        runs = sum(int(seg.sids.shape[0]) for seg in head.segments)
        if head.tail:
            runs += int(np.unique(np.concatenate([c[0] for c in head.tail])).shape[0])

        def top(items: dict[str, int]) -> list[dict[str, Any]]:
            ranked = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            return [{"name": k, "value": v} for k, v in ranked]

        return {
            "headStats": {
                "numSeries": n_series,
                "numLabelPairs": sum(len(v) for v in pairs.values()),
                # Per-series runs of head samples: the head's counterpart of TSDB chunks.
                "chunkCount": runs,
                # An empty head reports the extremes, as Prometheus' head does.
                "minTime": mint if mint is not None else (1 << 63) - 1,
                "maxTime": maxt if maxt is not None else -(1 << 63),
            },
            "seriesCountByMetricName": top(pairs.get("__name__", {})),
            "labelValueCountByLabelName": top({k: len(v) for k, v in pairs.items()}),
            "memoryInBytesByLabelName": top(
                {k: sum(len(x.encode()) for x in v) for k, v in pairs.items()}
            ),
            "seriesCountByLabelValuePair": top(
                {f"{k}={x}": c for k, v in pairs.items() for x, c in v.items()}
            ),
        }

    def stats(self) -> dict[str, float]:
        with self._lock:
            out = dict(self.counters)
            out["series"] = len(self._index)
            out["head_samples"] = len(self._head)
            out["head_segments"] = len(self._head.segments)
            out["blocks"] = len(self._blocks)
            out["block_samples"] = sum(b.meta.n_samples for b in self._blocks)
            out["block_bytes"] = sum(b.disk_bytes() for b in self._blocks)
            out["wal_bytes"] = self._wal.size_bytes() if self._wal else 0
            out["wal_fsyncs"] = self._wal.fsyncs if self._wal else 0
            out["disk_bytes"] = out["block_bytes"] + out["wal_bytes"]
            return out

    # -- WAL checkpoints (maintenance in storage/maintenance.py) -------------------------------

    def _log_cut(self, boundary: int, closed: int) -> None:
        """After a cut: log its marker, then replace the segments it made redundant by a
        definitions-only checkpoint (writer lock held)."""
        if self._wal is None:
            return
        self._wal.write(encode_cut(boundary, closed))
        upto = self._wal.persisted_prefix(closed, boundary)
        if upto is not None:
            self._wal.write_checkpoint(upto, [self._definitions_record()], None)
            self._in_wal = np.ones(len(self._index), dtype=bool)

    def _checkpoint_full(self) -> None:
        """Rotate the WAL and replace every closed segment by one checkpoint holding series,
        metadata and all head samples (writer lock held, no cut in progress)."""
        if self._wal is None:
            return
        closed = self._wal.rotate()
        payloads = [self._definitions_record()]
        seg = self._head.all_sorted()
        sid = seg.sid
        for lo in range(0, len(seg), _CHECKPOINT_SAMPLES):
            hi = lo + _CHECKPOINT_SAMPLES
            payloads.append(encode_record([], [], sid[lo:hi], seg.ts[lo:hi], seg.values[lo:hi]))
        self._wal.write_checkpoint(closed, payloads, self._head.maxt)
        self._in_wal = np.ones(len(self._index), dtype=bool)

    def _definitions_record(self) -> bytes:
        defs = [(i, self._index.labels(i)) for i in range(len(self._index))]
        meta = [m for entries in self._metadata.values() for m in entries.values()]
        z = np.zeros(0, dtype=_I64)
        return encode_record(defs, meta, z, z, np.zeros(0, np.float64))

    def wait_for_maintenance(self) -> None:
        """Block until no background cut or compaction is running (tests, shutdown)."""
        self._maint.wait()

    def flush(self) -> None:
        """Finish maintenance, then checkpoint the WAL so the next open replays one file."""
        with self._maint._lock, self._lock:
            if self._wal is not None and not self._closed:
                self._checkpoint_full()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._maint.wait()
        with self._lock:
            if self._wal is not None:
                self._wal.close()
            if self._dir_lock is not None:
                self._dir_lock.release()


def _validated_arrays(batch: SampleBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch's arrays as fresh int64/int64/float64 copies, or BadDataError."""
    try:
        ss = np.array(batch.sample_series, dtype=_I64, copy=True)
        ts_in = np.asarray(batch.timestamps)
        if ts_in.dtype.kind == "f" and (
            not np.isfinite(ts_in).all() or (ts_in != np.floor(ts_in)).any()
        ):
            raise BadDataError("timestamps must be finite integers (milliseconds)")
        ts = np.array(ts_in, dtype=_I64, copy=True)
        values = np.array(batch.values, dtype=np.float64, copy=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadDataError(f"malformed sample arrays: {exc}") from None
    n = ts.shape[0]
    if ss.ndim != 1 or ts.ndim != 1 or values.ndim != 1:
        raise BadDataError("sample arrays must be one-dimensional")
    if ss.shape[0] != n or values.shape[0] != n:
        raise BadDataError("sample_series, timestamps and values differ in length")
    if n and (ss.min() < 0 or ss.max() >= len(batch.series)):
        raise BadDataError("sample refers to a series index outside the batch")
    if n and (ts.min() < _MIN_TS or ts.max() > _MAX_TS):
        raise BadDataError("timestamp out of range")
    if batch.series_keys is not None and len(batch.series_keys) != len(batch.series):
        raise BadDataError("series_keys and series differ in length")
    return ss, ts, values


def _validate_metadata(m: MetricMetadata) -> None:
    for field_value in (m.metric_family_name, m.type, m.help, m.unit):
        if not isinstance(field_value, str):
            raise BadDataError(f"metadata fields must be strings: {m!r}")
        try:
            field_value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadDataError(f"invalid UTF-8 in metadata for {m.metric_family_name!r}") from None


def _head_runs(head, ids: np.ndarray, mint: int, maxt: int) -> list[Runs]:
    """Head sources in write order as runs keyed by request index: segments, then the tail."""
    out = [
        seg.runs(ids, mint, maxt)
        for seg in head.segments
        if seg.sids.shape[0] and seg.maxt >= mint and seg.mint <= maxt
    ]
    if head.tail:
        out.append(_tail_runs(head.tail, ids, mint, maxt))
    return out


# Up to this many requested series, comparing each tail row with each id beats a binary search.
_FEW_IDS = 16
# Series ids up to this bound are looked up through a table (8 bytes each: 64 MiB at most).
_MAX_TABLE_IDS = 1 << 23


def _tail_runs(tail, ids: np.ndarray, mint: int, maxt: int) -> Runs:
    """The head's unsorted tail (which may repeat ``(series, ts)``) filtered to the request, then
    sorted alone (it is small) so that every source handed to the merge is sorted and unique."""
    sid, ts = (np.concatenate([c[i] for c in tail]) for i in range(2))
    top = int(max(int(ids.max()), int(sid.max()))) + 1 if ids.shape[0] and sid.shape[0] else 0
    if ids.shape[0] > _FEW_IDS and top <= _MAX_TABLE_IDS:
        # Request index per series id by table lookup: one gather per tail row (a binary
        # search per row cost ~1 ms per query over a full 64 Ki-row tail).
        index = np.full(top, -1, dtype=np.int64)
        index[ids] = np.arange(ids.shape[0], dtype=np.int64)
        at = index[sid]
        rows = np.flatnonzero((at >= 0) & (ts >= mint) & (ts <= maxt))
        request = at[rows]
    else:
        order = np.argsort(ids)
        sorted_ids = ids[order]
        if sorted_ids.shape[0] <= _FEW_IDS:
            hit = sid == sorted_ids[0]
            for x in sorted_ids[1:].tolist():
                hit |= sid == x
        else:
            k = np.minimum(np.searchsorted(sorted_ids, sid), sorted_ids.shape[0] - 1)
            hit = sorted_ids[k] == sid
        hit &= (ts >= mint) & (ts <= maxt)
        rows = np.flatnonzero(hit)
        request = order[np.searchsorted(sorted_ids, sid[rows])]
    vals = np.concatenate([c[2] for c in tail]) if len(tail) > 1 else tail[0][2]
    return Runs.of_sorted(*sort_dedupe(request, ts[rows], vals[rows]))
