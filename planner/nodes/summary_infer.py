"""``SummaryInfer``: the range function's value from merged window states, raw data for the rest.

Computes ``sum/count/avg/min/max_over_time``, ``quantile_over_time`` and ``rate``/``increase``
(Prometheus' ``extrapolatedRate``, vectorized over series × steps) from ``SummaryMergeMultiple``.
Steps the windows cannot answer (not covered, overlapping counter states) are evaluated by the
original exact subtree (``exact``) on the smallest sub-grid holding them and stitched in; when the
windows cannot answer at all (``reason``) the exact subtree answers everything. So no point is
ever silently missing. Output matches ``RangeFunction``: names dropped, same annotations, plus an
``infos`` note when a quantile came from a sketch past its exact capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from planner.cached_steps import cached_steps
from planner.labels import with_names_dropped
from planner.nodes.base import PlanNode, require_type
from planner.nodes.range_function import KEEPS_NAME, QUANTILE_WARNING, go_g, non_counter_info
from planner.nodes.summary_merge import MergedSteps
from planner.stmt import Grid
from planner.values import InstantVector, ScalarValue
from promql.ast import PosRange
from promql.types import ValueType
from udfs.extrapolation import extrapolated_rate, go_seconds

if TYPE_CHECKING:
    from planner.executor import Executor

# Executor scratch key: the steps of the last evaluation answered from stored windows alone.
CLEAN_STEPS = "summary-infer-clean-steps"
APPROX_INFO = (
    "PromQL info: approximate: {fn} from precomputed aggregation {agg}: {kind} "
    "rank error ≤ {err:.2%} at 99% confidence"
)


@dataclass(frozen=True)
class SummaryInfer(PlanNode):
    fn: str
    input: PlanNode  # SummaryMergeMultiple
    exact: PlanNode  # the original RangeFunction subtree: raw data for what windows cannot answer
    range_ms: int
    offset_ms: int
    aggregation: str  # "<id> (<type>[ k=K])" for annotations
    params_: tuple[PlanNode, ...] = ()
    pos: PosRange | None = field(default=None, compare=False)

    INPUTS = ("params_", "input", "exact")

    def params(self):
        return [("fn", self.fn), ("range", self.range_ms)]

    def check(self) -> None:
        require_type(self, self.input, ValueType.NONE)
        require_type(self, self.exact, ValueType.VECTOR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        note = notes_for(ex, self)
        k = grid.n_steps
        # A quantile's steps are cached per q (one for the whole grid), with each step's rank
        # error kept beside them (0: exact) so that a refresh answered from the cache alone
        # still says it is approximate.
        extra, errors = self._quantile_key(ex, grid), None
        if extra:
            errors = np.zeros((1, k))

        def compute(sub: Grid) -> tuple[MergedSteps, np.ndarray, np.ndarray]:
            merged = ex.run(self.input, sub)
            assert isinstance(merged, MergedSteps)
            if merged.reason or not merged.labels:
                return merged, np.zeros((0, sub.n_steps)), np.zeros((0, sub.n_steps), bool)
            values, present, error = self._compute(ex, merged, sub)
            if errors is not None:
                errors[0, _columns(grid, sub)] = error
            return merged, values, present

        steps = cached_steps(self.fn, self.input, ex, grid, compute, errors, extra)
        if steps is not None and steps.raw_only:
            note["raw_steps"] = note.get("raw_steps", 0) + k
            ex.scan_cache[(CLEAN_STEPS, id(self))] = steps.clean
            return ex.run(self.exact, grid)
        if steps is not None:
            _note_merges(note, steps.computed)
            note["cached_steps"] = steps.cached_steps
            ex.scan_cache[(CLEAN_STEPS, id(self))] = steps.clean
            all_labels, values, present, ok = steps.labels, steps.values, steps.present, steps.ok
            if errors is not None:
                self._approximate_info(ex, errors[0][present.any(axis=0)])
        else:
            merged, values, present = compute(grid)
            _note_merges(note, [merged])
            if merged.reason:
                note["fallback"] = merged.reason
                return ex.run(self.exact, grid)
            if not merged.labels:  # no series has samples anywhere in the windows' span
                return InstantVector.empty(k)
            all_labels, ok = merged.labels, merged.ok
        bad = ~ok.all(axis=0) if ok.shape[0] else np.zeros(k, bool)
        keep = present.any(axis=1)
        rows = np.flatnonzero(keep)
        labels = [all_labels[i] for i in rows.tolist()]
        if self.fn in ("rate", "increase"):
            non_counter_info(ex, labels, self.pos)
        out = InstantVector(labels, values[rows], present[rows])
        if self.fn not in KEEPS_NAME:
            out = with_names_dropped(out, ex.options.delayed_name_removal)
        if bad.any():
            note["raw_steps"] = int(bad.sum())
            out = stitch_exact_steps(ex, self.exact, grid, out, bad)
        return out

    def _quantile_key(self, ex: Executor, grid: Grid) -> tuple:
        """``("q", q)`` when this is a quantile with one valid ``q`` for the whole grid (what
        its cached steps depend on besides the windows), else ``()``: not cached."""
        if self.fn != "quantile_over_time" or not self.params_:
            return ()
        sv = ex.run(self.params_[0], grid)
        assert isinstance(sv, ScalarValue)
        q = np.asarray(sv.values, np.float64)
        if q.shape[0] == 0 or not (q == q[0]).all() or not 0.0 <= q[0] <= 1.0:
            return ()
        return ("q", float(q[0]))

    def _approximate_info(self, ex: Executor, errors: np.ndarray) -> None:
        if errors.shape[0] and errors.max() > 0:
            err = float(errors.max())
            ex.info(APPROX_INFO.format(fn=self.fn, agg=self.aggregation, kind="KLL", err=err))

    def _compute(self, ex: Executor, merged: MergedSteps, grid: Grid):
        """(values, present, each step's rank error: 0 unless its quantile is approximate)."""
        times = grid.times() - self.offset_ms
        c, ok = merged.cols, merged.ok
        if merged.family == "moments":
            present = ok & (c["count"] > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = {
                    "sum_over_time": lambda: c["sum"],
                    "count_over_time": lambda: c["count"].astype(np.float64),
                    "avg_over_time": lambda: c["sum"] / c["count"],
                    "min_over_time": lambda: c["min"],
                    "max_over_time": lambda: c["max"],
                }[self.fn]()
        elif merged.family == "counter":
            values, present = extrapolate(c, times - self.range_ms, times, self.fn == "rate")
            present &= ok
        else:
            values, present, approx = self._quantiles(ex, merged, grid)
            error = np.where(approx, merged.rank_error, 0.0)
            return np.where(present, values, 0.0), present, error
        return np.where(present, values, 0.0), present, np.zeros(grid.n_steps)

    def _quantiles(self, ex: Executor, merged: MergedSteps, grid: Grid):
        sv = ex.run(self.params_[0], grid)
        assert isinstance(sv, ScalarValue)
        q = sv.values
        assert merged.kll is not None
        # All (series, step) cells at once: array lookups into the windows' weighted segments.
        values, present, approx = merged.kll.quantiles(merged.ok, np.asarray(q, np.float64))
        bad = q[present.any(axis=0) & ((q < 0) | (q > 1) | np.isnan(q))]
        if bad.size:
            ex.warn(f"{QUANTILE_WARNING}, got {go_g(float(bad[0]))}", self.pos)
        self._approximate_info(ex, np.where(approx, merged.rank_error, 0.0))
        return values, present, approx


def _columns(grid: Grid, sub: Grid) -> np.ndarray:
    """The columns of ``grid`` that the steps of ``sub`` (a part of it) are."""
    if grid.step_ms <= 0:
        return np.zeros(sub.n_steps, dtype=np.int64)
    return (sub.times() - grid.start_ms) // grid.step_ms


def _note_merges(note: dict, merged: list[MergedSteps]) -> None:
    note["windows_merged"] = note.get("windows_merged", 0) + sum(m.windows_merged for m in merged)
    note["entries"] = note.get("entries", 0) + sum(m.entries for m in merged)
    raw = sum(m.raw_windows for m in merged)
    if raw:
        note["raw_windows"] = note.get("raw_windows", 0) + raw


def notes_for(ex: Executor, node: PlanNode) -> dict:
    """Per-node facts for ANALYZE (windows merged, raw fallbacks), kept with the executor."""
    return ex.scan_cache.setdefault(("precompute-notes", id(node)), {})


def analyze_notes(ex: Executor, node: PlanNode) -> dict:
    return dict(ex.scan_cache.get(("precompute-notes", id(node)), {}))


def extrapolate(c: dict[str, np.ndarray], start: np.ndarray, end: np.ndarray, is_rate: bool):
    """Prometheus' ``extrapolatedRate`` for counters from merged state, over [series, steps];
    ``start``/``end`` are per step ``t − range`` and ``t``."""
    present = c["n"] >= 2
    with np.errstate(invalid="ignore", over="ignore"):
        result = c["last_v"] - c["first_v"] + c["resets"]
    range_s = go_seconds(int(end[0] - start[0])) if is_rate and end.shape[0] else None
    values = extrapolated_rate(
        result, c["first_v"], c["first_t"], c["last_t"], c["n"], start, end,
        counter=True, range_seconds=range_s,
    )  # fmt: skip
    return np.where(present, values, 0.0), present


def stitch_exact_steps(
    ex: Executor, exact: PlanNode, grid: Grid, pre: InstantVector, bad: np.ndarray
):
    """Replace the ``bad`` step columns of ``pre`` with the exact subtree's answer for them,
    evaluated once per contiguous run of bad steps (typically a few at the start and the end)."""
    from planner.nodes.raw_windows import contiguous_runs
    from planner.raw_step_cache import run_exact

    k, times = grid.n_steps, grid.times()
    index = {ls: i for i, ls in enumerate(pre.labels)}
    labels = list(pre.labels)
    parts = []
    for a, b in contiguous_runs(np.flatnonzero(bad)):
        sub = Grid(int(times[a]), int(times[b]), grid.step_ms if b > a else 0)
        # Read only what these steps need (the planned ranges cover the whole grid).
        raw = run_exact(ex, exact, sub)
        assert isinstance(raw, InstantVector)
        for ls in raw.labels:
            if ls not in index:
                index[ls] = len(labels)
                labels.append(ls)
        parts.append((a, b, raw))
    if len(labels) == pre.n_series and pre.values.flags.writeable and pre.present.flags.writeable:
        # No new series (the usual case): overwrite the bad columns of ``pre`` (this node's
        # own arrays) instead of copying the whole matrix.
        values, present = pre.values, pre.present
        present[:, bad] = False
    else:
        values = np.zeros((len(labels), k))
        present = np.zeros((len(labels), k), dtype=bool)
        values[: pre.n_series] = pre.values
        present[: pre.n_series] = pre.present & ~bad[None, :]
    drop = np.zeros(len(labels), dtype=bool)
    drop[: pre.n_series] = pre.drop_mask()
    any_drop = pre.drop_name is not None
    for a, b, raw in parts:
        rows = np.array([index[ls] for ls in raw.labels], dtype=np.int64)
        if rows.shape[0]:
            values[rows, a : b + 1] = raw.values
            present[rows, a : b + 1] = raw.present
            drop[rows] |= raw.drop_mask()
        any_drop = any_drop or raw.drop_name is not None
    keep = np.flatnonzero(present.any(axis=1))
    return InstantVector(
        [labels[i] for i in keep.tolist()],
        values[keep],
        present[keep],
        drop[keep] if any_drop else None,
    )
