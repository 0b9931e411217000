"""Elementwise instant-vector functions: ``fn(values, *params) -> values`` (float64 arrays).

Parameters (``clamp`` bounds, ``round``'s ``to_nearest``) are scalars or arrays broadcastable
against ``values`` (e.g. per-step ``[n_steps]`` against ``[n_series, n_steps]``). Semantics follow
Prometheus ``promql/functions.go`` (main 2026) and Go's ``math`` package edge cases:
``sqrt(-1)`` and ``ln(-1)`` are NaN, ``ln(0)`` is -Inf, ``log10``/``log2`` are computed the way Go
computes them. Date functions take unix seconds and work in UTC; ``clamp`` with ``max < min``
yields no sample, which is reported through ``clamp_present``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray

# Go evaluates (1 / Ln10) and (1 / Ln2) as exact constants, then rounds once to float64.
_INV_LN10 = 0.43429448190325182765112891891660508229439700580366656611445378316586464920887
_INV_LN2 = 1.44269504088896340735992468100189213742664595415298593413544940693110921918118


def _f(values: Array) -> Array:
    return np.asarray(values, dtype=np.float64)


def _unary(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    def kernel(values: Array) -> Array:
        with np.errstate(all="ignore"):
            return fn(_f(values))

    kernel.__name__ = fn.__name__
    return kernel


abs_ = _unary(np.abs)
ceil = _unary(np.ceil)
floor = _unary(np.floor)
exp = _unary(np.exp)
sqrt = _unary(np.sqrt)
ln = _unary(np.log)
sin = _unary(np.sin)
cos = _unary(np.cos)
tan = _unary(np.tan)
asin = _unary(np.arcsin)
acos = _unary(np.arccos)
atan = _unary(np.arctan)


def sinh(values: Array) -> Array:
    # Go's math.Sinh is exp(|x|)/2 beyond |x| > 21, which overflows to Inf from |x| ~ 709.78
    # where the true sinh is still finite (up to ~710.48).
    v = _f(values)
    with np.errstate(all="ignore"):
        big = np.copysign(np.exp(np.abs(v)) * 0.5, v)
        return np.where(np.abs(v) > 21, big, np.sinh(v))


def cosh(values: Array) -> Array:
    # Go's math.Cosh: exp(|x|)/2 beyond |x| > 21 (overflowing like sinh above).
    v = _f(values)
    with np.errstate(all="ignore"):
        return np.where(np.abs(v) > 21, np.exp(np.abs(v)) * 0.5, np.cosh(v))


# Cephes' tanh as Go's math.Tanh computes it: x + x^3 P(x^2)/Q(x^2) below 0.625,
# 1 - 2/(exp(2|x|) + 1) up to MAXLOG/2, then +-1. libm's tanh differs in the last bit for about
# one argument in twelve, which shows in ``tanh(x) == 1`` and ``tanh(x) ^ NaN``.
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_TANH_ONE = 44.014845965556525


def tanh(values: Array) -> Array:
    v = _f(values)
    z = np.abs(v)
    with np.errstate(all="ignore"):
        s = v * v
        p, q = _TANH_P, _TANH_Q
        small = v + v * s * ((p[0] * s + p[1]) * s + p[2]) / (((s + q[0]) * s + q[1]) * s + q[2])
        mid = np.copysign(1 - 2 / (np.exp(2 * z) + 1), v)
    out = np.where(z >= 0.625, mid, np.where(v == 0, v, small))
    return np.where(z > _TANH_ONE, np.copysign(1.0, v), out)  # NaN stays NaN


asinh = _unary(np.arcsinh)
acosh = _unary(np.arccosh)
atanh = _unary(np.arctanh)


def log10(values: Array) -> Array:
    # Go: math.Log10(x) = math.Log(x) * (1/Ln10), not a separately rounded log10.
    with np.errstate(all="ignore"):
        return np.log(_f(values)) * _INV_LN10


def log2(values: Array) -> Array:
    # Go: frac, exp := Frexp(x); exact for powers of two, else Log(frac)*(1/Ln2) + exp.
    v = _f(values)
    frac, ex = np.frexp(v)
    with np.errstate(all="ignore"):
        general = np.log(frac) * _INV_LN2 + ex.astype(np.float64)
        out = np.where(frac == 0.5, (ex - 1).astype(np.float64), general)
    # Frexp of 0, ±Inf and NaN returns the input itself: Log's special cases apply.
    special = (v == 0) | ~np.isfinite(v)
    with np.errstate(all="ignore"):
        return np.where(special, np.log(v), out)


def rad(values: Array) -> Array:
    return _f(values) * math.pi / 180


def deg(values: Array) -> Array:
    return _f(values) * 180 / math.pi


def sgn(values: Array) -> Array:
    v = _f(values)
    return np.where(v < 0, -1.0, np.where(v > 0, 1.0, v))  # keeps NaN and ±0


def go_min(a: Array | float, b: Array | float) -> Array:
    """Go's ``math.Min``: -Inf wins over NaN (``Min(NaN, -Inf) == -Inf``), then NaN; -0 < +0."""
    a, b = np.broadcast_arrays(_f(a), _f(b))
    out = np.where(a < b, a, b)
    out = np.where(np.isnan(a) | np.isnan(b), np.nan, out)
    out = np.where((a == 0) & (b == 0), np.where(np.signbit(a), a, b), out)
    return np.where((a == -np.inf) | (b == -np.inf), -np.inf, out)


