"""The one PromQL function registry: signatures the type checker uses now and the planner later.

Signatures follow Prometheus 3 (``promql/parser/functions.go``, commit d15adb9 of 2026-08): every
stable and experimental function with its argument types, variadic count and return type.
``variadic`` has Prometheus' meaning: 0 = exactly ``arg_types``; n > 0 = the last argument type
may be repeated/omitted so that between ``len(arg_types) - 1`` and ``len(arg_types) - 1 + n``
arguments are accepted; -1 = at least ``len(arg_types) - 1`` arguments, unbounded.
``kernel`` (a dotted path to the implementation) is filled in by the integrator later.
"""

from __future__ import annotations

from dataclasses import dataclass

from promql.types import ValueType


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    arg_types: tuple[ValueType, ...]
    variadic: int
    return_type: ValueType
    experimental: bool
    kernel: str | None = None

    @property
    def min_args(self) -> int:
        return len(self.arg_types) if self.variadic == 0 else len(self.arg_types) - 1

    @property
    def max_args(self) -> int | None:
        """Largest accepted argument count, ``None`` when unbounded."""
        if self.variadic == 0:
            return len(self.arg_types)
        if self.variadic < 0:
            return None
        return len(self.arg_types) - 1 + self.variadic

    def arg_type(self, index: int) -> ValueType:
        """Expected type of argument ``index`` (variadic tails repeat the last declared type)."""
        return self.arg_types[min(index, len(self.arg_types) - 1)]


V = ValueType.VECTOR
M = ValueType.MATRIX
S = ValueType.SCALAR
STR = ValueType.STRING


def _fn(
    name: str,
    arg_types: tuple[ValueType, ...],
    return_type: ValueType,
    *,
    variadic: int = 0,
    experimental: bool = False,
) -> FunctionSpec:
    return FunctionSpec(name, arg_types, variadic, return_type, experimental)


_ALL = (
    _fn("abs", (V,), V),
    _fn("absent", (V,), V),
    _fn("absent_over_time", (M,), V),
    _fn("acos", (V,), V),
    _fn("acosh", (V,), V),
    _fn("asin", (V,), V),
    _fn("asinh", (V,), V),
    _fn("atan", (V,), V),
    _fn("atanh", (V,), V),
    _fn("avg_over_time", (M,), V),
    _fn("ceil", (V,), V),
    _fn("changes", (M,), V),
    _fn("clamp", (V, S, S), V),
    _fn("clamp_max", (V, S), V),
    _fn("clamp_min", (V, S), V),
    _fn("cos", (V,), V),
    _fn("cosh", (V,), V),
    _fn("count_over_time", (M,), V),
    _fn("days_in_month", (V,), V, variadic=1),
    _fn("day_of_month", (V,), V, variadic=1),
    _fn("day_of_week", (V,), V, variadic=1),
    _fn("day_of_year", (V,), V, variadic=1),
    _fn("deg", (V,), V),
    _fn("end", (), S, experimental=True),
    _fn("delta", (M,), V),
    _fn("deriv", (M,), V),
    _fn("exp", (V,), V),
    _fn("first_over_time", (M,), V),
    _fn("floor", (V,), V),
    _fn("histogram_avg", (V,), V),
    _fn("histogram_count", (V,), V),
    _fn("histogram_sum", (V,), V),
    _fn("histogram_stddev", (V,), V),
    _fn("histogram_stdvar", (V,), V),
    _fn("histogram_fraction", (S, S, V), V),
    _fn("histogram_quantile", (S, V), V),
    _fn("histogram_quantiles", (V, STR, S, S), V, variadic=9, experimental=True),
    _fn("double_exponential_smoothing", (M, S, S), V, experimental=True),
    _fn("hour", (V,), V, variadic=1),
    _fn("idelta", (M,), V),
    _fn("increase", (M,), V),
    _fn("info", (V, V), V, variadic=1, experimental=True),
    _fn("irate", (M,), V),
    _fn("label_replace", (V, STR, STR, STR, STR), V),
    _fn("label_join", (V, STR, STR, STR), V, variadic=-1),
    _fn("max_of", (S, S), S, experimental=True),
    _fn("last_over_time", (M,), V),
    _fn("min_of", (S, S), S, experimental=True),
    _fn("ln", (V,), V),
    _fn("log10", (V,), V),
    _fn("log2", (V,), V),
    _fn("mad_over_time", (M,), V, experimental=True),
    _fn("max_over_time", (M,), V),
    _fn("min_over_time", (M,), V),
    _fn("ts_of_first_over_time", (M,), V, experimental=True),
    _fn("ts_of_max_over_time", (M,), V, experimental=True),
    _fn("ts_of_min_over_time", (M,), V, experimental=True),
    _fn("ts_of_last_over_time", (M,), V, experimental=True),
    _fn("minute", (V,), V, variadic=1),
    _fn("month", (V,), V, variadic=1),
    _fn("pi", (), S),
    _fn("predict_linear", (M, S), V),
    _fn("present_over_time", (M,), V),
    _fn("quantile_over_time", (S, M), V),
    _fn("rad", (V,), V),
    _fn("range", (), S, experimental=True),
    _fn("rate", (M,), V),
    _fn("resets", (M,), V),
    _fn("round", (V, S), V, variadic=1),
    _fn("scalar", (V,), S),
    _fn("sgn", (V,), V),
    _fn("sin", (V,), V),
    _fn("sinh", (V,), V),
    _fn("sort", (V,), V),
    _fn("sort_desc", (V,), V),
    _fn("sort_by_label", (V, STR), V, variadic=-1, experimental=True),
    _fn("sort_by_label_desc", (V, STR), V, variadic=-1, experimental=True),
    _fn("sqrt", (V,), V),
    _fn("start", (), S, experimental=True),
    _fn("start_timestamp", (V,), V, experimental=True),
    _fn("step", (), S, experimental=True),
    _fn("stddev_over_time", (M,), V),
    _fn("stdvar_over_time", (M,), V),
    _fn("sum_over_time", (M,), V),
    _fn("tan", (V,), V),
    _fn("tanh", (V,), V),
    _fn("time", (), S),
    _fn("timestamp", (V,), V),
    _fn("vector", (S,), V),
    _fn("year", (V,), V, variadic=1),
)

FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in _ALL}


def get_function(name: str) -> FunctionSpec | None:
    """The spec of function ``name`` or ``None`` when PromQL has no such function."""
    return FUNCTIONS.get(name)
