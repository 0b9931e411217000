"""Time and duration parameters, parsed exactly as Prometheus' HTTP API parses them.

Mirrors ``web/api/v1/api.go`` (``parseTime``, ``parseDuration``, ``parseTimeParam``) of
Prometheus 2.42: a time is float seconds (fraction rounded to milliseconds) or RFC 3339 with
optional fraction, and the two strings Prometheus itself prints for its min/max time are accepted
as open bounds. Results are int64 milliseconds.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from promql.errors import BadDataError

MIN_TIME_MS = -9_223_309_901_257_974_000
"""Prometheus' ``minTime`` (``time.Unix(math.MinInt64/1000+62135596801, 0)``) in ms."""
MAX_TIME_MS = 9_223_309_901_257_974_999
"""Prometheus' ``maxTime`` (``time.Unix(math.MaxInt64/1000-62135596801, 999999999)``) in ms."""
MIN_TIME_FORMATTED = "-292273086-05-16T16:47:06Z"
MAX_TIME_FORMATTED = "292277025-08-18T07:12:54.999999999Z"

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.I)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _go_float(s: str) -> float | None:
    """``strconv.ParseFloat`` for decimal input (hex floats are not used for times)."""
    if not _FLOAT.fullmatch(s):
        return None
    return float(s)


def _go_round(x: float) -> float:
    """Go's ``math.Round``: half away from zero (Python's ``round`` is half to even)."""
    whole = math.trunc(x)
    if abs(x - whole) >= 0.5:
        whole += math.copysign(1.0, x)
    return float(whole)


def _from_seconds(t: float) -> int:
    """``time.Unix(int64(s), int64(round(frac*1000)/1000 * 1e9))`` then ``timestamp.FromTime``."""
    frac, whole = math.modf(t)
    frac = _go_round(frac * 1000) / 1000
    sec, nsec = int(whole), int(frac * 1e9)
    if nsec < 0:  # time.Unix normalizes nsec into [0, 1e9)
        sec, nsec = sec - 1, nsec + 1_000_000_000
    return sec * 1000 + nsec // 1_000_000


def _from_rfc3339(s: str) -> int | None:
    m = _RFC3339.fullmatch(s)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    zone = m.group(8)
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        zh, zm = int(zone[1:3]), int(zone[4:6])
        if zh > 23 or zm > 59:
            return None
        dt -= sign * timedelta(hours=zh, minutes=zm)
    ms = (dt - _EPOCH) // timedelta(milliseconds=1)
    fraction = m.group(7) or ""
    return ms + int((fraction + "000")[:3])


def parse_time(s: str) -> int:
    """Milliseconds for a Prometheus API time string; raises ``ValueError`` with its message."""
    t = _go_float(s)
    if t is not None:
        if not math.isfinite(t):
            raise ValueError(f"cannot parse {s!r} to a valid timestamp")
        return max(MIN_TIME_MS, min(MAX_TIME_MS, _from_seconds(t)))
    ms = _from_rfc3339(s)
    if ms is not None:
        return ms
    if s == MIN_TIME_FORMATTED:
        return MIN_TIME_MS
    if s == MAX_TIME_FORMATTED:
        return MAX_TIME_MS
    raise ValueError(f'cannot parse "{s}" to a valid timestamp')


def parse_duration(s: str) -> int:
    """Milliseconds for float seconds or a Prometheus duration (``1h30m``, ``5m``, ``250ms``)."""
    d = _go_float(s)
    if d is not None:
        ns = d * 1e9
        if not math.isfinite(ns) or ns > 2**63 - 1 or ns < -(2**63):
            raise ValueError(f'cannot parse "{s}" to a valid duration. It overflows int64')
        return int(ns) // 1_000_000 if ns >= 0 else -(int(-ns) // 1_000_000)
    m = _DURATION.fullmatch(s)
    if (s and m and s != "0") or s == "0":
        if s == "0":
            return 0
        assert m is not None
        return sum(int(g) * unit for g, unit in zip(m.groups(), _DURATION_MS, strict=True) if g)
    raise ValueError(f'cannot parse "{s}" to a valid duration')


def time_param(value: str | None, name: str, default_ms: int) -> int:
    """A time query parameter, ``default_ms`` when absent or empty (Prometheus' behaviour)."""
    if value is None or value == "":
        return default_ms
    try:
        return parse_time(value)
    except ValueError as err:
        raise BadDataError(f'invalid parameter "{name}": {err}') from err


def duration_param(value: str | None, name: str) -> int:
    if value is None or value == "":
        raise BadDataError(f'invalid parameter "{name}": missing duration')
    try:
        return parse_duration(value)
    except ValueError as err:
        raise BadDataError(f'invalid parameter "{name}": {err}') from err
