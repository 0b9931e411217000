"""``RangeArray``: a range vector as offset/length windows over shared sample arrays.

This is the columnar form of the GreptimeDB RFC's "matrix": the samples of many series are
concatenated (sorted by series, then time) once, and every (series, step) window is only an
``(offset, size)`` pair into them, so overlapping windows share storage and nothing is copied.
Windows are laid out series-major: window ``s * n_steps + k`` is series ``s`` at step ``k``.
Its Arrow form is a ``ListView`` array (offsets + sizes over one values child).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class RangeArray:
    values: np.ndarray  # float64, samples of all series (stale markers already removed)
    timestamps: np.ndarray  # int64 ms, same length as ``values``
    offsets: np.ndarray  # int64, per window: index of its first sample
    sizes: np.ndarray  # int64, per window: number of samples in the window
    window_ends: np.ndarray  # int64 ms, per window: evaluation time t; the window is (t - range, t]
    range_ms: int

    def __post_init__(self) -> None:
        if self.values.shape != self.timestamps.shape:
            raise ValueError("values and timestamps differ in length")
        if not (self.offsets.shape == self.sizes.shape == self.window_ends.shape):
            raise ValueError("offsets, sizes and window_ends differ in length")

    @property
    def n_windows(self) -> int:
        return int(self.offsets.shape[0])

    def to_arrow(self) -> pa.ListViewArray:
        """The windows' values as an Arrow ``ListView`` (no copy of the values buffer)."""
        return pa.ListViewArray.from_arrays(
            pa.array(self.offsets.astype(np.int32)),
            pa.array(self.sizes.astype(np.int32)),
            pa.array(self.values, type=pa.float64()),
        )
