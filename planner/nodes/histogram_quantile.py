"""``HistogramQuantile``: ``histogram_quantile`` / ``histogram_fraction`` over classic buckets.

Buckets are grouped by all labels except ``le`` (the output drops ``__name__`` too), sorted by
upper bound within a group once per query, and handed to ``udfs.histogram`` for all steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import drop_name, group_ids, merge_same_labels
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.range_function import QUANTILE_WARNING, go_g
from planner.values import InstantVector, ScalarValue
from promql.ast import PosRange
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

BUCKET_LABEL = "le"


def parse_le(text: str) -> float | None:
    """Go ``strconv.ParseFloat`` on the ``le`` value; ``None`` when malformed."""
    t = text.strip()
    if t != text or t == "" or "_" in t:
        return None
    try:
        return float(t)
    except ValueError:
        return None


@dataclass(frozen=True)
class HistogramQuantile(PlanNode):
    fn: str  # histogram_quantile | histogram_fraction
    input: PlanNode
    params_: tuple[PlanNode, ...] = ()
    arg_pos: tuple[PosRange, ...] = field(default=(), compare=False)  # of the call's args

    INPUTS = ("params_", "input")

    def params(self):
        return [("fn", self.fn)]

    def _pos(self, index: int) -> PosRange | None:
        return self.arg_pos[index] if index < len(self.arg_pos) else None

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        want = 1 if self.fn == "histogram_quantile" else 2
        if len(self.params_) != want:
            raise PlanError(f"{self.fn} takes {want} scalar parameter(s)")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        from udfs import histogram

        scalars = []
        for p in self.params_:
            sv = ex.run(p, grid)
            assert isinstance(sv, ScalarValue)
            scalars.append(sv.values)
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        k = grid.n_steps
        if self.fn == "histogram_quantile":
            _quantile_warning(ex, scalars[0], vec, self._pos(0))
        bounds = [parse_le(dict(ls).get(BUCKET_LABEL, "")) for ls in vec.labels]
        seen = vec.present.any(axis=1)
        for i, b in enumerate(bounds):
            if b is None and seen[i]:
                le = dict(vec.labels[i]).get(BUCKET_LABEL, "")
                ex.warn(
                    f'PromQL warning: bucket label "le" is missing or has a malformed value of "{le}"',
                    self._pos(len(self.params_)),
                )
        valid = np.array([b is not None for b in bounds], dtype=bool)
        rows = np.nonzero(valid)[0]
        if rows.size == 0:
            return InstantVector.empty(k)
        keys = [tuple(p for p in vec.labels[i] if p[0] != BUCKET_LABEL) for i in rows.tolist()]
        gids, groups = group_ids(keys)
        upper = np.array([bounds[i] for i in rows.tolist()], dtype=np.float64)
        order = np.lexsort((upper, gids))
        rows, gids, upper = rows[order], gids[order], upper[order]
        counts = np.where(vec.present[rows], vec.values[rows], np.nan)
        group_offsets = np.searchsorted(gids, np.arange(len(groups) + 1)).astype(np.int64)
        kernel = getattr(histogram, self.fn)
        out, present = kernel(*scalars, upper, counts, group_offsets)
        present = np.asarray(present, dtype=bool)
        labels = list(groups)
        delayed = ex.options.delayed_name_removal
        if not delayed:
            labels = [drop_name(ls) for ls in labels]
        result = InstantVector(
            labels,
            np.where(present, np.asarray(out, np.float64), 0.0),
            present,
            np.ones(len(labels), dtype=bool) if delayed else None,
        )
        keep = np.nonzero(present.any(axis=1))[0]
        return merge_same_labels(result.select(keep))


def _quantile_warning(
    ex: Executor, q: np.ndarray, vec: InstantVector, pos: PosRange | None
) -> None:
    if vec.n_series == 0:
        return
    steps_with_data = vec.present.any(axis=0)
    bad = q[steps_with_data & ((q < 0) | (q > 1) | np.isnan(q))]
    if bad.size:
        ex.warn(f"{QUANTILE_WARNING}, got {go_g(float(bad[0]))}", pos)
