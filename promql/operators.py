"""Aggregation operators: which take a parameter and which are experimental (Prometheus 3)."""

from __future__ import annotations

from dataclasses import dataclass

from promql.types import ValueType


@dataclass(frozen=True)
class AggregatorSpec:
    name: str
    # Type of the leading parameter (``topk(5, x)``), ``None`` when the operator takes none.
    param_type: ValueType | None = None
    experimental: bool = False

    @property
    def has_param(self) -> bool:
        return self.param_type is not None


_S = ValueType.SCALAR
AGGREGATORS: dict[str, AggregatorSpec] = {
    spec.name: spec
    for spec in (
        AggregatorSpec("sum"),
        AggregatorSpec("avg"),
        AggregatorSpec("count"),
        AggregatorSpec("min"),
        AggregatorSpec("max"),
        AggregatorSpec("group"),
        AggregatorSpec("stddev"),
        AggregatorSpec("stdvar"),
        AggregatorSpec("topk", _S),
        AggregatorSpec("bottomk", _S),
        AggregatorSpec("quantile", _S),
        AggregatorSpec("count_values", ValueType.STRING),
        AggregatorSpec("limitk", _S, experimental=True),
        AggregatorSpec("limit_ratio", _S, experimental=True),
    )
}

COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPS = frozenset({"and", "or", "unless"})
