"""Immutable, time-bounded blocks: Arrow IPC files sorted by (series, time).

A block is a directory ``blocks/<seq>/`` holding

* ``meta.json``: sequence number, ``[mint, maxt]`` (inclusive), counts, compaction level;
* ``series.arrow``: one row per series in label-set order: its labels (JSON pairs), the chunk
  holding its samples, its row range inside that chunk and its own min/max timestamp;
* ``chunks.arrow``: one record batch per chunk (~128k samples, whole series only) with
  delta-encoded timestamps and XOR-encoded value bits (Gorilla's idea, done with whole-array
  numpy ops), zstd-compressed by Arrow. Regular scrapes give constant deltas and repeating
  bits, which zstd squeezes to about a byte per sample; decoding is a ``cumsum`` and a
  ``bitwise_xor.accumulate`` per chunk, exact for every bit pattern (stale markers included).

Blocks are written into ``<seq>.tmp`` and renamed into place after an fsync, so a crash leaves
either a whole block or a ``.tmp`` directory that the next open deletes. Deletion renames to
``.deleted`` first for the same reason. Reads memory-map the chunk file.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from storage.arrays import (
    Runs,
    clip_ranges,
    delta_decode,
    delta_encode,
    ranges_index,
    xor_decode,
    xor_encode,
)
from storage.index import LabelIndex
from storage.model import Labels

_I64 = np.int64
CHUNK_ROWS = 1 << 17
_CHUNK_SCHEMA = pa.schema([("ts_delta", pa.int64()), ("value_xor", pa.uint64())])


@dataclass(frozen=True)
class BlockMeta:
    seq: int
    mint: int
    maxt: int
    n_series: int
    n_samples: int
    level: int = 0


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_block(
    root: Path,
    seq: int,
    labels: list[Labels],
    offsets: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    level: int = 0,
) -> Block:
    """Write series ``i`` = rows ``offsets[i]:offsets[i+1]`` (sorted by time, labels sorted).

    Series without samples must not be passed. Returns the opened block.
    """
    n = ts.shape[0]
    lengths = np.diff(offsets)
    # A chunk boundary is placed at the first series starting past each CHUNK_ROWS multiple.
    _, chunk_of = np.unique(offsets[:-1] // CHUNK_ROWS, return_inverse=True)
    chunk_of = chunk_of.astype(_I64)
    nchunks = int(chunk_of[-1]) + 1 if len(labels) else 0
    first_series = np.searchsorted(chunk_of, np.arange(nchunks + 1))
    chunk_start = offsets[np.minimum(first_series, len(labels))]
    starts = offsets[:-1] - chunk_start[chunk_of]
    smin = ts[offsets[:-1]] if n else ts[:0]
    smax = ts[offsets[1:] - 1] if n else ts[:0]
    meta = BlockMeta(seq, int(ts.min()), int(ts.max()), len(labels), n, level)

    tmp = root / f"{seq:010d}.tmp"
    final = root / f"{seq:010d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    series_table = pa.table(
        {
            "labels": pa.array([orjson.dumps(lab).decode() for lab in labels], pa.string()),
            "chunk": pa.array(chunk_of, pa.int32()),
            "start": pa.array(starts, pa.int64()),
            "end": pa.array(starts + lengths, pa.int64()),
            "mint": pa.array(smin, pa.int64()),
            "maxt": pa.array(smax, pa.int64()),
        }
    )
    with ipc.new_file(str(tmp / "series.arrow"), series_table.schema) as w:
        w.write_table(series_table)
    # zstd level 3: ~15% smaller than the default level 1 on scrape data; cuts run in the background.
    opts = ipc.IpcWriteOptions(compression=pa.Codec("zstd", 3))
    with ipc.new_file(str(tmp / "chunks.arrow"), _CHUNK_SCHEMA, options=opts) as w:
        for c in range(nchunks):
            lo, hi = int(chunk_start[c]), int(chunk_start[c + 1])
            batch = pa.record_batch(
                [pa.array(delta_encode(ts[lo:hi])), pa.array(xor_encode(values[lo:hi]))],
                schema=_CHUNK_SCHEMA,
            )
            w.write_batch(batch)
    (tmp / "meta.json").write_bytes(orjson.dumps(asdict(meta)))
    for name in ("series.arrow", "chunks.arrow", "meta.json"):
        _fsync_path(tmp / name)
    _fsync_path(tmp)
    os.rename(tmp, final)
    _fsync_path(root)
    return Block(final)


def remove_block_dir(path: Path) -> None:
    """Delete a block so that a crash midway cannot leave a half block that looks whole."""
    doomed = path.with_name(path.name + ".deleted")
    os.rename(path, doomed)
    _fsync_path(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def list_block_dirs(root: Path) -> list[Path]:
    """Complete block directories (sorted by sequence); leftovers of crashes are removed."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for p in root.iterdir():
        if p.name.endswith((".tmp", ".deleted")):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.isdigit() and (p / "meta.json").exists():
            out.append(p)
    return sorted(out, key=lambda p: int(p.name))


