"""``HistogramQuantile``: ``histogram_quantile`` / ``histogram_fraction`` over classic buckets.

Buckets are grouped by all labels except ``le`` (the output drops ``__name__`` too), sorted by
upper bound within a group once per query, and handed to ``udfs.histogram`` for all steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import ListMemo, drop_name, group_ids, merge_same_labels
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.bucket_checks import forced_monotonicity
from planner.nodes.range_function import QUANTILE_WARNING, go_g
from planner.values import InstantVector, ScalarValue
from promql.ast import PosRange
from promql.types import ValueType
from storage.model import Labels, metric_name

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
    label: str = ""  # histogram_quantiles: the label that carries the quantile
    arg_pos: tuple[PosRange, ...] = field(default=(), compare=False)  # of the call's args

    INPUTS = ("params_", "input")

    def params(self):
        return [("fn", self.fn), *([("label", self.label)] if self.label else [])]

    def _hist_pos(self) -> PosRange | None:
        """Position of the histogram argument (first for histogram_quantiles, else last)."""
        return self._pos(0 if self.fn == "histogram_quantiles" else -1)

    def _pos(self, index: int) -> PosRange | None:
        return self.arg_pos[index] if -len(self.arg_pos) <= index < len(self.arg_pos) else None

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        want = {"histogram_quantile": 1, "histogram_fraction": 2}.get(self.fn, len(self.params_))
        if len(self.params_) != want or not self.params_:
            raise PlanError(f"{self.fn} takes {want} scalar parameter(s)")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        scalars = []
        for p in self.params_:
            sv = ex.run(p, grid)
            assert isinstance(sv, ScalarValue)
            scalars.append(sv.values)
        vec = ex.run(self.input, grid)
        assert isinstance(vec, InstantVector)
        if self.fn != "histogram_fraction":
            for i, q in enumerate(scalars):
                _quantile_warning(ex, q, self._pos(0 if self.fn == "histogram_quantile" else i + 2))
        buckets = self._buckets(ex, vec)
        if buckets is None:
            return InstantVector.empty(grid.n_steps)
        if self.fn == "histogram_quantiles":
            parts = [
                self._one(
                    ex, grid, vec, buckets, [np.full(grid.n_steps, v)], (self.label, v), _same(q, v)
                )
                for q in scalars
                for v in np.unique(q).tolist()
            ]
            return merge_same_labels(InstantVector.concat(parts, grid.n_steps))
        return merge_same_labels(self._one(ex, grid, vec, buckets, scalars, None, None))

    def _one(self, ex, grid, vec, buckets, scalars, extra, step_mask) -> InstantVector:
        """The kernel over all groups and steps; ``extra`` adds ``(label, q)`` to every group."""
        from udfs import histogram

        rows, upper, group_offsets, groups = buckets
        counts, bucket_present = vec.values[rows], vec.present[rows]
        name = "histogram_fraction" if self.fn == "histogram_fraction" else "histogram_quantile"
        out, present = getattr(histogram, name)(
            *scalars, upper, counts, group_offsets, bucket_present
        )
        present = np.asarray(present, dtype=bool)
        if step_mask is not None:
            present = present & step_mask[None, :]
        delayed = ex.options.delayed_name_removal
        if name == "histogram_quantile":
            self._monotonicity_infos(ex, grid, groups, group_offsets, upper, counts, bucket_present)
        labels = list(groups) if delayed else [drop_name(ls) for ls in groups]
        if extra is not None:
            text = format_openmetrics_float(extra[1])
            labels = [tuple(sorted({**dict(ls), extra[0]: text}.items())) for ls in labels]
        result = InstantVector(
            labels,
            np.where(present, np.asarray(out, np.float64), 0.0),
            present,
            np.ones(len(labels), dtype=bool) if delayed else None,
        )
        return result.select(np.nonzero(present.any(axis=1))[0])

    def _buckets(self, ex: Executor, vec: InstantVector):
        """Valid bucket rows sorted by (group, upper bound); warns on a bad ``le``."""
        layout = _LAYOUTS(vec.labels)
        if layout.malformed:
            seen = vec.present.any(axis=1)
            for i in layout.malformed:
                if seen[i]:
                    ex.warn(
                        _bad_bucket(vec.labels[i], ex.options.delayed_name_removal),
                        self._hist_pos(),
                    )
        return layout.buckets

    def _monotonicity_infos(self, ex, grid, groups, offsets, upper, counts, present) -> None:
        found = forced_monotonicity(upper, counts, present, offsets, grid.times())
        for labels, fixed in zip(groups, found, strict=True):
            if fixed is None:
                continue
            name = (metric_name(labels) or "") if ex.options.delayed_name_removal else ""
            pos = self._hist_pos()
            ex.info(fixed.message(name, ex.position(pos) if pos else None))


@dataclass(frozen=True)
class _Layout:
    """What the bucket series' labels alone decide: rows with a malformed ``le``, and the valid
    rows sorted by (group, upper bound) with their bounds, each group's first row in that order
    (plus the end) and the groups; the arrays are read-only."""

    malformed: tuple[int, ...]
    buckets: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[Labels, ...]] | None


def _layout(labels: list[Labels]) -> _Layout:
    bounds = [parse_le(dict(ls).get(BUCKET_LABEL, "")) for ls in labels]
    malformed = tuple(i for i, b in enumerate(bounds) if b is None)
    rows = np.array([i for i, b in enumerate(bounds) if b is not None], dtype=np.int64)
    if rows.size == 0:
        return _Layout(malformed, None)
    keys = [tuple(p for p in labels[i] if p[0] != BUCKET_LABEL) for i in rows.tolist()]
    gids, groups = group_ids(keys)
    upper = np.array([bounds[i] for i in rows.tolist()], dtype=np.float64)
    order = np.lexsort((upper, gids))
    offsets = np.searchsorted(gids[order], np.arange(len(groups) + 1)).astype(np.int64)
    arrays = rows[order], upper[order], offsets
    for a in arrays:
        a.setflags(write=False)
    return _Layout(malformed, (*arrays, tuple(groups)))


# A dashboard's histogram asks for the same bucket series on every refresh.
_LAYOUTS = ListMemo(_layout)


def _bad_bucket(labels, delayed: bool) -> str:
    le = dict(labels).get(BUCKET_LABEL, "")
    text = f'PromQL warning: bucket label "le" is missing or has a malformed value of "{le}"'
    name = metric_name(labels) if delayed else None
    return f'{text} for metric name "{name}"' if name else text


def _quantile_warning(ex: Executor, q: np.ndarray, pos: PosRange | None) -> None:
    bad = q[(q < 0) | (q > 1) | np.isnan(q)]
    if bad.size:
        ex.warn(f"{QUANTILE_WARNING}, got {go_g(float(bad[0]))}", pos)


def format_openmetrics_float(v: float) -> str:
    """Prometheus ``labels.FormatOpenMetricsFloat``: ``0.0``, ``1.0``, ``0.25``, ``+Inf``."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(float(v))  # Go 'g' -1 and Python repr agree on the shortest digits
    if "e" in text:
        mantissa, exp = text.split("e")
        text = (
            f"{mantissa}e{exp[0]}{exp[1:].zfill(2)}"
            if exp[0] in "+-"
            else f"{mantissa}e+{exp.zfill(2)}"
        )
        return text
    return text if "." in text else text + ".0"


def _same(q: np.ndarray, v: float) -> np.ndarray:
    return np.isnan(q) if v != v else q == v
