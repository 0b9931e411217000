"""Sum, Count, Min, Max, MinMax and Avg: one moments state, each type answers its statistics.

Sums carry a Neumaier compensation term so that merging many panes stays as close as possible to
Prometheus' Kahan-summed ``sum_over_time``. Min/max ignore NaN unless every value is NaN, as
Prometheus' ``min_over_time``/``max_over_time`` do.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from precompute.accumulators.base import Accumulator, Key

_STATE = struct.Struct("<dddqdd")  # sum, compensation, (unused), count, min, max


def _neumaier(total: float, comp: float, x: float) -> tuple[float, float]:
    t = total + x
    if math.isinf(t) or math.isnan(t):
        return t, comp
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


class _Moments(Accumulator):
    fields: ClassVar[tuple[str, ...]]

    def __init__(self) -> None:
        self.total = 0.0
        self.comp = 0.0
        self.count = 0
        self.min = math.nan
        self.max = math.nan

    def update(
        self,
        values: np.ndarray,
        timestamps: np.ndarray,
        keys: Sequence[Key] | None = None,
        key_ids: np.ndarray | None = None,
    ) -> None:
        n = int(values.shape[0])
        if n == 0:
            return
        self.total, self.comp = _neumaier(self.total, self.comp, float(np.sum(values)))
        self.count += n
        self._fold_extrema(float(np.fmin.reduce(values)), float(np.fmax.reduce(values)))

    @classmethod
    def from_moments(cls, total: float, count: int, lo: float, hi: float) -> _Moments:
        """Wrap already reduced moments (a window closed from columnar panes) cheaply."""
        acc = cls.__new__(cls)
        acc.__dict__.update(total=total, comp=0.0, count=count, min=lo, max=hi)
        return acc

    def _fold_extrema(self, lo: float, hi: float) -> None:
        self.min = (
            lo if math.isnan(self.min) else (self.min if math.isnan(lo) else min(self.min, lo))
        )
        self.max = (
            hi if math.isnan(self.max) else (self.max if math.isnan(hi) else max(self.max, hi))
        )

    def merge(self, other: Accumulator) -> None:
        self._check_same(other)
        assert isinstance(other, _Moments)
        if other.count == 0:
            return
        self.total, self.comp = _neumaier(self.total, self.comp, other.total)
        self.comp += other.comp
        self.count += other.count
        self._fold_extrema(other.min, other.max)

    def is_empty(self) -> bool:
        return self.count == 0

    @property
    def sum(self) -> float:
        return self.total + self.comp if math.isfinite(self.total) else self.total

    def stats(self) -> dict[str, Any]:
        everything = {
            "sum": self.sum,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "avg": self.sum / self.count if self.count else math.nan,
        }
        return {name: everything[name] for name in self.fields}

    def _payload(self) -> bytes:
        return _STATE.pack(self.total, self.comp, 0.0, self.count, self.min, self.max)

    @classmethod
    def _from_payload(cls, payload: memoryview, version: int) -> _Moments:
        acc = cls()
        acc.total, acc.comp, _, acc.count, acc.min, acc.max = _STATE.unpack_from(payload, 0)
        return acc

    def empty_like(self) -> _Moments:
        return type(self)()


class SumAccumulator(_Moments):
    type_name = "Sum"
    type_code = 1
    fields = ("sum", "count")

    @classmethod
    def with_sum(cls, value: float) -> SumAccumulator:
        acc = cls()
        acc.update(np.array([value]), np.zeros(1, dtype=np.int64))
        return acc


class CountAccumulator(_Moments):
    type_name = "Count"
    type_code = 2
    fields = ("count",)


class MinAccumulator(_Moments):
    type_name = "Min"
    type_code = 3
    fields = ("min", "count")


class MaxAccumulator(_Moments):
    type_name = "Max"
    type_code = 4
    fields = ("max", "count")


class MinMaxAccumulator(_Moments):
    type_name = "MinMax"
    type_code = 5
    fields = ("min", "max", "count")


class AvgAccumulator(_Moments):
    type_name = "Avg"
    type_code = 6
    fields = ("sum", "count", "avg")
