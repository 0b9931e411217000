"""One shared world: 12 gauge series, 12 counters, a classic histogram, 1 h of 10 s scrapes."""

from __future__ import annotations

import numpy as np
import pytest

from storage.model import make_labels
from tests.sketch.harness import SCRAPE_MS, World, counter_values, gauge_series

HOUR_MS = 3_600_000
N = 12
BUCKETS = ("0.1", "0.5", "1", "5", "+Inf")

YAML = """
aggregations:
- {aggregationId: 1, aggregationType: MultipleSum, metric: x, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 2, aggregationType: MinMax, metric: x, windowSize: 60,
   labels: {grouping: [job, instance]}}
- {aggregationId: 3, aggregationType: DatasketchesKLL, parameters: {K: 200}, metric: x,
   windowSize: 300, slideInterval: 60, windowType: sliding, labels: {grouping: [job, instance]}}
- {aggregationId: 4, aggregationType: DatasketchesKLL, parameters: {K: 8}, metric: y,
   windowSize: 300, slideInterval: 60, windowType: sliding, labels: {grouping: [job, instance]}}
- {aggregationId: 5, aggregationType: MultipleIncrease, metric: c_total, windowSize: 60,
   labels: {grouping: [job], aggregated: [instance]}}
- {aggregationId: 6, aggregationType: Increase, metric: d_total, windowSize: 120,
   slideInterval: 60, windowType: sliding,
   labels: {grouping: [job, instance]}}
- {aggregationId: 7, aggregationType: MultipleIncrease, metric: h_bucket, windowSize: 60,
   labels: {grouping: [le], aggregated: [instance]}}
"""


def histogram_series() -> list:
    return [
        make_labels({"__name__": "h_bucket", "instance": f"i{i}", "le": le})
        for i in range(3)
        for le in BUCKETS
    ]


def fill(world: World, seed: int = 7, start_ms: int = 0, end_ms: int = HOUR_MS) -> None:
    rng = np.random.default_rng(seed)
    steps = (end_ms - start_ms) // SCRAPE_MS
    xs, ys = gauge_series(N, "x"), gauge_series(N, "y")
    cs, ds, hs = gauge_series(N, "c_total"), gauge_series(N, "d_total"), histogram_series()
    c, d = counter_values(rng, N, steps), counter_values(rng, N, steps)
    obs = np.cumsum(rng.poisson(3.0, size=(steps, 3)), axis=0)
    fractions = np.array([0.1, 0.4, 0.6, 0.9, 1.0])
    h = (obs[:, :, None] * fractions[None, None, :]).round().reshape(steps, -1)
    for i in range(steps):
        t = start_ms + i * SCRAPE_MS
        world.scrape(xs, t, rng.normal(10, 3, N))
        world.scrape(ys, t, rng.lognormal(0, 1, N))
        world.scrape(cs, t, c[i])
        world.scrape(ds, t, d[i])
        world.scrape(hs, t, h[i].astype(np.float64))


@pytest.fixture(scope="package")
def world() -> World:
    w = World(YAML)
    fill(w)
    return w


@pytest.fixture(scope="package")
def engines(world):
    return world.engines()


@pytest.fixture(autouse=True)
def fresh_step_cache():
    """Every test starts without cached step answers (they would hide the window reads and
    merges a test looks at); the cache itself is on, as in production."""
    from planner import raw_step_cache, step_cache

    step_cache.clear()
    raw_step_cache.clear()
    yield
    step_cache.clear()
    raw_step_cache.clear()


@pytest.fixture
def no_step_cache(monkeypatch):
    """For tests of what one query reads and merges, run after run: no step answers kept."""
    monkeypatch.setenv("TIDEMARK_STEP_CACHE", "0")
    monkeypatch.setenv("TIDEMARK_RAW_STEP_CACHE", "0")
