"""``SeriesNormalize``: raw series made ready for windowing (stale markers handled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.nodes.base import PlanNode, require_type
from planner.values import SeriesData
from promql.types import ValueType
from storage.model import is_stale

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid


@dataclass(frozen=True)
class SeriesNormalize(PlanNode):
    """Passes series through; with ``drop_stale`` removes stale markers (range windows skip them).

    Instant lookups keep the markers: a marker as the newest sample ends the series there.
    Storage already returns samples sorted and deduplicated per series.
    """

    input: PlanNode
    drop_stale: bool = False

    INPUTS = ("input",)
    OUTPUT = ValueType.NONE

    def params(self):
        return [("drop_stale", self.drop_stale)]

    def check(self) -> None:
        require_type(self, self.input, ValueType.NONE)

    def execute(self, ex: Executor, grid: Grid) -> SeriesData:
        data = ex.run(self.input, grid)
        assert isinstance(data, SeriesData)
        if not self.drop_stale or data.n_samples == 0:
            return data
        stale = is_stale(data.values)
        if not stale.any():
            return data
        keep = ~stale
        # New offsets: count the kept samples before each series boundary.
        kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        offsets = kept_before[data.offsets]
        return SeriesData(data.labels, offsets, data.timestamps[keep], data.values[keep])
