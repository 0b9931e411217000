"""Binary operator kernels with Prometheus' float semantics (``vectorElemBinop``, engine.go).

``%`` is Go's ``math.Mod`` (C ``fmod``: result has the dividend's sign, ``x % 0`` is NaN), ``^``
is ``math.Pow`` (IEEE special cases: ``x ^ 0 == 1`` even for NaN, ``1 ^ NaN == 1``), division by
zero gives ±Inf or NaN, never an error. Comparisons are IEEE (anything compared with NaN is
false except ``!=``). Which side's value a filtering comparison keeps, and ``bool``, are the
planner's; ``compare_bool`` gives the 1/0 values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ARITH_OPS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "%": np.fmod,
    "^": np.power,
    "atan2": np.arctan2,
}

COMPARE_OPS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def arith(op: str, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Elementwise ``a op b`` (numpy broadcasting), float64."""
    fn = ARITH_OPS[op]
    with np.errstate(all="ignore"):
        return fn(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def compare(op: str, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Elementwise comparison as a bool array (the filter mask)."""
    fn = COMPARE_OPS[op]
    with np.errstate(invalid="ignore"):
        return fn(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))


def compare_bool(op: str, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """The ``bool`` modifier's values: 1.0 where the comparison holds, else 0.0."""
    return compare(op, a, b).astype(np.float64)
