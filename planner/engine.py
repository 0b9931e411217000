"""The exact PromQL engine: parse → logical plan → rules → execute → ``QueryResult``.

Used by the HTTP query API, the CLI and the conformance runner. Errors are ``promql.errors``
exceptions carrying Prometheus' ``errorType``; annotations go to ``warnings`` / ``infos``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner import sketch_cache
from planner.executor import Executor
from planner.explain import Explained, explain_json, explain_text
from planner.labels import ListMemo, finalize_names, merge_same_labels
from planner.logical import logical_plan
from planner.nodes.aggregate import PromAggregate
from planner.nodes.base import PlanNode
from planner.nodes.sort import Sort
from planner.nodes.step_invariant import StepInvariant
from planner.result import QueryResult, SeriesResult
from planner.rules import RuleStep, optimize
from planner.stmt import EvalStmt
from planner.values import InstantVector, RangeVector, ScalarValue, StringValue, Value
from promql.ast import Expr
from promql.errors import BadDataError
from promql.types import ValueType

if TYPE_CHECKING:
    from planner.nodes.precomputed_scan import SketchSource
    from storage.db import Storage


@dataclass(frozen=True)
class EngineOptions:
    lookback_ms: int = 300_000
    max_samples: int = 50_000_000  # Prometheus' --query.max-samples
    timeout_s: float = 120.0
    default_subquery_step_ms: int = 60_000  # subquery without step: the global eval interval
    delayed_name_removal: bool = False  # Prometheus 3 feature flag; conformance turns it on
    experimental: bool = False  # experimental functions and syntax
    precompute: bool = True  # used later by the sketch-rewrite issue


@dataclass(frozen=True)
class Planned:
    stmt: EvalStmt
    logical: PlanNode
    steps: list[RuleStep]
    query: str = ""

    @property
    def physical(self) -> PlanNode:
        return self.steps[-1].plan if self.steps else self.logical


class Engine:
    def __init__(
        self,
        storage: Storage,
        options: EngineOptions | None = None,
        precompute: SketchSource | None = None,
    ) -> None:
        self.storage = storage
        self.options = options or EngineOptions()
        self.precompute = precompute  # closed windows to answer from (issue 6); None: exact only

    # -- public API -------------------------------------------------------------------------

    def instant_query(
        self, query: str | Expr, time_ms: int, *, lookback_ms: int | None = None
    ) -> QueryResult:
        planned = self.plan(query, time_ms, time_ms, 0, lookback_ms=lookback_ms)
        return self._run(planned)[0]

    def range_query(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        lookback_ms: int | None = None,
    ) -> QueryResult:
        _check_range(start_ms, end_ms, step_ms)
        planned = self.plan(query, start_ms, end_ms, step_ms, lookback_ms=lookback_ms, range_=True)
        return self._run(planned)[0]

    def explain(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        analyze: bool = False,
        verbose: bool = False,
    ) -> Explained:
        is_range = not (start_ms == end_ms and step_ms <= 1)
        if is_range:
            _check_range(start_ms, end_ms, step_ms)
        planned = self.plan(query, start_ms, end_ms, step_ms, range_=is_range)
        result, ex = self._run(planned) if analyze else (None, None)
        args = (planned.stmt, planned.logical, planned.steps, verbose, ex)
        return Explained(explain_text(*args), explain_json(*args), result, planned.steps)

    # -- planning ---------------------------------------------------------------------------

    def parse(self, query: str | Expr) -> Expr:
        if not isinstance(query, str):
            return query
        return _parse_cached(query, self.options.experimental)

    def plan(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        lookback_ms: int | None = None,
        range_: bool = False,
    ) -> Planned:
        source = self.precompute if self.options.precompute else None
        configs = tuple(source.current()) if source is not None else ()
        key = None
        if isinstance(query, str):
            key = (query, start_ms, end_ms, step_ms, lookback_ms, range_, self.options)
            kept = _PLANS.get(key)
            if kept is not None and kept[0] is source and kept[1] == configs:
                return kept[2]
        planned = self._plan(query, start_ms, end_ms, step_ms, lookback_ms, range_, source)
        if key is not None:
            if len(_PLANS) >= PLANS_KEPT:
                _PLANS.clear()
            _PLANS[key] = (source, configs, planned)
        return planned

    def _plan(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        lookback_ms: int | None,
        range_: bool,
        source: SketchSource | None,
    ) -> Planned:
        expr = self.parse(query)
        if range_ and expr.type not in (ValueType.SCALAR, ValueType.VECTOR):
            raise BadDataError(
                f'invalid expression type "{expr.type.document_name()}" for range query, '
                "must be Scalar or instant Vector"
            )
        lookback = lookback_ms if lookback_ms and lookback_ms > 0 else self.options.lookback_ms
        stmt = EvalStmt(expr, start_ms, end_ms, step_ms if range_ else 0, lookback)
        logical = logical_plan(stmt, self.options.default_subquery_step_ms)
        text = query if isinstance(query, str) else ""
        return Planned(stmt, logical, optimize(logical, stmt.grid, source), text)

    # -- execution --------------------------------------------------------------------------

    def _run(self, planned: Planned) -> tuple[QueryResult, Executor]:
        stmt = planned.stmt
        ex = Executor(
            self.storage,
            self.options,
            stmt.lookback_ms,
            time.monotonic() + self.options.timeout_s,
            query=planned.query,
        )
        grid = stmt.grid
        # Decoded-window eviction and the warm-up wait until the result is computed.
        with sketch_cache.reading():
            value = ex.run(planned.physical, grid)
            result = _to_result(value, grid.times(), stmt, _is_ordered(planned.physical))
        result.warnings.extend(ex.warnings)
        result.infos.extend(ex.infos)
        return result, ex


# Plans by query text, times and options, with the sketch source and configurations they were
# made for. Grafana aligns a panel's range to its step, so every refresh within one step and
# every viewer of a dashboard asks the same query; a plan depends on none of the data (windows'
# coverage and the step cache are judged when it runs), so it is made once. Bounded: past
# ``PLANS_KEPT`` entries it starts over.
PLANS_KEPT = 1024
_PLANS: dict[tuple, tuple[SketchSource | None, tuple, Planned]] = {}


@functools.lru_cache(maxsize=1024)
def _parse_cached(query: str, experimental: bool) -> Expr:
    """Dashboards repeat the same queries; the AST is immutable, so parses are shared."""
    from promql.parser import ParserOptions, parse

    return parse(query, ParserOptions(experimental=experimental))


def _check_range(start_ms: int, end_ms: int, step_ms: int) -> None:
    if end_ms < start_ms:
        raise BadDataError("end timestamp must not be before start time")
    if step_ms <= 0:
        raise BadDataError(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        )


def _is_ordered(plan: PlanNode) -> bool:
    while isinstance(plan, StepInvariant):
        plan = plan.input
    if isinstance(plan, Sort):
        return True
    return isinstance(plan, PromAggregate) and plan.op in ("topk", "bottomk")


def _to_result(value: Value, times: np.ndarray, stmt: EvalStmt, ordered: bool) -> QueryResult:
    instant = stmt.is_instant
    if isinstance(value, StringValue):
        return QueryResult(ValueType.STRING, string=(stmt.start_ms, value.value))
    if isinstance(value, ScalarValue):
        if instant:
            return QueryResult(ValueType.SCALAR, scalar=(stmt.start_ms, float(value.values[0])))
        return QueryResult(ValueType.MATRIX, [SeriesResult((), times.copy(), value.values.copy())])
    if isinstance(value, RangeVector):
        return QueryResult(ValueType.MATRIX, _range_series(value))
    assert isinstance(value, InstantVector)
    vec = finalize_names(value) if value.drop_name is not None else merge_same_labels(value)
    # Row-wise any/all once for the whole matrix; full rows are sliced without a mask copy.
    any_point = vec.present.any(axis=1)
    all_points = vec.present.all(axis=1)
    if instant and ordered:
        rows = np.flatnonzero(any_point)
    else:  # label order, remembered per series list (a refresh sorts the same labels again)
        order = _SORTED_ROWS(vec.labels)
        rows = order[any_point[order]]
    series = []
    for i in rows.tolist():
        if all_points[i]:
            series.append(SeriesResult(vec.labels[i], times, vec.values[i]))
        else:
            mask = vec.present[i]
            series.append(SeriesResult(vec.labels[i], times[mask], vec.values[i, mask]))
    if instant:
        return QueryResult(ValueType.VECTOR, series, ordered=ordered)
    return QueryResult(ValueType.MATRIX, series)


def _sorted_rows(labels: list) -> np.ndarray:
    """Row indices in label order (stable, as ``list.sort``), read-only: shared by a memo."""
    order = np.array(sorted(range(len(labels)), key=labels.__getitem__), dtype=np.int64)
    order.flags.writeable = False
    return order


_SORTED_ROWS = ListMemo(_sorted_rows)


def _range_series(rv: RangeVector) -> list[SeriesResult]:
    """An instant query's range vector: each series' samples in its (single) window."""
    ra = rv.ranges
    out = []
    for i, labels in enumerate(rv.labels):
        o, n = int(ra.offsets[i]), int(ra.sizes[i])
        if n:
            out.append(SeriesResult(labels, ra.timestamps[o : o + n], ra.values[o : o + n]))
    out.sort(key=lambda s: s.labels)
    return out