def go_max(a: Array | float, b: Array | float) -> Array:
    """Go's ``math.Max``: +Inf wins over NaN (``Max(NaN, +Inf) == +Inf``), then NaN; +0 > -0."""
    a, b = np.broadcast_arrays(_f(a), _f(b))
    out = np.where(a > b, a, b)
    out = np.where(np.isnan(a) | np.isnan(b), np.nan, out)
    out = np.where((a == 0) & (b == 0), np.where(np.signbit(a), b, a), out)
    return np.where((a == np.inf) | (b == np.inf), np.inf, out)


def clamp(values: Array, min_value: Array | float, max_value: Array | float) -> Array:
    """``math.Max(min, math.Min(max, v))``; see ``clamp_present`` for ``max < min``.

    Go's special cases matter here: ``clamp_max(-Inf, NaN)`` is -Inf and ``clamp_min(NaN, +Inf)``
    is +Inf, where numpy's ``minimum``/``maximum`` would give NaN.
    """
    return go_max(min_value, go_min(max_value, values))


def clamp_present(min_value: Array | float, max_value: Array | float) -> Array:
    """False where ``clamp`` must output nothing (upstream: ``max < min`` drops the vector)."""
    return ~(_f(max_value) < _f(min_value))


def clamp_min(values: Array, min_value: Array | float) -> Array:
    return clamp(values, min_value, np.inf)


def clamp_max(values: Array, max_value: Array | float) -> Array:
    return clamp(values, -np.inf, max_value)


def round_(values: Array, to_nearest: Array | float = 1.0) -> Array:
    """``math.Floor(v*inv + 0.5) / inv`` with ``inv = 1/to_nearest``; ties round up."""
    with np.errstate(all="ignore"):
        inv = 1.0 / _f(to_nearest)
        return np.floor(_f(values) * inv + 0.5) / inv


def pi() -> float:
    return math.pi


def time_(eval_times_ms: Array) -> Array:
    """``time()`` per step: evaluation time in seconds."""
    return np.asarray(eval_times_ms, dtype=np.int64).astype(np.float64) / 1000


def _seconds(values: Array) -> tuple[Array, Array]:
    """Go ``time.Unix(int64(v), 0)``: truncate toward zero; non-finite values give NaN output."""
    v = _f(values)
    ok = np.isfinite(v) & (np.abs(v) < 2.0**53)
    return np.where(ok, np.trunc(np.where(ok, v, 0.0)), 0).astype(np.int64), ok


def _date(values: Array, part: Callable[[Array], Array]) -> Array:
    secs, ok = _seconds(values)
    out = part(secs.astype("datetime64[s]")).astype(np.float64)
    return np.where(ok, out, np.nan)


def _days(t: Array) -> Array:
    return t.astype("datetime64[D]")


def year(values: Array) -> Array:
    return _date(values, lambda t: t.astype("datetime64[Y]").astype(np.int64) + 1970)


def month(values: Array) -> Array:
    return _date(values, lambda t: t.astype("datetime64[M]").astype(np.int64) % 12 + 1)


def day_of_month(values: Array) -> Array:
    return _date(values, lambda t: (_days(t) - t.astype("datetime64[M]")).astype(np.int64) + 1)


def day_of_year(values: Array) -> Array:
    return _date(values, lambda t: (_days(t) - t.astype("datetime64[Y]")).astype(np.int64) + 1)


def day_of_week(values: Array) -> Array:
    # 1970-01-01 was a Thursday (Go's Weekday: Sunday = 0).
    return _date(values, lambda t: (_days(t).astype(np.int64) + 4) % 7)


def days_in_month(values: Array) -> Array:
    def part(t: Array) -> Array:
        m = t.astype("datetime64[M]")
        return ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)

    return _date(values, part)


def hour(values: Array) -> Array:
    return _date(values, lambda t: (t - _days(t)).astype(np.int64) // 3600)


def minute(values: Array) -> Array:
    return _date(values, lambda t: (t - _days(t)).astype(np.int64) % 3600 // 60)


def scalar(values: Array, present: Array) -> Array:
    """``scalar(v)`` per step from ``[n_series, n_steps]``: the single present value, else NaN."""
    n = present.sum(axis=0)
    first = np.argmax(present, axis=0)
    picked = _f(values)[first, np.arange(present.shape[1])] if present.shape[0] else 0.0
    return np.where(n == 1, picked, np.nan)
