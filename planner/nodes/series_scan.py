"""``SeriesScan``: the leaf that reads series from storage (matchers and time range pushed down)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanError, PlanNode
from planner.values import SeriesData
from promql.types import Matcher, ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


def format_matcher(m: Matcher) -> str:
    value = m.value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{m.name}{m.type.value}"{value}"'


@dataclass(frozen=True)
class SeriesScan(PlanNode):
    """Series matching all ``matchers`` with samples in ``[mint, maxt]`` (set by ``pushdown``)."""

    matchers: tuple[Matcher, ...]
    mint_ms: int | None = None
    maxt_ms: int | None = None

    OUTPUT = ValueType.NONE
    READS_STORAGE = True

    def params(self):
        out = [("matchers", [format_matcher(m) for m in self.matchers])]
        if self.mint_ms is not None:
            out.append(("range", f"{self.mint_ms}..{self.maxt_ms}"))
        return out

    def check(self) -> None:
        if not self.matchers:
            raise PlanError("SeriesScan without matchers")
        if (self.mint_ms is None) != (self.maxt_ms is None):
            raise PlanError("SeriesScan with half a time range")

    def execute(self, ex: Executor, grid: Grid) -> SeriesData:
        if self.mint_ms is None or self.maxt_ms is None:
            raise PlanError("SeriesScan executed before the pushdown rule set its time range")
        if self.maxt_ms < self.mint_ms:
            return SeriesData([], np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        key = (self.matchers, self.mint_ms, self.maxt_ms)
        cached = ex.scan_cache.get(key)
        if cached is not None:  # the same selector twice in one query (``x / x``) reads once
            return cached
        ss = ex.storage.select(list(self.matchers), self.mint_ms, self.maxt_ms)
        data = SeriesData(
            list(ss.labels),
            np.asarray(ss.offsets, dtype=np.int64),
            np.asarray(ss.timestamps, dtype=np.int64),
            np.asarray(ss.values, dtype=np.float64),
        )
        ex.scan_cache[key] = data
        return data
