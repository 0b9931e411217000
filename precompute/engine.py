"""The precompute engine: listener on durable batches → router → workers → sink, plus the flush
timer, periodic snapshots, run-time config changes, status and counters.

Backpressure: the engine counts samples queued per worker; a batch that would push a worker past
``queue_capacity_samples`` waits (ingest slows down) up to ``block_timeout_s`` and then raises
``UnavailableError`` (HTTP 503). Nothing is dropped silently: rejected samples are counted.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from precompute import holes
from precompute.config import AggregationConfig, EngineOptions, StreamingConfig
from precompute.hosts import InlineHost, ProcessHost, ThreadHost
from precompute.output import OutputSink, RawSamples
from precompute.router import AggregationRoutes, Router
from precompute.worker import Worker
from promql.errors import UnavailableError
from storage.model import DurableBatch, is_stale

_SNAPSHOT_VERSION = 1
_FOREVER_MS = 1 << 62
_MAX_FUTURE_MS = 60 * 1000
NO_HISTORY_MS = -(1 << 62)  # ``history_through_ms`` of an empty storage: every sample is seen
log = logging.getLogger("tidemark.precompute")


class PrecomputeEngine:
    def __init__(
        self,
        config: StreamingConfig,
        sink: OutputSink,
        snapshot_path: str | os.PathLike[str] | None = None,
        block_timeout_s: float = 10.0,
        history_through_ms: int | None = None,
        stored_through_ms: int | None = None,
    ) -> None:
        self.options: EngineOptions = config.engine
        self.configs: dict[int, AggregationConfig] = config.by_id()
        self.sink = sink
        self.snapshot_path = Path(snapshot_path) if snapshot_path else None
        self.block_timeout_s = block_timeout_s
        n = self.options.num_workers
        self.router = Router(list(self.configs.values()), n)
        self._ingest_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queued = [0] * n
        self.agg_max_t: dict[int, int] = {}
        # Coverage (``coverage``): samples stored before this engine listened are stamped at or
        # before ``history_through_ms`` (None: unknown); per aggregation, windows starting at or
        # after ``complete_from`` hold every sample (None: from its first routed sample on).
        self.history_through_ms = history_through_ms
        self.max_seen_t: int | None = None
        self.first_t: dict[int, int] = {}
        # Per aggregation, the oldest sample time ever routed to it (late ones included).
        self.oldest_t: dict[int, int] = {}
        # coverage: last known worker watermarks and holes
        self._last_marks: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}
        self._coverage_at: dict[int, tuple[tuple[int, ...], Any]] = {}  # host stamps, answer
        known = None if history_through_ms is None else history_through_ms + 1
        self.complete_from: dict[int, int | None] = dict.fromkeys(self.configs, known)
        self.counters = {"batches_in": 0, "samples_in": 0, "samples_rejected": 0, "raw_samples": 0}
        self.hosts = [self._make_host(i) for i in range(n)]
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.started_at = time.time()
        # Per aggregation, window ends ``(lo, hi]`` not to be trusted (``coverage``): see
        # ``_mark_crash_hole``.
        self.holes: dict[int, list[tuple[int, int]]] = {}
        # Present while an engine runs on this snapshot path; removed by a graceful ``stop``
        # right after its final snapshot. Found at start: the last run did not stop cleanly.
        self._running_marker = (
            self.snapshot_path.with_name(self.snapshot_path.name + ".running")
            if self.snapshot_path is not None
            else None
        )
        crashed = self._running_marker is not None and self._running_marker.exists()
        restorable = self.snapshot_path is not None and self.snapshot_path.exists()
        if restorable and not self.restore(self.snapshot_path):  # type: ignore[arg-type]
            log.warning(
                "precompute snapshot %s not restored (format or num_workers changed); "
                "open panes start empty",
                self.snapshot_path,
            )
        elif restorable and crashed:
            self._mark_crash_hole(stored_through_ms)
        if self._running_marker is not None:
            _touch_durably(self._running_marker)

    def _make_host(self, idx: int):
        def done(samples: int) -> None:
            with self._cond:
                self._queued[idx] -= samples
                self._cond.notify_all()

        configs = list(self.configs.values())
        backend = self.options.backend
        if backend == "process":
            return ProcessHost(configs, self.options, self.sink, done)
        worker = Worker(configs, self.options)
        return (ThreadHost if backend == "thread" else InlineHost)(worker, self.sink, done)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> PrecomputeEngine:
        """Start the flush/snapshot timer (not needed when driving ``flush`` by hand)."""
        if self._timer is None and self.options.flush_interval_ms > 0:
            self._timer = threading.Thread(target=self._tick, name="precompute-timer", daemon=True)
            self._timer.start()
        return self

    def _tick(self) -> None:
        last_snapshot = time.monotonic()
        interval = self.options.flush_interval_ms / 1000
        while not self._stop.wait(interval):
            self.flush()
            every = self.options.snapshot_interval_ms / 1000
            if (
                self.snapshot_path is not None
                and every
                and time.monotonic() - last_snapshot >= every
            ):
                self.save_snapshot()
                last_snapshot = time.monotonic()

    def stop(self, snapshot: bool = True) -> None:
        """Graceful shutdown: drain queues, snapshot open panes, stop workers."""
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=30)
        self.drain()
        if snapshot and self.snapshot_path is not None:
            self.save_snapshot()
            if self._running_marker is not None:
                self._running_marker.unlink(missing_ok=True)
        for host in self.hosts:
            host.stop()

    def _mark_crash_hole(self, stored_through_ms: int | None) -> None:
        """After a crash, the restored snapshot predates what the engine saw before it died.

        Between that snapshot and the crash the engine may have emitted windows (they are in
        the store, and the restored open panes will close them again: counted twice) and folded
        samples into open panes (lost with the process; the WAL keeps them for the raw path,
        but the restored panes lack them). Neither can reach a window ending at or before the
        restored closed-through time (it was closed for every group), nor one whose start is
        at or after the newest stored sample (all of it arrives after the restart). The windows
        between are marked untrusted, so queries answer them from raw data.
        """
        for agg_id, cfg in self.configs.items():
            cov = self.coverage(agg_id)
            # A sample older than any the snapshot knew may have been lost too: from now on no
            # window of this aggregation is known to be empty (the sentinel never moves).
            self.oldest_t[agg_id] = NO_HISTORY_MS
            lo = cov[1] if cov is not None else NO_HISTORY_MS
            if stored_through_ms is None:
                hi = _FOREVER_MS  # unknown: trust nothing after the snapshot
            else:
                hi = stored_through_ms + cfg.window_size_ms
            if hi > lo:
                self.holes[agg_id] = holes.merge([*self.holes.get(agg_id, ()), (lo, hi)])
                log.warning(
                    "precompute aggregation %d: the last run stopped without a final snapshot; "
                    "windows ending in (%d, %d] ms are answered from raw data",
                    agg_id,
                    lo,
                    hi,
                )

    # --- ingest -----------------------------------------------------------------------------

    def __call__(self, durable: DurableBatch) -> None:
        self.on_batch(durable)

    def on_batch(self, durable: DurableBatch) -> None:
        """Storage listener: called after each durable append."""
        if self.options.pass_raw_samples:
            self._raw(durable)
            return
        with self._ingest_lock:
            per_worker = self.router.route(durable)
            sizes = [sum(len(i) for i in items) for items in per_worker]
            total = sum(sizes)
            self.counters["batches_in"] += 1
            ts = durable.batch.timestamps
            if len(ts):
                newest = int(np.max(ts))
                self.max_seen_t = (
                    newest if self.max_seen_t is None else max(self.max_seen_t, newest)
                )
            if total == 0:
                return
            self._reserve(sizes)
            for items in per_worker:
                for item in items:
                    t = int(item.timestamps.max())
                    if t > self.agg_max_t.get(item.aggregation_id, t - 1):
                        self.agg_max_t[item.aggregation_id] = t
                    oldest = int(item.timestamps.min())
                    if item.aggregation_id not in self.first_t:
                        self.first_t[item.aggregation_id] = oldest
                    if oldest < self.oldest_t.get(item.aggregation_id, oldest + 1):
                        self.oldest_t[item.aggregation_id] = oldest
            self.counters["samples_in"] += total
            for host, items in zip(self.hosts, per_worker, strict=True):
                if items:
                    host.send(("items", items))

    def _reserve(self, sizes: Sequence[int]) -> None:
        cap = self.options.queue_capacity_samples
        deadline = time.monotonic() + self.block_timeout_s
        with self._cond:
            while any(q + s > cap and q > 0 for q, s in zip(self._queued, sizes, strict=True)):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.counters["samples_rejected"] += sum(sizes)
                    raise UnavailableError(
                        "precompute engine overloaded: worker queues are full, retry later"
                    )
                self._cond.wait(left)
            for i, s in enumerate(sizes):
                self._queued[i] += s

    def _raw(self, durable: DurableBatch) -> None:
        batch = durable.batch
        live = ~is_stale(batch.values)
        raw = RawSamples(
            self.options.raw_mode_aggregation_id,
            batch.series,
            np.asarray(batch.sample_series)[live],
            np.asarray(batch.timestamps)[live],
            np.asarray(batch.values)[live],
        )
        self.sink.write_raw(raw)
        self.counters["raw_samples"] += int(live.sum())

    # --- control ----------------------------------------------------------------------------

    def _broadcast_call(self, name: str, *args: Any) -> list[Any]:
        futures = [host.send(("call", name, *args)) for host in self.hosts]
        return [f.result(timeout=120) for f in futures if f is not None]

    def flush(self) -> None:
        """Flush tick: idle groups advance to their aggregation's event-time watermark."""
        # A sample stamped far in the future would otherwise drag every idle group of its
        # aggregation past windows that are still filling: cap at wall clock + 1 minute (clock skew).
        cap = int(time.time() * 1000) + _MAX_FUTURE_MS
        with self._ingest_lock:
            times = {a: min(t, cap) for a, t in self.agg_max_t.items()}
            for host in self.hosts:
                host.send(("flush", times))

    def drain(self) -> None:
        """Wait until every queued item has been processed."""
        self._broadcast_call("status")

    def close_all(self) -> None:
        """Close every window holding data (end of a finite stream)."""
        with self._ingest_lock:
            self._broadcast_call("close_all")

    def queue_depth(self) -> int:
        with self._cond:
            return sum(self._queued)

    def update_config(self, config: StreamingConfig) -> dict[str, list[int]]:
        """Add, replace and remove aggregations at run time; others keep their state."""
        new = config.by_id()
        with self._ingest_lock:
            removed = [a for a in self.configs if a not in new or new[a] != self.configs[a]]
            added = [a for a in new if a not in self.configs or new[a] != self.configs[a]]
            for agg_id in removed:
                self.router.remove(agg_id)
                for host in self.hosts:
                    host.send(("remove", agg_id))
                self.agg_max_t.pop(agg_id, None)
                self.first_t.pop(agg_id, None)
                self.oldest_t.pop(agg_id, None)
                self._last_marks.pop(agg_id, None)
                self._coverage_at.pop(agg_id, None)
                self.holes.pop(agg_id, None)
            seen = [t for t in (self.max_seen_t, self.history_through_ms) if t is not None]
            for agg_id in added:
                # Samples already ingested (stamped up to the newest seen) never reach it.
                self.complete_from[agg_id] = max(seen) + 1 if seen else None
                self.router.set_routes(AggregationRoutes(new[agg_id], self.options.num_workers))
                for host in self.hosts:
                    host.send(("add", new[agg_id]))
            self.configs = new
        return {"added": sorted(set(added) - set(removed)), "removed": sorted(set(removed) - set(added)),
                "replaced": sorted(set(added) & set(removed))}  # fmt: skip

    # --- snapshot / restore -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._ingest_lock:
            routes = {
                a: (list(r.groups.keys), list(r.subs.keys)) for a, r in self.router.routes.items()
            }
            workers = self._broadcast_call("snapshot")
            return {
                "version": _SNAPSHOT_VERSION,
                "num_workers": self.options.num_workers,
                "routes": routes,
                "workers": workers,
                "agg_max_t": dict(self.agg_max_t),
                "coverage": (self.max_seen_t, dict(self.first_t), dict(self.complete_from)),
                "holes": {a: list(h) for a, h in self.holes.items()},
                "oldest_t": dict(self.oldest_t),
            }

    def save_snapshot(self) -> None:
        assert self.snapshot_path is not None
        data = pickle.dumps(self.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
        tmp = self.snapshot_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.snapshot_path)

    def restore(self, source: str | os.PathLike[str] | dict[str, Any]) -> bool:
        """Load a snapshot taken with the same ``num_workers``; returns False if it cannot apply."""
        if isinstance(source, dict):
            snap = source
        else:
            with open(source, "rb") as fh:
                snap = pickle.load(fh)  # our own file, written by save_snapshot
        if snap.get("version") != _SNAPSHOT_VERSION or snap["num_workers"] != len(self.hosts):
            return False
        with self._ingest_lock:
            for agg_id, (groups, subs) in snap["routes"].items():
                if agg_id not in self.configs:
                    continue
                routes = AggregationRoutes(
                    self.configs[agg_id], self.options.num_workers, groups, subs
                )
                routes.sent = [
                    (len(w.get(agg_id, {}).get("group_keys", [])), len(w.get(agg_id, {}).get("sub_keys", [])))
                    for w in snap["workers"]
                ]  # fmt: skip
                self.router.set_routes(routes)
            for host, state in zip(self.hosts, snap["workers"], strict=True):
                host.send(("call", "restore", state))
            self.agg_max_t.update({a: t for a, t in snap["agg_max_t"].items() if a in self.configs})
            if "coverage" in snap:  # what the aggregations saw before the restart still counts
                max_seen, first_t, complete_from = snap["coverage"]
                self.max_seen_t = max_seen
                self.first_t.update({a: t for a, t in first_t.items() if a in self.configs})
                self.complete_from.update(
                    {a: t for a, t in complete_from.items() if a in self.configs}
                )
            self.holes = {a: list(h) for a, h in snap.get("holes", {}).items() if a in self.configs}
            self.oldest_t.update(
                {a: t for a, t in snap.get("oldest_t", {}).items() if a in self.configs}
            )
            self._broadcast_call("status")
        return True

    # --- observability ----------------------------------------------------------------------

    def coverage(
        self, aggregation_id: int
    ) -> tuple[int, int, tuple[tuple[int, int], ...], int | None] | None:
        """``(complete_from_ms, closed_through_ms, holes, empty_before_ms)``: windows ``(s, e]``
        with ``s >= complete_from_ms`` hold every sample of the aggregation, and every group has
        closed its windows ending at or before ``closed_through_ms``, except windows whose end
        lies in one of the ``holes`` ``(lo, hi]`` (windows missing samples: dropped as late, or
        lost in a crash, ``_mark_crash_hole``). When the engine has seen every sample the
        aggregation ever had (its history is known), windows ending before ``empty_before_ms``
        — the oldest sample routed to it — had none: nothing to store, nothing to read from raw
        data either (else None; after a crash, the oldest sample is not known). None: no window
        yet."""
        cfg = self.configs.get(aggregation_id)
        first = self.first_t.get(aggregation_id)
        if cfg is None or first is None:
            return None
        start = self.complete_from.get(aggregation_id)
        marks, dropped = self._worker_coverage(aggregation_id)
        if not marks:
            return None
        slide = cfg.slide_interval_ms
        # A window (s, e] is closed once a group's watermark is past e (worker._close_due).
        closed = ((min(marks) - 1) // slide) * slide
        return (
            (first if start is None else start),
            closed,
            tuple(holes.merge([*self.holes.get(aggregation_id, ()), *dropped])),
            None if start is None else self.oldest_t.get(aggregation_id),
        )

    def _worker_coverage(self, aggregation_id: int) -> tuple[list[int], list[tuple[int, int]]]:
        """Per worker, its smallest group watermark; and the holes of all workers (windows
        missing samples dropped as late). Workers busy with queued ingest for more than 50 ms
        answer later: the last known figures are used meanwhile (watermarks only grow, so an
        older figure closes fewer windows: only more raw data)."""
        # No message that can change a worker was sent since the last answer: it still holds
        # (queries ask on every evaluation; a worker round trip costs 0.1-0.2 ms).
        stamps = tuple(host.generation for host in self.hosts)
        known = self._coverage_at.get(aggregation_id)
        if known is not None and known[0] == stamps:
            return known[1]
        futures = [host.send(("call", "coverage")) for host in self.hosts]
        last = self._last_marks.get(aggregation_id)
        try:
            replies = [f.result(timeout=None if last is None else 0.05) for f in futures if f]
        except TimeoutError:
            return last or ([], [])
        rows = [w[aggregation_id] for w in replies if aggregation_id in w]
        marks = [r["min_watermark_ms"] for r in rows if r["min_watermark_ms"] is not None]
        dropped = holes.merge(h for r in rows for h in r.get("holes", ()))
        self._last_marks[aggregation_id] = (marks, dropped)
        # Stamped as read before asking: whatever was sent meanwhile makes the next ask again.
        self._coverage_at[aggregation_id] = (stamps, (marks, dropped))
        return marks, dropped

    def status(self) -> dict[str, Any]:
        per_worker = self._broadcast_call("status")
        now_ms = int(time.time() * 1000)
        aggs = []
        for agg_id, cfg in sorted(self.configs.items()):
            rows = [w[agg_id] for w in per_worker if agg_id in w]
            sums = {
                k: sum(r[k] for r in rows)
                for k in ("samples_in", "dropped_late", "forwarded_late", "windows_emitted",
                          "open_panes")
            }  # fmt: skip
            wms = [r["watermark_ms"] for r in rows if r["watermark_ms"] is not None]
            mins = [r["min_watermark_ms"] for r in rows if r["min_watermark_ms"] is not None]
            newest = self.agg_max_t.get(agg_id)
            routes = self.router.routes.get(agg_id)
            aggs.append(
                {
                    "aggregation_id": agg_id,
                    "config": cfg.to_dict(),
                    **sums,
                    "groups": max((r["groups"] for r in rows), default=0),
                    "watermark_ms": max(wms) if wms else None,
                    "min_watermark_ms": min(mins) if mins else None,
                    "max_event_time_ms": newest,
                    "event_lag_ms": (newest - min(mins)) if newest is not None and mins else None,
                    "wall_lag_ms": (now_ms - max(wms)) if wms else None,
                    "warnings": list(routes.warnings) if routes is not None else [],
                    # Window ends (lo, hi] the query side answers from raw data: samples
                    # dropped as late, or lost in a crash between snapshots.
                    "untrusted_windows": [
                        {"after_ms": lo, "through_ms": hi}
                        for lo, hi in holes.merge(
                            [
                                *self.holes.get(agg_id, ()),
                                *(h for r in rows for h in r.get("holes", ())),
                            ]
                        )
                    ],
                }
            )
        return {
            "engine": {
                **{k: (v.value if hasattr(v, "value") else v) for k, v in self.options.__dict__.items()},
                "queue_depth_samples": self.queue_depth(),
                "worker_errors": [repr(e) for h in self.hosts if (e := getattr(h, "error", None))],
                **self.counters,
            },
            "aggregations": aggs,
        }  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """Flat counters for ``/metrics``."""
        st = self.status()
        out = {
            "tidemark_precompute_queue_depth_samples": float(st["engine"]["queue_depth_samples"]),
            "tidemark_precompute_batches_total": float(self.counters["batches_in"]),
            "tidemark_precompute_samples_rejected_total": float(self.counters["samples_rejected"]),
            "tidemark_precompute_raw_samples_total": float(self.counters["raw_samples"]),
        }
        for agg in st["aggregations"]:
            label = f'{{aggregation_id="{agg["aggregation_id"]}"}}'
            out[f"tidemark_precompute_samples_in_total{label}"] = float(agg["samples_in"])
            out[f"tidemark_precompute_dropped_late_total{label}"] = float(agg["dropped_late"])
            out[f"tidemark_precompute_forwarded_late_total{label}"] = float(agg["forwarded_late"])
            out[f"tidemark_precompute_windows_emitted_total{label}"] = float(agg["windows_emitted"])
            out[f"tidemark_precompute_open_panes{label}"] = float(agg["open_panes"])
            if agg["watermark_ms"] is not None:
                out[f"tidemark_precompute_watermark_seconds{label}"] = agg["watermark_ms"] / 1000
        return out


def _touch_durably(path: Path) -> None:
    with open(path, "wb") as fh:
        fh.flush()
        os.fsync(fh.fileno())
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
