"""Background maintenance of one ``Storage``: cutting the head into blocks, compaction, retention.

Slow work (merging, encoding, compressing, fsyncing blocks) runs *without* the store's writer
lock, so ingest and queries continue meanwhile. Each operation has three steps:

1. *plan*, under the writer lock: snapshot immutable inputs (head segments, which the head then
   keeps out of its own merging, or blocks), rotate the WAL for a cut;
2. *build*, unlocked: write the new block(s) (temp directory + rename, fsynced);
3. *commit*, under the writer lock: publish the blocks and drop what they replace (head samples
   older than the boundary in the snapshot segments, or the input blocks) in one step for
   readers, then log the cut marker and trim the WAL.

A crash between build and commit leaves blocks whose data is also in the WAL or in their input
blocks: the duplicates are identical, reads deduplicate, and overlap compaction merges them.
``Maintenance._lock`` serializes operations (one cut or compaction at a time).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from storage import compaction
from storage.append_log import EVERYTHING
from storage.arrays import merge_sorted_parts, ranges_index
from storage.block import Block, remove_block_dir, write_block
from storage.head import Segment

if TYPE_CHECKING:
    from storage.db import Storage

log = logging.getLogger(__name__)

_I64 = np.int64
_RETRY_AFTER_FAILURE_S = 10.0


@dataclass(frozen=True)
class _CutPlan:
    boundary: int
    closed_segment: int
    segments: tuple[Segment, ...]
    rank: np.ndarray
    n_series: int


class Maintenance:
    def __init__(self, db: Storage, background: bool) -> None:
        self.db = db
        self.background = background
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_guard = threading.Lock()
        self._last_cut_boundary: int | None = None
        self._last_cut_time = 0.0
        self._failed_at = -float("inf")

    # -- triggering ----------------------------------------------------------------------------

    def cut_boundary(self) -> int | None:
        """The boundary to cut at now, or None (writer lock held).

        The head is cut when it spans 1.5 block durations, at the newest block boundary at least
        half a block behind its newest sample; cuts caused only by late samples (the boundary
        did not advance) are rate-limited so a backfill does not cut on every request.
        """
        db = self.db
        head = db._head
        if db.data_dir is None or head.maxt is None or head.mint is None or head.pinned:
            return None
        bd = db.options.block_duration_ms
        if head.maxt - head.mint < bd * 3 // 2:
            return None
        boundary = (head.maxt - bd // 2) // bd * bd
        if head.mint >= boundary:
            return None
        last = self._last_cut_boundary
        recent = time.monotonic() - self._last_cut_time < db.options.late_cut_interval_s
        if last is not None and boundary <= last and recent:
            return None
        return boundary

    def trigger(self) -> None:
        """Run maintenance now (inline) or make sure the background thread is running."""
        if not self.background:
            if time.monotonic() - self._failed_at >= _RETRY_AFTER_FAILURE_S:
                self._run_logged()  # the append is durable: its caller must not see an error
            return
        with self._thread_guard:
            if self._thread is not None and self._thread.is_alive():
                return
            if time.monotonic() - self._failed_at < _RETRY_AFTER_FAILURE_S:
                return
            self._thread = threading.Thread(target=self._run_logged, name="tidemark-maint")
            self._thread.daemon = True
            self._thread.start()

    def wait(self) -> None:
        """Block until no maintenance is running."""
        with self._thread_guard:
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            pass

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:
            self._failed_at = time.monotonic()
            log.exception(
                "storage maintenance failed; retrying in %ss (the head keeps all data)",
                _RETRY_AFTER_FAILURE_S,
            )

    def run(self) -> None:
        """Cut while a cut is due, then compact and apply retention."""
        with self._lock:
            while True:
                with self.db._lock:
                    if self.db._closed:
                        return
                    plan = self._plan_cut()
                if plan is None:
                    break
                self._cut(plan)
            self.compact_and_retain()

    # -- cutting -------------------------------------------------------------------------------

    def _plan_cut(self) -> _CutPlan | None:
        boundary = self.cut_boundary()
        return None if boundary is None else self._plan_cut_at(boundary)

    def _plan_cut_at(self, boundary: int) -> _CutPlan:
        """Pin the head's segments and rotate the WAL for a cut at ``boundary`` (lock held)."""
        db = self.db
        db._head.freeze()
        segments = tuple(db._head.segments)
        db._head.pinned = len(segments)
        closed = db._wal.rotate() if db._wal is not None else -1
        return _CutPlan(boundary, closed, segments, db._index.rank(), len(db._index))

    def _cut(self, plan: _CutPlan) -> None:
        blocks: list[Block] = []
        try:
            parts = [(s.sid, s.ts, s.values) for s in plan.segments]
            if parts:
                sid, ts, vals = merge_sorted_parts(parts, plan.n_series)
                old = ts < plan.boundary
                sid, ts, vals = sid[old], ts[old], vals[old]
            if parts and ts.shape[0]:
                bd = self.db.options.block_duration_ms
                window = ts // bd
                lo, hi = int(window.min()), int(window.max())
                windows = range(lo, hi + 1) if hi - lo < 64 else np.unique(window).tolist()
                for w in windows:
                    m = window == w
                    if m.any():
                        blocks.append(self._build(sid[m], ts[m], vals[m], plan.rank, 0))
        except BaseException:
            # Unpublished blocks would only come back as duplicates on the next open.
            for block in blocks:
                remove_block_dir(block.path)
            with self.db._lock:
                self.db._head.pinned = 0
            raise
        with self.db._lock:
            db = self.db
            for block in blocks:
                block.bind(db._index)
                db._blocks.append(block)
            db.counters["blocks_cut"] += len(blocks)
            db._head.drop_pinned_before(plan.boundary)
            db._log_cut(plan.boundary, plan.closed_segment)
            self._last_cut_boundary = plan.boundary
            self._last_cut_time = time.monotonic()

    def _build(
        self, sid: np.ndarray, ts: np.ndarray, vals: np.ndarray, rank: np.ndarray, level: int
    ) -> Block:
        """Write rows sorted and unique by (sid, ts) as a new block, series in label order.

        Reordering series is a gather of whole per-series row ranges: no sort over samples.
        """
        db = self.db
        assert db.data_dir is not None
        n = sid.shape[0]
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ends = np.r_[starts[1:], n]
        uniq = sid[starts]
        order = np.argsort(rank[uniq], kind="stable")
        rows = ranges_index(starts[order], ends[order])
        offsets = np.zeros(uniq.shape[0] + 1, dtype=_I64)
        np.cumsum((ends - starts)[order], out=offsets[1:])
        labels = db._index.labels_of(uniq[order].tolist())
        with db._lock:
            seq = db._next_seq
            db._next_seq += 1
        root = db.data_dir / "blocks"
        return write_block(root, seq, labels, offsets, ts[rows], vals[rows], level)

    # -- compaction and retention --------------------------------------------------------------

    def compact_and_retain(self) -> None:
        """Apply retention, then merge blocks until no plan applies (maintenance lock held)."""
        db = self.db
        with db._lock:
            newest = db._head.maxt
            if db._blocks:
                block_newest = max(b.meta.maxt for b in db._blocks)
                newest = block_newest if newest is None else max(newest, block_newest)
            if newest is not None:
                # One sample stamped far in the future must not make retention delete
                # everything: never measure retention from beyond the wall clock.
                wall = int(time.time() * 1000) + db.options.block_duration_ms
                newest = min(newest, wall)
            metas = [b.meta for b in db._blocks]
            victims = compaction.retention_victims(metas, db.options.retention_ms, newest)
            doomed = [b for b in db._blocks if b.seq in victims]
            db._blocks = [b for b in db._blocks if b.seq not in victims]
            db.counters["blocks_deleted"] += len(doomed)
            if doomed:
                db.appends.wrote(EVERYTHING)  # answers kept over deleted samples are void
        for b in doomed:
            remove_block_dir(b.path)
        while self._compact_once():
            pass

    def _compact_once(self) -> bool:
        db = self.db
        with db._lock:
            if db._closed:
                return False
            metas = [b.meta for b in db._blocks]
            group = compaction.overlapping_group(metas)
            level = max((m.level for m in metas if m.seq in group), default=0)
            if not group:
                bd, levels = db.options.block_duration_ms, db.options.compaction_levels
                group, level = compaction.level_group(metas, bd, levels, db._head.mint)
            if not group:
                return False
            chosen = [b for b in db._blocks if b.seq in group]  # in seq (write) order
            rank, n_series = db._index.rank(), len(db._index)
        started = time.perf_counter()
        sid, ts, vals = merge_sorted_parts([b.read_all() for b in chosen], n_series)
        merged = self._build(sid, ts, vals, rank, level)
        with db._lock:
            merged.bind(db._index)
            db._blocks = [b for b in db._blocks if b.seq not in group] + [merged]
            db.counters["compactions"] += 1
            db.counters["compaction_seconds"] += time.perf_counter() - started
        for b in chosen:
            remove_block_dir(b.path)
        return True
