"""The values that flow between physical operators: "series x steps" batches.

An instant vector over a grid of ``k`` steps is a list of label sets plus ``values[n, k]`` and a
``present[n, k]`` mask (absent is not NaN). A range vector is a ``RangeArray`` whose windows are
series-major (window ``s * k + j``). Raw storage output is ``SeriesData``: one concatenated sample
array with per-series offsets. Nothing here loops per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storage.model import Labels
from udfs.range_array import RangeArray


@dataclass(frozen=True)
class SeriesData:
    """Samples of many series concatenated: series ``i`` is ``[offsets[i], offsets[i+1])``."""

    labels: list[Labels]
    offsets: np.ndarray  # int64, len(labels) + 1
    timestamps: np.ndarray  # int64 ms
    values: np.ndarray  # float64, stale markers bit-exact

    @property
    def n_series(self) -> int:
        return len(self.labels)

    @property
    def n_samples(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass(frozen=True)
class InstantVector:
    """An instant vector at every step of a grid.

    ``drop_name[i]`` marks series whose ``__name__`` is still attached but must be removed at the
    end (Prometheus' delayed name removal); ``None`` means no series is marked.
    """

    labels: list[Labels]
    values: np.ndarray  # float64 [n, k]
    present: np.ndarray  # bool [n, k]
    drop_name: np.ndarray | None = None  # bool [n]
    sample_ts: np.ndarray | None = None  # int64 [n, k]: the chosen samples' own timestamps

    @property
    def n_series(self) -> int:
        return len(self.labels)

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[1])

    def points(self) -> int:
        return int(np.count_nonzero(self.present))

    @staticmethod
    def empty(n_steps: int) -> InstantVector:
        return InstantVector(
            [], np.zeros((0, n_steps), dtype=np.float64), np.zeros((0, n_steps), dtype=bool)
        )

    @staticmethod
    def concat(parts: list[InstantVector], n_steps: int) -> InstantVector:
        """Series of ``parts`` one after another (``sample_ts`` is not carried)."""
        parts = [p for p in parts if p.n_series]
        if not parts:
            return InstantVector.empty(n_steps)
        drop = None
        if any(p.drop_name is not None for p in parts):
            drop = np.concatenate([p.drop_mask() for p in parts])
        return InstantVector(
            [ls for p in parts for ls in p.labels],
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.present for p in parts]),
            drop,
        )

    def select(self, rows: np.ndarray) -> InstantVector:
        """The subset of series ``rows`` (an index array), in that order."""
        return InstantVector(
            [self.labels[i] for i in rows.tolist()],
            self.values[rows],
            self.present[rows],
            None if self.drop_name is None else self.drop_name[rows],
            None if self.sample_ts is None else self.sample_ts[rows],
        )

    def drop_mask(self) -> np.ndarray:
        if self.drop_name is None:
            return np.zeros(self.n_series, dtype=bool)
        return self.drop_name


@dataclass(frozen=True)
class RangeVector:
    """A range vector at every step: windows of ``ranges`` are series-major over ``n_steps``."""

    labels: list[Labels]
    ranges: RangeArray
    n_steps: int
    drop_name: np.ndarray | None = None
    # Experimental anchored/smoothed windows: the windows are extended by the lookback delta;
    # per window, the first sample after ``t - range`` and the first at or after ``t``.
    mode: str = ""
    gt_start: np.ndarray | None = None
    ge_end: np.ndarray | None = None

    @property
    def n_series(self) -> int:
        return len(self.labels)

    def points(self) -> int:
        return int(self.ranges.sizes.sum())


@dataclass(frozen=True)
class ScalarValue:
    """A scalar at every step of a grid."""

    values: np.ndarray  # float64 [k]

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class StringValue:
    value: str


Value = SeriesData | InstantVector | RangeVector | ScalarValue | StringValue
