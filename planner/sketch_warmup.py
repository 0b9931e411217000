"""Decode the newest stored windows in the background after a start, so the first sketch query
finds them decoded.

A server that just opened its sketch store has an empty window-table cache: its first quantile
query over the last hours would decode every window it reads (seconds for 100 k KLL sketches).
``Warmup`` decodes the newest blocks of every configured aggregation, newest window ends first
across aggregations (dashboards read "the last N hours"), until the cache holds a share of its
budget (``TIDEMARK_SKETCH_WARMUP_SHARE``, default one half: queries keep room of their own) or
everything stored is decoded. It takes a table's lock for one block at a time and pauses between
blocks, so a query waits at most one block's decode, and starts no block while a query is
reading a window table (``sketch_cache.reading``); warmed blocks enter the cache as its least
recently used, so they are evicted before any block a query read. ``TIDEMARK_SKETCH_WARMUP=0``
turns it off. Progress is module state (``warmup_stats``), rendered on ``/metrics``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from planner import sketch_cache as cache
from planner.sketch_table import table_for

if TYPE_CHECKING:
    from precompute.config import AggregationConfig

DEFAULT_SHARE = 0.5
PAUSE_S = 0.001  # between blocks: a query waiting for the table's lock gets it first
_STATES = {"idle": 0, "running": 1, "done": 2, "stopped": 3, "failed": 4}
_PROGRESS: dict[str, float] = {"state": 0.0, "blocks": 0.0, "records": 0.0, "seconds": 0.0}
_PROGRESS_LOCK = threading.Lock()


def enabled() -> bool:
    return os.environ.get("TIDEMARK_SKETCH_WARMUP", "1").strip().lower() not in {"0", "false", "no", "off"}  # fmt: skip


def share_from_env() -> float:
    raw = os.environ.get("TIDEMARK_SKETCH_WARMUP_SHARE")
    return DEFAULT_SHARE if raw is None else min(1.0, max(0.0, float(raw)))


def warmup_stats() -> dict[str, float]:
    """State (0 idle, 1 running, 2 done, 3 stopped, 4 failed) and blocks, records and seconds
    spent by the latest warm-up."""
    with _PROGRESS_LOCK:
        return dict(_PROGRESS)


def _progress(**values: float) -> None:
    with _PROGRESS_LOCK:
        _PROGRESS.update(values)


class Warmup:
    """One background pass over ``store``'s aggregations (``configs()``, read when it starts)."""

    def __init__(
        self,
        store: Any,
        configs: Callable[[], Iterable[AggregationConfig]],
        share: float = DEFAULT_SHARE,
        pause_s: float = PAUSE_S,
    ) -> None:
        self.store = store
        self.configs = configs
        self.share = share
        self.pause_s = pause_s
        self.yield_s = 0.005
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sketch-warmup", daemon=True)
        self.finished = threading.Event()

    def start(self) -> Warmup:
        _progress(state=_STATES["running"], blocks=0, records=0, seconds=0)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the pass to stop after the block it is decoding, and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        t0 = time.perf_counter()
        state = "done"
        try:
            state = self._pass(t0)
        except Exception:  # a warm-up failure must not take the server down; queries decode
            state = "failed"
            raise
        finally:
            _progress(state=_STATES[state], seconds=time.perf_counter() - t0)
            self.finished.set()

    def _pass(self, t0: float) -> str:
        tables = [table_for(self.store, cfg) for cfg in self.configs()]
        todo: list[tuple[int, int, int]] = []  # (block start ms, table, block)
        for i, table in enumerate(tables):
            with table.lock:
                blocks = table.blocks_newest_first(self.store)
            todo += [(b * table.block_ms, i, b) for b in blocks]
        todo.sort(key=lambda x: (-x[0], x[1]))  # newest window ends first, across tables
        limit = self.share * cache.budget()
        blocks = records = 0
        for _, i, b in todo:
            if self._stop.is_set():
                return "stopped"
            if cache.held_bytes() >= limit:
                break
            while cache.reads_in_flight() and not self._stop.is_set():
                self._stop.wait(self.yield_s)  # a query is reading: leave it the CPU
            table = tables[i]
            with table.lock:
                n = table.warm(self.store, b)
            if n:
                blocks, records = blocks + 1, records + n
                _progress(blocks=blocks, records=records, seconds=time.perf_counter() - t0)
            if cache.held_bytes() > cache.budget():
                # Queries filled the cache meanwhile: warmed blocks are the coldest, the evictor
                # drops them first, and decoding on would only churn.
                cache.request_eviction()
                break
            self._stop.wait(self.pause_s)
        return "stopped" if self._stop.is_set() else "done"
