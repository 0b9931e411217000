"""Query endpoint parameters, parsed and validated as Prometheus' ``web/api/v1/api.go`` does.

Order of checks and error texts follow upstream ``query``/``queryRange`` (Prometheus 3): limit,
time(s), end before start, step, zero/negative step, the 11,000 points limit, timeout,
lookback_delta. Every problem is a ``BadDataError`` (HTTP 400) with upstream's message, most of
them wrapped as ``invalid parameter "<name>": <reason>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from promql.errors import BadDataError
from server.timeparse import parse_duration, parse_time

MAX_POINTS = 11_000
_ATOI = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.I)
_TRUE = ("1", "t", "T", "TRUE", "true", "True")


@dataclass(frozen=True)
class QueryOptions:
    """The parameters shared by instant and range queries."""

    query: str
    limit: int = 0  # 0 = no limit
    timeout_s: float | None = None
    lookback_ms: int | None = None
    stats: str = ""
    explain: bool = False  # Tidemark extension: plan only, no execution
    analyze: bool = False  # Tidemark extension: result plus the plan with per-node timing


@dataclass(frozen=True)
class InstantParams:
    options: QueryOptions
    time_ms: int


@dataclass(frozen=True)
class RangeParams:
    options: QueryOptions
    start_ms: int
    end_ms: int
    step_ms: int


def invalid(name: str, reason: str) -> BadDataError:
    return BadDataError(f'invalid parameter "{name}": {reason}')


def parse_limit(value: str) -> int:
    """``parseLimitParam``: empty = 0 (no limit); Go ``strconv.Atoi`` errors otherwise."""
    if value == "":
        return 0
    if not _ATOI.fullmatch(value):
        raise invalid("limit", f'strconv.Atoi: parsing "{value}": invalid syntax')
    limit = int(value)
    if not -(2**63) <= limit < 2**63:
        raise invalid("limit", f'strconv.Atoi: parsing "{value}": value out of range')
    if limit < 0:
        raise invalid("limit", "limit must be non-negative")
    return limit


def _time(value: str, name: str) -> int:
    try:
        return parse_time(value)
    except ValueError as err:
        raise invalid(name, str(err)) from err


def duration_ns(value: str) -> int:
    """``parseDuration`` in nanoseconds (Go ``time.Duration``), ``ValueError`` with its text."""
    if _FLOAT.fullmatch(value):
        seconds = float(value)
        ns = seconds * 1e9
        if ns != ns or ns > 2**63 - 1 or ns < -(2**63):
            if ns != ns:
                return 0  # Go converts NaN durations to the minimum int64; treated as invalid step
            raise ValueError(f'cannot parse "{value}" to a valid duration. It overflows int64')
        return int(ns)
    return parse_duration(value) * 1_000_000


def _common(form: Mapping[str, str], now_ms: int | None) -> QueryOptions:
    timeout_s = None
    if form.get("timeout", ""):
        try:
            timeout_s = duration_ns(form["timeout"]) / 1e9
        except ValueError as err:
            raise invalid("timeout", str(err)) from err
    lookback_ms = None
    if form.get("lookback_delta", ""):
        try:
            lookback_ms = duration_ns(form["lookback_delta"]) // 1_000_000
        except ValueError as err:
            raise BadDataError(f"error parsing lookback delta duration: {err}") from err
    return QueryOptions(
        query=form.get("query", ""),
        timeout_s=timeout_s,
        lookback_ms=lookback_ms,
        stats=form.get("stats", ""),
        explain=form.get("explain", "") in _TRUE,
        analyze=form.get("analyze", "") in _TRUE,
    )


def instant_params(form: Mapping[str, str], now_ms: int) -> InstantParams:
    """``/api/v1/query``: ``time`` defaults to now."""
    limit = parse_limit(form.get("limit", ""))
    raw_time = form.get("time", "")
    if raw_time == "":
        t = now_ms
    else:
        try:
            t = parse_time(raw_time)
        except ValueError as err:
            raise invalid("time", f"invalid time value for 'time': {err}") from err
    options = _common(form, now_ms)
    return InstantParams(_with_limit(options, limit), t)


def range_params(form: Mapping[str, str]) -> RangeParams:
    """``/api/v1/query_range``: start, end and step are required."""
    limit = parse_limit(form.get("limit", ""))
    start = _time(form.get("start", ""), "start")
    end = _time(form.get("end", ""), "end")
    if end < start:
        raise invalid("end", "end timestamp must not be before start time")
    try:
        step_ns = duration_ns(form.get("step", ""))
    except ValueError as err:
        raise invalid("step", str(err)) from err
    if step_ns <= 0:
        raise invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    if ((end - start) * 1_000_000) // step_ns > MAX_POINTS:
        raise BadDataError(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    options = _common(form, None)
    # Prometheus evaluates with millisecond steps; a sub-millisecond step that passed the checks
    # above (start == end) still needs a positive step for the evaluator.
    step_ms = max(1, step_ns // 1_000_000)
    return RangeParams(_with_limit(options, limit), start, end, step_ms)


def _with_limit(options: QueryOptions, limit: int) -> QueryOptions:
    return QueryOptions(
        query=options.query,
        limit=limit,
        timeout_s=options.timeout_s,
        lookback_ms=options.lookback_ms,
        stats=options.stats,
        explain=options.explain,
        analyze=options.analyze,
    )
