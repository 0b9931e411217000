"""Type codes ↔ classes, and the factory building an accumulator for an aggregation config."""

from __future__ import annotations

from precompute.accumulators.base import Accumulator
from precompute.accumulators.cms import (
    CountMinSketchAccumulator,
    CountMinSketchWithHeapAccumulator,
)
from precompute.accumulators.increase import IncreaseAccumulator, MultipleIncreaseAccumulator
from precompute.accumulators.keyed import MultipleMinMaxAccumulator, MultipleSumAccumulator
from precompute.accumulators.kll import HydraKLLAccumulator, KLLAccumulator
from precompute.accumulators.last import MultipleLastAccumulator
from precompute.accumulators.scalar import (
    AvgAccumulator,
    CountAccumulator,
    MaxAccumulator,
    MinAccumulator,
    MinMaxAccumulator,
    SumAccumulator,
)
from precompute.accumulators.sets import DeltaSetAccumulator, SetAccumulator
from precompute.config import AggregationConfig

ALL: tuple[type[Accumulator], ...] = (
    SumAccumulator,
    CountAccumulator,
    MinAccumulator,
    MaxAccumulator,
    MinMaxAccumulator,
    AvgAccumulator,
    IncreaseAccumulator,
    MultipleIncreaseAccumulator,
    KLLAccumulator,
    HydraKLLAccumulator,
    CountMinSketchAccumulator,
    CountMinSketchWithHeapAccumulator,
    MultipleSumAccumulator,
    MultipleMinMaxAccumulator,
    MultipleLastAccumulator,
    SetAccumulator,
    DeltaSetAccumulator,
)
_BY_CODE = {cls.type_code: cls for cls in ALL}
BY_NAME = {cls.type_name: cls for cls in ALL}
assert len(_BY_CODE) == len(ALL), "accumulator type codes must be unique"


def class_for_code(code: int) -> type[Accumulator]:
    try:
        return _BY_CODE[code]
    except KeyError:
        raise ValueError(f"unknown accumulator type code {code}") from None


def make_accumulator(config: AggregationConfig, max_buffer: int = 10_000) -> Accumulator:
    """A fresh, empty accumulator for one (aggregation, key, pane)."""
    t = config.aggregation_type
    p = config.param
    count_only = config.aggregation_sub_type.lower() == "count"
    if t == "DatasketchesKLL":
        return KLLAccumulator(int(p("K", "k")))
    if t == "HydraKLL":
        return HydraKLLAccumulator(
            int(p("row_num", "rows", "depth")), int(p("col_num", "cols", "width")), int(p("K", "k"))
        )
    if t == "CountMinSketch":
        return CountMinSketchAccumulator(
            int(p("depth", "row_num", "rows")), int(p("width", "col_num", "cols")), count_only
        )
    if t == "CountMinSketchWithHeap":
        return CountMinSketchWithHeapAccumulator(
            int(p("depth", "row_num", "rows")),
            int(p("width", "col_num", "cols")),
            int(p("heapsize", "heap_size", "topk", "k")),
            count_only,
        )
    if t in ("Increase", "MultipleIncrease"):
        return BY_NAME[t](max_buffer)  # type: ignore[call-arg]
    return BY_NAME[t]()
