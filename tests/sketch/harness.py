"""Real storage + real precompute engine + sketch store, and both query paths over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.engine import Engine, EngineOptions
from planner.nodes.precomputed_scan import SketchSource
from precompute.config import EngineOptions as PcOptions
from precompute.config import load_config
from precompute.engine import NO_HISTORY_MS, PrecomputeEngine
from precompute.output import StoreSink
from storage.db import Storage, StorageOptions
from storage.model import Labels, SampleBatch, make_labels
from storage.sketch_store import SketchStore

SCRAPE_MS = 10_000


def gauge_series(n: int, metric: str = "x") -> list[Labels]:
    return [
        make_labels({"__name__": metric, "job": f"j{i % 3}", "instance": f"i{i}"}) for i in range(n)
    ]


def counter_values(rng: np.random.Generator, n: int, steps: int, reset_p: float = 0.02):
    """Counters that grow and sometimes reset to a small value: [steps, n]."""
    inc = rng.exponential(3.0, size=(steps, n))
    vals = np.cumsum(inc, axis=0)
    resets = rng.random((steps, n)) < reset_p
    for j in range(n):  # small n in tests: per-series loop builds the fixture only
        for t in np.flatnonzero(resets[:, j]).tolist():
            vals[t:, j] -= vals[t, j] - rng.uniform(0, 2)
    return vals


@dataclass
class World:
    yaml: str
    workers: int = 1
    lateness_ms: int = 0
    policy: str = "Drop"
    # As ``tidemark serve`` on an empty data directory: the engine sees every sample there is.
    known_history: bool = False
    backend: str = "inline"  # "thread": worker threads, as served (stop them: ``engine.stop``)
    storage: Storage = field(init=False)
    store: SketchStore = field(init=False)
    engine: PrecomputeEngine = field(init=False)

    def __post_init__(self) -> None:
        self.storage = Storage.in_memory(StorageOptions(background_maintenance=False))
        self.store = SketchStore()
        self.start_engine()

    def start_engine(self, snapshot: dict | None = None) -> None:
        cfg = load_config(self.yaml)
        options = PcOptions(
            num_workers=self.workers,
            backend=self.backend,  # type: ignore[arg-type]
            flush_interval_ms=0,
            allowed_lateness_ms=self.lateness_ms,
            late_data_policy=self.policy,  # type: ignore[arg-type]
        )
        history = NO_HISTORY_MS if self.known_history and snapshot is None else None
        self.engine = PrecomputeEngine(
            type(cfg)(cfg.aggregations, options), StoreSink(self.store), history_through_ms=history
        )
        if snapshot is not None:
            assert self.engine.restore(snapshot)
        self.storage.add_listener(self.engine.on_batch)

    def restart(self) -> None:
        """Graceful restart of the precompute engine: snapshot, stop, start, restore."""
        snap = self.engine.snapshot()
        self.storage.remove_listener(self.engine.on_batch)
        self.engine.stop(snapshot=False)
        self.start_engine(snap)

    def scrape(self, series: Sequence[Labels], t_ms: int, values: np.ndarray) -> None:
        n = len(series)
        batch = SampleBatch(
            list(series), np.arange(n, dtype=np.int64), np.full(n, t_ms, np.int64), values
        )
        self.storage.append(batch)

    def source(self) -> SketchSource:
        return SketchSource(self.store, lambda: list(self.engine.configs.values()))

    def engines(self) -> tuple[Engine, Engine]:
        """(precomputed path, exact path)."""
        opts = EngineOptions()
        exact = Engine(self.storage, EngineOptions(precompute=False), self.source())
        return Engine(self.storage, opts, self.source()), exact


def as_dict(result) -> dict:
    return {s.labels: (s.timestamps.tolist(), s.values) for s in result.series}


def assert_same(pre, exact, rtol: float = 1e-9) -> None:
    a, b = as_dict(pre), as_dict(exact)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][0] == b[k][0], k
        np.testing.assert_allclose(a[k][1], b[k][1], rtol=rtol, atol=1e-12, err_msg=str(k))
