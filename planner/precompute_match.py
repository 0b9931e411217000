"""Capability matching: which configured aggregation can answer a range function or an instant
selector, and why not.

Shared by the ``use_precompute`` rule (plan time) and the workload advisor. A match must be
provable from the configuration alone; everything that depends on the data (which series exist,
whether the key labels identify them, which windows are closed) is re-checked at execution time by
``PrecomputedScan``, which then falls back to raw data. Every refusal is a sentence naming the
aggregation, so EXPLAIN can show it.

Rules (in order, first failure wins per aggregation):

1. same metric (the selector has ``__name__="m"``);
2. compatible statistic (``sum_over_time`` needs a sum, ``rate`` a counter state, ...);
3. filter: every matcher of the config's ``spatialFilter`` is one of the query's matchers (the
   query may add matchers: they are applied per series, since answers are per series);
4. per-series state: the key labels (grouping + aggregated) must be non-empty — an aggregation that
   merges series cannot answer a per-series range function;
5. windows tile the range: range a multiple of the window; no ``@``; evaluation times minus offset
   on the slide grid; a range query's step a multiple of the slide.

Instant selectors under an aggregation (``Target.fn == LATEST``) follow the same rules with the
lookback as the range; they need a ``MultipleLast`` state (a window sum is the sum of all samples,
not of each series' newest one), and ``@`` is allowed when ``@ − offset`` is on the slide grid.

Among the matches the one needing the fewest window merges per step wins (largest window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from precompute.config import AggregationConfig
from promql.lexing import format_duration_ms
from promql.types import Matcher, MatchType
from storage.model import METRIC_NAME

# ``Target.fn`` of an instant selector (``x``, ``x offset 5m``, ``x @ t``) under an aggregation:
# per series the newest sample in ``(t − lookback, t]``, absent when that sample is a stale marker.
LATEST = "instant selector"

# The statistic each supported range function needs.
FUNCTION_STATS: dict[str, tuple[str, ...]] = {
    "sum_over_time": ("sum",),
    "count_over_time": ("count",),
    "avg_over_time": ("sum", "count"),
    "min_over_time": ("min",),
    "max_over_time": ("max",),
    "quantile_over_time": ("quantile",),
    "rate": ("counter",),
    "increase": ("counter",),
    LATEST: ("last",),
}

# What each accumulator type can answer (its declared statistics, not its internal state).
TYPE_STATS: dict[str, frozenset[str]] = {
    "Sum": frozenset({"sum", "count"}),
    "Count": frozenset({"count"}),
    "Min": frozenset({"min", "count"}),
    "Max": frozenset({"max", "count"}),
    "MinMax": frozenset({"min", "max", "count"}),
    "Avg": frozenset({"sum", "count"}),
    "MultipleSum": frozenset({"sum", "count"}),
    "MultipleMinMax": frozenset({"min", "max", "count"}),
    "DatasketchesKLL": frozenset({"quantile"}),
    "Increase": frozenset({"counter"}),
    "MultipleIncrease": frozenset({"counter"}),
    "MultipleLast": frozenset({"last"}),
}

MOMENT_TYPES = frozenset({"Sum", "Count", "Min", "Max", "MinMax", "Avg"})
KEYED_MOMENT_TYPES = frozenset({"MultipleSum", "MultipleMinMax"})
COUNTER_TYPES = frozenset({"Increase", "MultipleIncrease"})
LAST_TYPES = frozenset({"MultipleLast"})


def family(agg_type: str) -> str:
    """``moments`` | ``counter`` | ``kll`` | ``last``: how windows of this type are merged."""
    if agg_type in COUNTER_TYPES:
        return "counter"
    if agg_type == "DatasketchesKLL":
        return "kll"
    if agg_type in LAST_TYPES:
        return "last"
    return "moments"


@dataclass(frozen=True)
class Target:
    """A range function over a matrix selector, as the query states it."""

    fn: str
    matchers: tuple[Matcher, ...]
    range_ms: int
    offset_ms: int = 0
    at_ms: int | None = None

    @property
    def metric(self) -> str | None:
        for m in self.matchers:
            if m.name == METRIC_NAME and m.type is MatchType.EQUAL:
                return m.value
        return None


@dataclass(frozen=True)
class GridSpec:
    """Evaluation times ``start + i * step`` (``step == 0``: one instant)."""

    start_ms: int
    step_ms: int


@dataclass(frozen=True)
class Match:
    config: AggregationConfig
    windows_per_step: int  # windows merged per evaluation step


def key_labels(cfg: AggregationConfig) -> tuple[str, ...]:
    """Labels that name one state: grouping values, then (keyed types) the aggregated ones."""
    return cfg.labels.grouping + (cfg.labels.aggregated if cfg.keyed else ())


def _d(ms: int) -> str:
    return format_duration_ms(ms)


def refusal(cfg: AggregationConfig, target: Target, grid: GridSpec | None) -> str | None:
    """Why ``cfg`` cannot answer ``target`` (None: it can)."""
    name = f"aggregation {cfg.aggregation_id} ({cfg.aggregation_type})"
    if target.metric != cfg.metric:
        return f"{name}: metric {cfg.metric} is not the selector's"
    needed = FUNCTION_STATS.get(target.fn)
    if needed is None:
        return f"{name}: function {target.fn} is not answered from windows"
    have = TYPE_STATS.get(cfg.aggregation_type, frozenset())
    missing = [s for s in needed if s not in have]
    if missing and target.fn == LATEST:
        kept = "+".join(sorted(have)) or "no statistic"
        return (
            f"{name}: an instant selector reads each series' newest sample in the lookback "
            f"(a stale marker ends the series); this keeps the {kept} of all samples per window "
            "instead (a MultipleLast aggregation answers it)"
        )
    if missing:
        return f"{name}: {target.fn} needs {'+'.join(missing)}, which it does not keep"
    query = set(target.matchers)
    absent = [m for m in cfg.matchers if m not in query]
    if absent:
        text = ", ".join(f'{m.name}{m.type.value}"{m.value}"' for m in absent)
        return f"{name}: its filter {text} is not among the query's matchers"
    if not key_labels(cfg):
        return f"{name}: it merges all series into one state (no key labels)"
    return _window_refusal(name, cfg, target, grid)


def _window_refusal(
    name: str, cfg: AggregationConfig, target: Target, grid: GridSpec | None
) -> str | None:
    window, slide = cfg.window_size_ms, cfg.slide_interval_ms
    instant = target.fn == LATEST
    if target.at_ms is not None and not instant:
        return f"{name}: the @ modifier pins the range outside the window grid"
    if target.range_ms % window:
        what = "lookback" if instant else "range"
        return f"{name}: {what} {_d(target.range_ms)} is not a multiple of window {_d(window)}"
    if target.at_ms is not None:  # one evaluation time for every step
        if (target.at_ms - target.offset_ms) % slide:
            return f"{name}: @ {target.at_ms} minus offset is not on the window grid ({_d(slide)})"
        return None
    if grid is None:
        return None
    if (grid.start_ms - target.offset_ms) % slide:
        return (
            f"{name}: evaluation time {grid.start_ms} minus offset is not on the window grid "
            f"(slide {_d(slide)})"
        )
    if grid.step_ms and grid.step_ms % slide:
        return f"{name}: step {_d(grid.step_ms)} is not a multiple of slide {_d(slide)}"
    return None


def choose(
    configs: Sequence[AggregationConfig], target: Target, grid: GridSpec | None
) -> tuple[Match | None, list[str]]:
    """The best matching aggregation (fewest windows merged per step) and every refusal."""
    matches: list[Match] = []
    reasons: list[str] = []
    for cfg in sorted(configs, key=lambda c: c.aggregation_id):
        why = refusal(cfg, target, grid)
        if why is None:
            matches.append(Match(cfg, target.range_ms // cfg.window_size_ms))
        elif target.metric == cfg.metric:  # other metrics' configs are not worth a line
            reasons.append(why)
    if not matches:
        if not reasons:
            reasons.append(f"no aggregation is configured for metric {target.metric}")
        return None, reasons
    best = min(matches, key=lambda m: (m.windows_per_step, m.config.aggregation_id))
    return best, reasons
