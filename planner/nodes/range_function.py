"""``RangeFunction``: a ``udfs.range_functions`` kernel over every (series, step) window at once."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import ListMemo, with_names_dropped
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.extended_range import anchored_from, extended_rate
from planner.values import InstantVector, RangeVector, ScalarValue
from promql.ast import PosRange
from promql.types import ValueType
from storage.model import Labels, metric_name

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

# last_over_time / first_over_time act like an offset: they keep the metric name (as upstream).
KEEPS_NAME = frozenset({"last_over_time", "first_over_time"})
QUANTILE_WARNING = "PromQL warning: quantile value should be between 0 and 1"
COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")
NON_COUNTER_INFO = (
    "PromQL info: metric might not be a counter, name does not end in "
    "_total/_sum/_count/_bucket: {name!s}"
)


def kernel_for(module, name: str):
    """The kernel named ``name`` (or ``name_`` where it clashes with a Python name)."""
    fn = getattr(module, name, None) or getattr(module, name + "_", None)
    if fn is None:
        raise PlanError(f"no kernel for function {name!r} in {module.__name__}")
    return fn


@dataclass(frozen=True)
class RangeFunction(PlanNode):
    """``fn(range_vector, *scalar_params)``; ``param_first`` puts the params before the range."""

    fn: str
    input: PlanNode
    params_: tuple[PlanNode, ...] = ()
    param_first: bool = False
    pos: PosRange | None = field(default=None, compare=False)  # of the first argument

    INPUTS = ("params_", "input")

    def params(self):
        return [("fn", self.fn)]

    def check(self) -> None:
        require_type(self, self.input, ValueType.MATRIX)
        for p in self.params_:
            require_type(self, p, ValueType.SCALAR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        from udfs import range_functions

        rv = ex.run(self.input, grid)
        assert isinstance(rv, RangeVector)
        k, n = rv.n_steps, rv.n_series
        scalars = []
        for p in self.params_:
            sv = ex.run(p, grid)
            assert isinstance(sv, ScalarValue)
            scalars.append(np.tile(sv.values, n))
        if n == 0:
            return InstantVector.empty(k)
        if rv.mode:
            values, present = _extended(self.fn, rv)
        else:
            kernel = kernel_for(range_functions, self.fn)
            ranges = rv.ranges
            if self.fn == "predict_linear":
                # Upstream predicts relative to the evaluation step, not the (offset/@) window end.
                ranges = dataclasses.replace(ranges, window_ends=np.tile(grid.times(), n))
            values, present = kernel(ranges, *scalars)
        present = np.asarray(present, dtype=bool).reshape(n, k)
        values = np.where(present, np.asarray(values, dtype=np.float64).reshape(n, k), 0.0)
        keep = present.any(axis=1)
        if keep.all():  # the common case: no copy of the [n, k] matrices
            rows = slice(None)
            labels = list(rv.labels)
        else:
            rows = np.nonzero(keep)[0]
            labels = [rv.labels[i] for i in rows.tolist()]
        drop = None if rv.drop_name is None else rv.drop_name[rows]
        if self.fn in ("rate", "increase"):
            non_counter_info(ex, labels, self.pos)
        if self.fn == "quantile_over_time":
            q = scalars[0].reshape(n, k)[0]
            bad = q[present.any(axis=0) & ((q < 0) | (q > 1) | np.isnan(q))]
            if bad.size:
                ex.warn(f"{QUANTILE_WARNING}, got {go_g(float(bad[0]))}", self.pos)
        out = InstantVector(labels, values[rows], present[rows], drop)
        if self.fn in KEEPS_NAME:
            return out
        return with_names_dropped(out, ex.options.delayed_name_removal)


def _extended(fn: str, rv: RangeVector) -> tuple[np.ndarray, np.ndarray]:
    """rate/increase/delta/changes/resets over anchored or smoothed windows."""
    from udfs import range_functions

    assert rv.gt_start is not None and rv.ge_end is not None
    if fn in ("changes", "resets"):
        ranges, found = anchored_from(rv.ranges, rv.gt_start)
        values, present = kernel_for(range_functions, fn)(ranges)
        return values, np.asarray(present, dtype=bool) & found
    smoothed = rv.mode == "smoothed"
    return extended_rate(rv.ranges, rv.gt_start, rv.ge_end, smoothed, fn != "delta", fn == "rate")


def _metric_names(labels: list[Labels]) -> tuple[str | None, ...]:
    return tuple(dict.fromkeys(map(metric_name, labels)))


_METRIC_NAMES = ListMemo(_metric_names)


def non_counter_info(ex: Executor, labels, pos: PosRange | None) -> None:
    # One annotation per metric name (upstream's are deduplicated by text): judged per name,
    # not per series, since a selector returns thousands of series of one or a few names.
    for name in _METRIC_NAMES(labels):
        if name and not name.endswith(COUNTER_SUFFIXES):
            ex.info(NON_COUNTER_INFO.format(name=f'"{name}"'), pos)


def go_g(value: float) -> str:
    """Go's ``%g`` for annotation texts (shortest repr; NaN/Inf spelled as Go does)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
