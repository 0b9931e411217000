"""``SummaryInfer``'s step answers through ``planner.step_cache``: cached steps are read, the
others computed from windows on the smallest sub-grids holding them, and the clean ones kept.

Only moments and counter inferences (``*_over_time``, ``rate``/``increase``) are cached: their
answer per step is a function of the stored windows alone. The key is the query shape (function,
range, offset, aggregation definition, selector); the entry holds the series list it was computed
for and is replaced when the query's series change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from planner import step_cache
from planner.nodes.precomputed_scan import PrecomputedScan, covered_windows, resolve_series
from planner.nodes.raw_windows import contiguous_runs
from planner.nodes.summary_merge import MergedSteps, SummaryMergeMultiple
from planner.precompute_match import family
from planner.sketch_table import table_for
from planner.stmt import Grid

if TYPE_CHECKING:
    from planner.executor import Executor

CACHED_FUNCTIONS = frozenset(
    {"rate", "increase", "sum_over_time", "count_over_time", "avg_over_time", "min_over_time",
     "max_over_time", "quantile_over_time"}
)  # fmt: skip

Compute = Callable[[Grid], tuple[MergedSteps, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Steps:
    """All steps' inferred answers over the query's series (what ``SummaryInfer`` continues
    with), and what was read or computed for ANALYZE."""

    labels: list
    values: np.ndarray  # [n, k]
    present: np.ndarray
    ok: np.ndarray  # [n, k]: answered from windows (False: the raw stitch answers it)
    cached_steps: int
    computed: list[MergedSteps]
    clean: np.ndarray  # [k]: steps answered from stored windows alone (cached or kept now)
    raw_only: bool = False  # no step can come from windows: the exact subtree answers all

    @staticmethod
    def everything_raw(k: int) -> Steps:
        none = np.zeros((0, k), dtype=bool)
        return Steps([], np.zeros((0, k)), none, none, 0, [], np.zeros(k, dtype=bool), True)


@dataclass(frozen=True)
class StepContext:
    """What decides whether a cached step is still right, read once per query (before anything
    is computed, so what is written meanwhile invalidates at the next lookup)."""

    key: Any  # the query shape
    labels: list  # the query's series over the whole grid
    table: Any
    first: Any  # the table's first record (another one: rebuilt)
    step_ends: np.ndarray  # each step's last window end (t − offset)
    window_ends: np.ndarray  # the window ends the grid spans
    records: dict[int, int]  # block → record count
    coverage: Any
    range_ms: int
    beyond: np.ndarray  # [k]: past the newest closed window (only raw samples answer them)

    def added_ends(self, b: int, old: int, now: int) -> np.ndarray:
        with self.table.lock:
            listed = self.table.index.get(b)
            recs = listed.recs[old:now] if listed is not None else []
            return np.fromiter((r.window_end for r in recs), dtype=np.int64, count=len(recs))

    @property
    def holes(self) -> Any:
        cov = self.coverage
        return cov[2] if cov is not None and len(cov) > 2 else ()

    @property
    def raw_only(self) -> bool:
        """Every step is past the newest closed window (e.g. an instant query at now): the
        series were not resolved, only raw samples answer."""
        return bool(self.beyond.all())

    def lookup(self, key: Any, rows: int | None = None) -> step_cache.Lookup:
        return step_cache.lookup(
            key, self.labels, self.first, self.step_ends, self.records, self.added_ends,
            self.holes, self.range_ms, rows,
        )  # fmt: skip

    def store(self, key: Any, keep: np.ndarray, values: np.ndarray, present: np.ndarray) -> None:
        step_cache.store(
            key, self.labels, self.first, self.step_ends[keep], values[:, keep],
            present[:, keep], self.table.block_ms, self.range_ms, self.records,
        )  # fmt: skip


def step_context(
    fn: str, merge: Any, ex: Executor, grid: Grid, extra: tuple = ()
) -> StepContext | None:
    """The cache's view of ``fn`` over ``merge``'s windows on ``grid`` (None: not cacheable).
    ``extra``: what else the answers depend on (a quantile's ``q``; sketches need one)."""
    scan = merge.input if isinstance(merge, SummaryMergeMultiple) else None
    if not (isinstance(scan, PrecomputedScan) and step_cache.enabled()):
        return None
    src, cfg = scan.source, scan.config
    if src is None or fn not in CACHED_FUNCTIONS:
        return None
    if family(cfg.aggregation_type) == "kll" and not extra:
        return None
    ends = scan.window_ends(grid)
    if ends.shape[0] == 0:
        return None
    table = table_for(src.store, cfg)
    step_ends = grid.times() - scan.offset_ms
    b_lo = int(step_ends[0] - scan.range_ms + 1) // table.block_ms
    b_hi = int(step_ends[-1]) // table.block_ms
    with table.lock:
        table.sync(src.store)
        first = table.first
        records = {b: len(table.index.get(b, ())) for b in range(b_lo, b_hi + 1)}
    cov = src.coverage(cfg.aggregation_id) if src.coverage is not None else None
    beyond = _beyond_closed_windows(cfg, table, cov, step_ends)
    labels: list = []
    if not beyond.all():  # the series are only needed to read or keep steps from windows
        labels, _rows, reason = resolve_series(
            ex.storage, cfg, scan.matchers, int(ends[0]) - cfg.window_size_ms + 1, int(ends[-1])
        )
        if reason or not labels:
            return None
    # Which windows count as covered depends on whether the engine's coverage is known.
    judged = cov is not None
    key = (fn, scan.range_ms, scan.offset_ms, cfg, scan.matchers, id(table), judged, *extra)
    return StepContext(
        key, labels, table, first, step_ends, ends, records, cov, scan.range_ms, beyond
    )


def _beyond_closed_windows(cfg: Any, table: Any, coverage: Any, step_ends: np.ndarray):
    """Steps past the newest closed sliding window: only raw samples can answer them.
    (Tumbling windows rebuild an open window from raw samples inside the scan.)"""
    if cfg.window_size_ms == cfg.slide_interval_ms:
        return np.zeros(step_ends.shape[0], dtype=bool)
    span = table.span()
    newest = span[1] if span is not None else np.iinfo(np.int64).min
    if coverage is not None:
        newest = min(newest, coverage[1])
    return step_ends > newest


def cached_steps(
    fn: str,
    merge: Any,
    ex: Executor,
    grid: Grid,
    compute: Compute,
    side: np.ndarray | None = None,
    extra: tuple = (),
) -> Steps | None:
    """The steps of ``grid`` from the cache and ``compute`` (None: not cacheable here, or a
    sub-grid could not be answered from windows — the caller then runs uncached).

    ``side``: per-step facts the caller keeps beside the answers ([rows, k]; e.g. a quantile
    step's rank error when its answer is approximate). ``compute`` fills its columns for the
    steps it computes; cached columns are filled here, and a step is only read from the cache
    when its facts are kept too."""
    ctx = step_context(fn, merge, ex, grid, extra)
    if ctx is None:
        return None
    if ctx.raw_only:
        return Steps.everything_raw(grid.n_steps)
    scan, labels, table, cov = merge.input, ctx.labels, ctx.table, ctx.coverage
    cfg, step_ends, ends = scan.config, ctx.step_ends, ctx.window_ends
    window = cfg.window_size_ms
    found = ctx.lookup(ctx.key)
    values, present, hit = found.values, found.present, found.hit
    if side is not None:
        facts = ctx.lookup((*ctx.key, "side"), rows=side.shape[0])
        lost = hit & ~facts.hit  # evicted apart: computed again
        values[:, lost], present[:, lost] = 0.0, False
        hit = hit & facts.hit
        side[:, hit] = facts.values[:, hit]
    n, k = len(labels), grid.n_steps
    ok = np.ones((n, k), dtype=bool)
    computed: list[MergedSteps] = []
    fresh = np.zeros(k, dtype=bool)
    row_of: dict[int, int] | None = None
    times = grid.times()
    # With sliding windows, steps past the newest closed window cannot come from windows: the
    # raw stitch answers them, without a scan that would only find them uncovered. (Tumbling
    # windows rebuild an open window from raw samples inside the scan: computed as usual.)
    beyond = ctx.beyond
    ok[:, beyond] = False
    for a, b in contiguous_runs(np.flatnonzero(~hit & ~beyond)):
        sub = Grid(int(times[a]), int(times[b]), grid.step_ms if b > a else 0)
        merged, v, p = compute(sub)
        if merged.reason:
            return None
        if len(merged.labels) == n and merged.labels == labels:
            rows = np.arange(n, dtype=np.int64)  # the usual case: the same series, in order
        else:
            if row_of is None:
                row_of = {id(ls): i for i, ls in enumerate(labels)}
            rows = np.array([row_of.get(id(ls), -1) for ls in merged.labels], dtype=np.int64)
        if (rows < 0).any():  # a series the full range did not list: leave it to the plain path
            return None
        values[rows, a : b + 1] = v
        present[rows, a : b + 1] = p
        run_ok = merged.ok.all(axis=0) if merged.ok.shape[0] else np.ones(b - a + 1, bool)
        ok[:, a : b + 1] = run_ok[None, :]
        ok[rows, a : b + 1] = merged.ok
        fresh[a : b + 1] = ok[:, a : b + 1].all(axis=0)
        computed.append(merged)
    # Only steps answered from stored windows alone are kept: a window rebuilt from raw samples
    # (tumbling: open, or before the aggregation existed) can still change without a record
    # being written. Every window end between a step's range and its end must be covered
    # (intermediate slide ends too: conservative).
    uncovered = np.concatenate([[0], np.cumsum(~covered_windows(table.span(), ends, window, cov))])
    upto = uncovered[np.searchsorted(ends, step_ends, "right")]
    since = uncovered[np.searchsorted(ends, step_ends - scan.range_ms, "right")]
    fresh &= upto == since
    keep = np.flatnonzero(fresh)
    if keep.shape[0]:
        ctx.store(ctx.key, keep, values, present)
        if side is not None:
            ctx.store((*ctx.key, "side"), keep, side, np.ones(side.shape, dtype=bool))
    clean = (hit & ~beyond) | fresh
    return Steps(labels, values, present, ok, int(hit.sum()), computed, clean)
