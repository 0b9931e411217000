"""A crash between two precompute snapshots must not change answers.

Between its last snapshot and a crash the engine emitted windows (durable in the sketch store)
and folded samples into open panes (lost with the process; the WAL keeps the samples). The
restored engine closes the snapshot's open panes again: without care those windows are counted
twice, and windows are emitted without the lost samples. The first phase runs in a child
process that dies with ``os._exit`` (no graceful stop, no final snapshot).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.sketch.conftest import YAML, fill
from tests.sketch.harness import assert_same
from tests.sketch.test_coverage import SHAPES

MINUTE = 60_000
ROOT = Path(__file__).resolve().parents[2]

_PHASE = """
import os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.sketch.test_crash_recovery import open_world
from tests.sketch.conftest import fill
w = open_world(Path({dir!r}))
fill(w, seed=1, start_ms=0, end_ms={snap_ms})
w.runtime.engine.save_snapshot()
fill(w, seed=2, start_ms={snap_ms}, end_ms={end_ms})
{ending}
"""


class DiskWorld:
    """Storage, sketch store and engine on disk, wired as ``tidemark serve`` wires them."""

    def __init__(self, directory: Path) -> None:
        from precompute.config import StreamingConfig, load_config
        from server.routes_precompute import attach
        from storage.db import Storage, StorageOptions
        from storage.sketch_store import SketchStore

        cfg = load_config(YAML)
        options = type(cfg.engine)(backend="inline", flush_interval_ms=0)
        self.storage = Storage.open(
            directory / "data", StorageOptions(background_maintenance=False)
        )
        self.store = SketchStore(directory / "sketches")
        self.runtime = attach(
            self.storage,
            StreamingConfig(cfg.aggregations, options),
            self.store,
            directory / "open_panes.snapshot",
        )

    def scrape(self, series, t_ms: int, values) -> None:
        import numpy as np

        from storage.model import SampleBatch

        n = len(series)
        self.storage.append(
            SampleBatch(list(series), np.arange(n, dtype=np.int64), np.full(n, t_ms), values)
        )

    def engines(self):
        from planner.engine import Engine, EngineOptions
        from planner.nodes.precomputed_scan import SketchSource

        engine = self.runtime.engine
        source = SketchSource(self.store, lambda: list(engine.configs.values()), engine.coverage)
        exact = Engine(self.storage, EngineOptions(precompute=False), source)
        return Engine(self.storage, EngineOptions(), source), exact

    def close(self) -> None:
        self.runtime.close()
        self.storage.close()


def open_world(directory: Path) -> DiskWorld:
    return DiskWorld(directory)


def _first_run(directory: Path, graceful: bool) -> None:
    ending = "w.close()" if graceful else "os._exit(0)"
    code = _PHASE.format(
        root=str(ROOT), dir=str(directory), snap_ms=10 * MINUTE, end_ms=20 * MINUTE, ending=ending
    )
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=300)


@pytest.mark.parametrize("graceful", [False, True], ids=["crash", "graceful-stop"])
def test_answers_after_a_restart_equal_the_exact_path(tmp_path, graceful):
    _first_run(tmp_path, graceful)
    w = open_world(tmp_path)
    try:
        fill(w, seed=3, start_ms=20 * MINUTE, end_ms=40 * MINUTE)
        holes = w.runtime.engine.coverage(1)[2]
        # A crash leaves the windows between the snapshot and the newest stored sample to raw
        # data; a graceful stop leaves none.
        assert bool(holes) == (not graceful)
        # Samples lost in a crash may be older than any the snapshot knew: after one, no window
        # is claimed empty; after a graceful stop the oldest sample is known.
        empty_before = w.runtime.engine.coverage(1)[3]
        assert (empty_before is None or empty_before < -(1 << 61)) == (not graceful)
        pre, exact = w.engines()
        for query in SHAPES:
            want = exact.range_query(query, 5 * MINUTE, 40 * MINUTE, MINUTE)
            assert want.series, query
            assert_same(pre.range_query(query, 5 * MINUTE, 40 * MINUTE, MINUTE), want)
        # The windows outside the hole are still read from the store.
        text = pre.explain("sum_over_time(x[5m])", 5 * MINUTE, 40 * MINUTE, MINUTE, analyze=True)
        assert "SummaryMergeMultiple" in text.text
    finally:
        w.close()


def test_a_hole_is_kept_by_later_snapshots(tmp_path):
    _first_run(tmp_path, graceful=False)
    w = open_world(tmp_path)
    holes = w.runtime.engine.coverage(1)[2]
    fill(w, seed=3, start_ms=20 * MINUTE, end_ms=25 * MINUTE)
    w.close()  # graceful: the snapshot carries the hole
    w = open_world(tmp_path)
    try:
        assert holes and w.runtime.engine.coverage(1)[2] == holes
    finally:
        w.close()