class _ChunkCache:
    """Decoded chunks shared by all blocks, bounded by bytes (least recently used evicted)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, int], item: tuple[np.ndarray, np.ndarray]) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = item
            self._bytes += item[0].nbytes + item[1].nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old[0].nbytes + old[1].nbytes


CHUNK_CACHE = _ChunkCache(256 << 20)


class Block:
    """A read-only block. ``bind`` maps its series into the store's label index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta = BlockMeta(**orjson.loads((path / "meta.json").read_bytes()))
        table = ipc.open_file(pa.memory_map(str(path / "series.arrow"))).read_all()
        self._labels_json = table.column("labels").to_pylist()
        self._chunk = table.column("chunk").to_numpy().astype(_I64)
        self._start = table.column("start").to_numpy()
        self._end = table.column("end").to_numpy()
        self.series_mint = table.column("mint").to_numpy()
        self.series_maxt = table.column("maxt").to_numpy()
        self._reader = ipc.open_file(pa.memory_map(str(path / "chunks.arrow")))
        self._read_lock = threading.Lock()
        self._disk_bytes = sum(p.stat().st_size for p in path.iterdir())
        self.global_ids = np.zeros(0, dtype=_I64)
        self._by_global = np.zeros(0, dtype=_I64)
        self._by_global_local = np.zeros(0, dtype=_I64)

    @property
    def seq(self) -> int:
        return self.meta.seq

    def labels(self) -> list[Labels]:
        """The block's label sets in block order (available until ``bind``)."""
        return [tuple((k, v) for k, v in orjson.loads(s)) for s in self._labels_json]

    def disk_bytes(self) -> int:
        return self._disk_bytes

    def bind(self, index: LabelIndex) -> None:
        """Intern this block's series (labels were validated when first written)."""
        if not self._labels_json and self.meta.n_series:
            raise RuntimeError(f"block {self.path} is already bound to an index")
        gids = np.array([index.add(lab) for lab in self.labels()], dtype=_I64)
        self._labels_json = []  # the index holds the label sets now; don't keep a second copy
        order = np.argsort(gids)
        self.global_ids = gids
        self._by_global = gids[order]
        self._by_global_local = order.astype(_I64)

    def overlaps(self, mint: int, maxt: int) -> bool:
        return self.meta.mint <= maxt and self.meta.maxt >= mint

    def _decoded(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        key = (str(self.path), c)
        item = CHUNK_CACHE.get(key)
        if item is None:
            with self._read_lock:
                batch = self._reader.get_batch(c)
            ts = delta_decode(batch.column(0).to_numpy())
            vals = xor_decode(batch.column(1).to_numpy())
            item = (ts, vals)
            CHUNK_CACHE.put(key, item)
        return item

    def gather(
        self, sids: np.ndarray, mint: int, maxt: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of the requested global series in ``[mint, maxt]``: ``(request index, ts,
        values)`` sorted by (request index, ts)."""
        empty = (np.zeros(0, _I64), np.zeros(0, _I64), np.zeros(0, np.float64))
        found, local = self._located(sids, mint, maxt)
        if found.shape[0] == 0:
            return empty
        chunks = np.unique(self._chunk[local])
        decoded = [self._decoded(int(c)) for c in chunks]
        sizes = np.array([d[0].shape[0] for d in decoded], dtype=_I64)
        base = np.zeros(int(chunks.max()) + 1, dtype=_I64)
        base[chunks] = np.cumsum(sizes) - sizes
        all_ts = decoded[0][0] if len(decoded) == 1 else np.concatenate([d[0] for d in decoded])
        all_v = decoded[0][1] if len(decoded) == 1 else np.concatenate([d[1] for d in decoded])
        lo = base[self._chunk[local]] + self._start[local]
        hi = base[self._chunk[local]] + self._end[local]
        if self.meta.mint < mint or self.meta.maxt > maxt:
            # Cut each series to the time range before copying (bisection, not a filter).
            lo, hi = clip_ranges(all_ts, lo, hi, mint, maxt)
        rows = ranges_index(lo, hi)
        return np.repeat(found.astype(_I64), hi - lo), all_ts[rows], all_v[rows]

    @functools.cached_property
    def bounds_by_global(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ascending global ids, their series' first and last timestamps), once bound."""
        local = self._by_global_local
        return self._by_global, self.series_mint[local], self.series_maxt[local]

    def _located(self, sids: np.ndarray, mint: int, maxt: int) -> tuple[np.ndarray, np.ndarray]:
        """``(request index, local series)`` of the requested global series this block holds
        with samples in ``[mint, maxt]``."""
        if self._by_global.shape[0] == 0 or sids.shape[0] == 0:
            return np.zeros(0, _I64), np.zeros(0, _I64)
        k = np.minimum(np.searchsorted(self._by_global, sids), self._by_global.shape[0] - 1)
        found = np.flatnonzero(self._by_global[k] == sids)
        local = self._by_global_local[k[found]]
        live = (self.series_mint[local] <= maxt) & (self.series_maxt[local] >= mint)
        return found[live], local[live]

    def runs(self, sids: np.ndarray, mint: int, maxt: int) -> list[Runs]:
        """The requested global series' samples in ``[mint, maxt]`` as runs keyed by request
        index, one ``Runs`` per decoded chunk (pointing into the cached chunk, not copied)."""
        found, local = self._located(sids, mint, maxt)
        if found.shape[0] == 0:
            return []
        chunk = self._chunk[local]
        order = np.argsort(chunk, kind="stable")
        found, local, chunk = found[order], local[order], chunk[order]
        cuts = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
        clip = self.meta.mint < mint or self.meta.maxt > maxt
        out = []
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
            ts, vals = self._decoded(int(chunk[a]))
            lo, hi = self._start[local[a:b]], self._end[local[a:b]]
            if clip:
                lo, hi = clip_ranges(ts, lo, hi, mint, maxt)
            out.append(Runs.of_ranges(ts, vals, found[a:b], lo, hi))
        return out

    def read_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every sample as ``(global sid, ts, values)``, sorted by (global sid, ts)."""
        n = self.meta.n_series
        if n == 0:
            return np.zeros(0, _I64), np.zeros(0, _I64), np.zeros(0, np.float64)
        _, ts, vals = self.gather(self._by_global, self.meta.mint, self.meta.maxt)
        # gather() returned rows in _by_global order; map request index back to global ids.
        lengths = self._end[self._by_global_local] - self._start[self._by_global_local]
        sid = np.repeat(self._by_global, lengths)
        return sid, ts, vals
