"""Query results as the engine returns them, before any JSON formatting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from promql.types import ValueType
from storage.model import Labels


@dataclass
class SeriesResult:
    """One output series: its label set and its points (one point for an instant vector)."""

    labels: Labels
    timestamps: np.ndarray  # int64 ms
    values: np.ndarray  # float64


@dataclass
class QueryResult:
    """``result_type`` is SCALAR, STRING, VECTOR or MATRIX, as Prometheus' ``resultType``.

    A range query always yields MATRIX (a scalar expression becomes one series with no labels).
    For SCALAR and STRING, ``series`` is empty and ``scalar`` / ``string`` hold ``(t_ms, value)``.
    """

    result_type: ValueType
    series: list[SeriesResult] = field(default_factory=list)
    scalar: tuple[int, float] | None = None
    string: tuple[int, str] | None = None
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    ordered: bool = False  # True when the expression's order is meaningful (sort, topk...)
