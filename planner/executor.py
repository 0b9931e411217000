"""Runs a physical plan: evaluates nodes on grids, enforces limits, collects stats and annotations.

Nodes call ``ex.run(child, grid)`` for their inputs, so a subquery can evaluate its input on its
own grid and a step-invariant subtree on a single step. Timing and sizes are recorded per node
object (ANALYZE); the same node evaluated twice accumulates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.values import InstantVector, RangeVector, SeriesData, Value
from promql.ast import PosRange
from promql.errors import ExecutionError, QueryTimeoutError

if TYPE_CHECKING:
    from planner.engine import EngineOptions
    from planner.nodes.base import PlanNode
    from planner.stmt import Grid
    from storage.db import Storage

TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"


@dataclass
class NodeStats:
    calls: int = 0
    wall_ns: int = 0  # inclusive of children
    series: int = 0
    samples: int = 0


@dataclass
class Executor:
    storage: Storage
    options: EngineOptions
    lookback_ms: int
    deadline: float  # time.monotonic() value
    stats: dict[int, NodeStats] = field(default_factory=dict)
    warnings: dict[str, None] = field(default_factory=dict)
    infos: dict[str, None] = field(default_factory=dict)
    peak_samples: int = 0
    query: str = ""  # the query text, for annotation positions
    scan_cache: dict = field(default_factory=dict)  # SeriesScan results by (matchers, range)

    def run(self, node: PlanNode, grid: Grid) -> Value:
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError("query timed out in expression evaluation")
        if grid.n_steps > self.options.max_samples:
            # Even one series would exceed the limit (e.g. ``x[1y:1ms]``); refuse before
            # allocating a [series, steps] matrix that cannot fit.
            raise ExecutionError(TOO_MANY_SAMPLES)
        t0 = time.perf_counter_ns()
        value = node.execute(self, grid)
        elapsed = time.perf_counter_ns() - t0
        series, samples = _size(value)
        if not isinstance(value, SeriesData):  # raw reads are streamed upstream: not counted
            self.account(samples)
        st = self.stats.setdefault(id(node), NodeStats())
        st.calls += 1
        st.wall_ns += elapsed
        st.series += series
        st.samples += samples
        return value

    def account(self, samples: int) -> None:
        """Prometheus' max-samples check on the points one operator holds in memory."""
        self.peak_samples = max(self.peak_samples, samples)
        if samples > self.options.max_samples:
            raise ExecutionError(TOO_MANY_SAMPLES)

    def check_cells(self, n_series: int, n_steps: int) -> None:
        """Refuse a [series, steps] allocation larger than the sample limit before making it.

        With a lookback of minutes nearly every cell holds a point, so this is the limit
        upstream would hit anyway, only earlier (and without exhausting memory first).
        """
        if n_series * n_steps > self.options.max_samples:
            raise ExecutionError(TOO_MANY_SAMPLES)

    def warn(self, message: str, pos: PosRange | None = None) -> None:
        self.warnings[self._positioned(message, pos)] = None

    def info(self, message: str, pos: PosRange | None = None) -> None:
        self.infos[self._positioned(message, pos)] = None

    def _positioned(self, message: str, pos: PosRange | None) -> str:
        """Upstream appends the ``line:col`` of the expression an annotation is about."""
        where = self.position(pos) if pos is not None else None
        return message if where is None else f"{message} ({where})"

    def position(self, pos: PosRange) -> str | None:
        if not self.query:
            return None
        before = self.query[: pos.start]
        line = before.count("\n") + 1
        col = pos.start - (before.rfind("\n") + 1) + 1
        return f"{line}:{col}"

    def stats_for(self, node: PlanNode) -> NodeStats | None:
        return self.stats.get(id(node))


def _size(value: Value) -> tuple[int, int]:
    if isinstance(value, InstantVector):
        return value.n_series, value.points()
    if isinstance(value, RangeVector):
        if value.n_steps == 0 or value.n_series == 0:
            return value.n_series, 0
        # Points held at once: the windows of one step over all series (as upstream's peak).
        per_step = value.ranges.sizes.reshape(value.n_series, value.n_steps).sum(axis=0)
        return value.n_series, int(per_step.max())
    if isinstance(value, SeriesData):
        return value.n_series, value.n_samples  # samples read from storage
    return 0, int(np.size(getattr(value, "values", 0)) and 1)
