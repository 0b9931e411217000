"""Write-ahead log: CRC-framed records in numbered segment files, plus checkpoints.

Frame: ``u32 payload length | u32 crc32(payload) | payload``. A payload is one whole ingest batch
(its new series definitions, metadata and columnar samples), so a torn write loses exactly one
batch that was never acknowledged. Replay stops at the first bad frame, truncates the file there
and drops any later segment (logged): what follows a corrupt record cannot be trusted in order.

``sync`` implements group commit: concurrent appenders that want an fsync wait for one in-flight
fsync; whoever finds none running fsyncs up to the newest written byte, covering everyone.

Besides batches the log holds *cut markers*: "every sample older than B in segments <= N is in
blocks" (a cut snapshots the head and rotates the WAL, then writes blocks while appends go on).
Replay skips exactly those samples, which is exactly what the cut removed from the head.

A checkpoint ``checkpoint.NNNNNNNN`` replaces segments ``<= N``: all series definitions and
metadata, plus (for a *full* checkpoint, taken on open and on flush) the head's samples. After a
cut, segments whose samples are all older than the cut boundary are replaced by a definitions-only
checkpoint, so steady operation never rewrites samples. Checkpoints are written to a temp file,
fsynced and renamed, after which the segments they replace are deleted.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from storage.model import MetricMetadata

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BII")  # record type, json length, sample count
_BATCH = 1
_CUT = 2
_CUT_BODY = struct.Struct("<qq")  # boundary, last segment the cut covers
_MAX_RECORD = 1 << 31


@dataclass(frozen=True)
class WalRecord:
    """Decoded record. A batch: ``series`` defines WAL ids, samples reference WAL ids. A cut
    marker (``cut`` set): every sample older than ``cut`` written before it is in blocks."""

    series: list[tuple[int, tuple[tuple[str, str], ...]]]
    metadata: list[MetricMetadata]
    sid: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    cut: int | None = None
    cut_closed: int = -1


def encode_cut(boundary: int, closed: int) -> bytes:
    """Marker: samples older than ``boundary`` in segments ``<= closed`` are in blocks."""
    return _HEAD.pack(_CUT, 0, 0) + _CUT_BODY.pack(boundary, closed)


def encode_record(
    series: list[tuple[int, tuple[tuple[str, str], ...]]],
    metadata: list[MetricMetadata],
    sid: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
) -> bytes:
    meta = [[m.metric_family_name, m.type, m.help, m.unit] for m in metadata]
    head_json = orjson.dumps({"s": series, "m": meta}) if series or meta else b""
    n = int(ts.shape[0])
    return b"".join(
        (
            _HEAD.pack(_BATCH, len(head_json), n),
            head_json,
            np.ascontiguousarray(sid, dtype="<i8").tobytes(),
            np.ascontiguousarray(ts, dtype="<i8").tobytes(),
            np.ascontiguousarray(values, dtype="<f8").tobytes(),
        )
    )


def decode_record(payload: bytes) -> WalRecord:
    kind, jlen, n = _HEAD.unpack_from(payload, 0)
    if kind == _CUT and len(payload) == _HEAD.size + _CUT_BODY.size:
        boundary, closed = _CUT_BODY.unpack_from(payload, _HEAD.size)
        z = np.zeros(0, dtype=np.int64)
        return WalRecord([], [], z, z, np.zeros(0, dtype=np.float64), boundary, closed)
    if kind != _BATCH or _HEAD.size + jlen + 24 * n != len(payload):
        raise ValueError("malformed WAL record")
    pos = _HEAD.size
    series: list = []
    meta: list[MetricMetadata] = []
    if jlen:
        doc = orjson.loads(payload[pos : pos + jlen])
        series = [(int(i), tuple((k, v) for k, v in lab)) for i, lab in doc["s"]]
        meta = [MetricMetadata(*m) for m in doc["m"]]
    pos += jlen
    arrays = []
    for dtype in ("<i8", "<i8", "<f8"):
        arrays.append(np.frombuffer(payload, dtype=dtype, count=n, offset=pos).copy())
        pos += 8 * n
    return WalRecord(series, meta, arrays[0], arrays[1], arrays[2])


def frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """Valid payloads from the start of ``data`` and the byte offset where validity ends."""
    out = []
    pos = 0
    end = len(data)
    while pos + _FRAME.size <= end:
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        if length >= _MAX_RECORD or start + length > end:
            break
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            break
        out.append(payload)
        pos = start + length
    return out, pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WAL:
    """Segmented WAL in ``directory``. ``write`` is called under the store's writer lock."""

    def __init__(self, directory: Path, segment_bytes: int = 128 << 20) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self._fd = -1
        self._segment = 0
        self._segment_len = 0
        self._written = 0  # total bytes written by this process (a monotone sequence number)
        self._synced = 0
        self._sync_lock = threading.Lock()
        self._sync_cond = threading.Condition(self._sync_lock)
        self._syncing = False
        # Newest sample timestamp per segment: a closed segment whose newest sample is older
        # than a later cut's boundary holds nothing the head still needs.
        self.segment_maxt: dict[int, int] = {}
        self.checkpoint_maxt: int | None = None
        self.fsyncs = 0  # group commits performed (for stats)

    # -- files ---------------------------------------------------------------------------------

    def segments(self) -> list[int]:
        return sorted(int(p.name) for p in self.dir.iterdir() if p.name.isdigit())

    def checkpoints(self) -> list[int]:
        return sorted(
            int(p.name.split(".")[1])
            for p in self.dir.iterdir()
            if p.name.startswith("checkpoint.") and p.name.split(".")[1].isdigit()
        )

    def _seg_path(self, n: int) -> Path:
        return self.dir / f"{n:08d}"

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    # -- replay --------------------------------------------------------------------------------

    def replay(self) -> Iterator[WalRecord]:
        """Records of the newest checkpoint then of later segments, without the samples that
        cut markers say are in blocks; repairs a torn or corrupt tail first.

        Must be fully consumed before ``open_for_append``.
        """
        for p in self.dir.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink()
        cps = self.checkpoints()
        sources: list[tuple[int, list[bytes]]] = []
        first = 0
        if cps:
            first = cps[-1] + 1
            data = (self.dir / f"checkpoint.{cps[-1]:08d}").read_bytes()
            payloads, valid = read_frames(data)
            if valid != len(data):
                raise OSError(f"corrupt WAL checkpoint {cps[-1]} (it was written atomically)")
            sources.append((cps[-1], payloads))
        segs = [s for s in self.segments() if s >= first]
        sources.extend(self._read_segments(segs))
        self._segment = max(segs[-1] if segs else first - 1, first - 1, 0)
        # Markers come after the data they cover, so collect them before applying anything.
        markers = [
            (rec.cut, rec.cut_closed)
            for _, payloads in sources
            for p in payloads
            if p[:1] == bytes([_CUT]) and (rec := decode_record(p)).cut is not None
        ]
        for seg, payloads in sources:
            persisted = max((b for b, closed in markers if closed >= seg), default=None)
            for p in payloads:
                rec = decode_record(p)
                if rec.cut is not None or not rec.ts.shape[0]:
                    yield rec
                    continue
                top = int(rec.ts.max())
                if seg < first:
                    old = self.checkpoint_maxt
                    self.checkpoint_maxt = top if old is None else max(old, top)
                else:
                    self._note_maxt(seg, top)
                if persisted is not None and int(rec.ts.min()) < persisted:
                    keep = rec.ts >= persisted
                    rec = WalRecord(
                        rec.series, rec.metadata, rec.sid[keep], rec.ts[keep], rec.values[keep]
                    )
                yield rec

    def _read_segments(self, segs: list[int]) -> list[tuple[int, list[bytes]]]:
        """Valid payloads per segment; truncates at the first bad frame, drops later segments."""
        out = []
        for i, seg in enumerate(segs):
            path = self._seg_path(seg)
            data = path.read_bytes()
            payloads, valid = read_frames(data)
            out.append((seg, payloads))
            if valid == len(data):
                continue
            later = segs[i + 1 :]
            log.warning(
                "WAL segment %s: corrupt or torn record at byte %d of %d; truncating%s",
                path,
                valid,
                len(data),
                f" and dropping {len(later)} later segment(s)" if later else "",
            )
            self.truncated_bytes = len(data) - valid
            with open(path, "r+b") as f:
                f.truncate(valid)
                os.fsync(f.fileno())
            for seg_after in later:
                self._seg_path(seg_after).unlink()
            break
        return out

    truncated_bytes = 0

    def open_for_append(self) -> None:
        """Start a fresh segment after replay (old ones stay until a checkpoint covers them)."""
        self._open_segment(self._segment + 1)

    def _open_segment(self, n: int) -> None:
        # Under the sync lock so an in-flight group fsync never sees its fd closed under it.
        with self._sync_cond:
            while self._syncing:
                self._sync_cond.wait()
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._synced = self._written
        self._segment = n
        self._fd = os.open(self._seg_path(n), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segment_len = os.fstat(self._fd).st_size
        _fsync_dir(self.dir)

    # -- writing -------------------------------------------------------------------------------

    def _note_maxt(self, seg: int, maxt: int) -> None:
        old = self.segment_maxt.get(seg)
        self.segment_maxt[seg] = maxt if old is None else max(old, maxt)

    def write(self, payload: bytes, maxt: int | None = None) -> int:
        """Append one record (handed to the OS on return); returns its sequence number.

        ``maxt`` is the newest sample timestamp in the record, if it has samples."""
        if self._segment_len >= self.segment_bytes:
            self._open_segment(self._segment + 1)
        if maxt is not None:
            self._note_maxt(self._segment, maxt)
        data = frame(payload)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # A half-written record followed by later good ones would read as corruption and
            # cost those records on replay: cut the partial record off before failing.
            os.ftruncate(self._fd, self._segment_len)
            raise
        self._segment_len += len(data)
        self._written += len(data)
        return self._written

    def sync(self, seq: int) -> None:
        """Block until everything up to ``seq`` is fsynced; one fsync serves all waiters."""
        with self._sync_cond:
            while True:
                if self._synced >= seq:
                    return
                if not self._syncing:
                    break
                self._sync_cond.wait()
            self._syncing = True
            target, fd = self._written, self._fd
        ok = False
        try:
            os.fsync(fd)
            self.fsyncs += 1
            ok = True
        finally:
            with self._sync_cond:
                self._syncing = False
                if ok:  # a failed fsync must leave waiters to try (and fail) themselves
                    self._synced = max(self._synced, target)
                self._sync_cond.notify_all()

    def rotate(self) -> int:
        """Close the current segment and open the next; returns the closed segment's number."""
        closed = self._segment
        self._open_segment(closed + 1)
        return closed

    def persisted_prefix(self, closed: int, boundary: int) -> int | None:
        """The newest segment ``<= closed`` such that it and all older segments only hold
        samples older than ``boundary`` (a cut made after ``closed`` was closed); else None."""
        if self.checkpoint_maxt is not None and self.checkpoint_maxt >= boundary:
            return None
        upto = None
        for seg in self.segments():
            if seg > closed:
                break
            maxt = self.segment_maxt.get(seg)
            if maxt is not None and maxt >= boundary:
                break
            upto = seg
        return upto

    def write_checkpoint(self, upto: int, payloads: list[bytes], maxt: int | None) -> None:
        """Persist ``payloads`` (newest sample ``maxt``) as checkpoint ``upto``, then delete the
        segments and checkpoints it replaces."""
        final = self.dir / f"checkpoint.{upto:08d}"
        tmp = self.dir / f"checkpoint.{upto:08d}.tmp"
        with open(tmp, "wb") as f:
            for p in payloads:
                f.write(frame(p))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        self.checkpoint_maxt = maxt
        for seg in self.segments():
            if seg <= upto:
                self._seg_path(seg).unlink()
                self.segment_maxt.pop(seg, None)
        for cp in self.checkpoints():
            if cp < upto:
                (self.dir / f"checkpoint.{cp:08d}").unlink()

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
