"""Write-ahead log: CRC-framed records in numbered segment files, plus checkpoints.

Frame: ``u32 payload length | u32 crc32(payload) | payload``. A payload is one whole ingest batch
(its new series definitions, metadata and columnar samples), so a torn write loses exactly one
batch that was never acknowledged. Replay stops at the first bad frame, truncates the file there
and drops any later segment (logged): what follows a corrupt record cannot be trusted in order.

``sync`` implements group commit: concurrent appenders that want an fsync wait for one in-flight
fsync; whoever finds none running fsyncs up to the newest written byte, covering everyone.

A checkpoint ``checkpoint.NNNNNNNN`` holds the records still needed from segments ``<= N`` (all
series definitions, metadata and the head samples not yet in blocks); it is written to a temp
file, fsynced and renamed, after which segments ``<= N`` are deleted.
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
_MAX_RECORD = 1 << 31


@dataclass(frozen=True)
class WalRecord:
    """Decoded batch record. ``series`` defines WAL ids; samples reference WAL ids."""

    series: list[tuple[int, tuple[tuple[str, str], ...]]]
    metadata: list[MetricMetadata]
    sid: np.ndarray
    ts: np.ndarray
    values: np.ndarray


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
        """Records of the newest checkpoint then of later segments; repairs a torn tail.

        Must be fully consumed before ``open_for_append``.
        """
        for p in self.dir.iterdir():
            if p.name.endswith(".tmp"):
                p.unlink()
        cps = self.checkpoints()
        first = 0
        if cps:
            first = cps[-1] + 1
            data = (self.dir / f"checkpoint.{cps[-1]:08d}").read_bytes()
            payloads, valid = read_frames(data)
            if valid != len(data):
                raise OSError(f"corrupt WAL checkpoint {cps[-1]} (it was written atomically)")
            for p in payloads:
                yield decode_record(p)
        segs = [s for s in self.segments() if s >= first]
        for i, seg in enumerate(segs):
            path = self._seg_path(seg)
            data = path.read_bytes()
            payloads, valid = read_frames(data)
            for p in payloads:
                yield decode_record(p)
            if valid != len(data):
                log.warning(
                    "WAL segment %s: corrupt or torn record at byte %d of %d; truncating%s",
                    path,
                    valid,
                    len(data),
                    f" and dropping {len(segs) - i - 1} later segment(s)" if i + 1 < len(segs) else "",
                )
                self.truncated_bytes = len(data) - valid
                with open(path, "r+b") as f:
                    f.truncate(valid)
                    os.fsync(f.fileno())
                for later in segs[i + 1 :]:
                    self._seg_path(later).unlink()
                break
        self._segment = max(segs[-1] if segs else first - 1, first - 1, 0)

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

    def write(self, payload: bytes) -> int:
        """Append one record (handed to the OS on return); returns its sequence number."""
        if self._segment_len >= self.segment_bytes:
            self._open_segment(self._segment + 1)
        data = frame(payload)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
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
        try:
            os.fsync(fd)
        finally:
            with self._sync_cond:
                self._syncing = False
                self._synced = max(self._synced, target)
                self._sync_cond.notify_all()

    def rotate(self) -> int:
        """Close the current segment and open the next; returns the closed segment's number."""
        closed = self._segment
        self._open_segment(closed + 1)
        return closed

    def write_checkpoint(self, upto: int, payloads: list[bytes]) -> None:
        """Persist ``payloads`` as checkpoint ``upto``, then delete segments and checkpoints
        it replaces."""
        final = self.dir / f"checkpoint.{upto:08d}"
        tmp = self.dir / f"checkpoint.{upto:08d}.tmp"
        with open(tmp, "wb") as f:
            for p in payloads:
                f.write(frame(p))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        for seg in self.segments():
            if seg <= upto:
                self._seg_path(seg).unlink()
        for cp in self.checkpoints():
            if cp < upto:
                (self.dir / f"checkpoint.{cp:08d}").unlink()

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
