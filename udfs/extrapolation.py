"""Prometheus' ``extrapolatedRate`` (promql/functions.go, 3.x) as one compiled pass.

Shared by the exact ``rate``/``increase``/``delta`` kernel (``udfs.range_functions``, windows of
raw samples) and the sketch path's counter inference (``planner.nodes.summary_infer``, merged
window states): both reduce a window to its first/last sample, the sample count and the
(reset-corrected) difference. Element-wise and in upstream's operation order, so results are
bit-identical to the numpy formulation it replaced (one fused loop instead of ~20 array passes).
"""

from __future__ import annotations

import numba
import numpy as np


def go_seconds(range_ms: int) -> float:
    """Go's ``Duration.Seconds()``: whole seconds plus the nanosecond remainder / 1e9."""
    return float(range_ms // 1000) + float((range_ms % 1000) * 1_000_000) / 1e9


@numba.njit(cache=True, nogil=True, error_model="numpy")
def extrapolate_into(
    result, first_v, first_t, last_t, count, start, end, counter, scale, inner, out
):
    """``out[i]``: window ``i``'s ``result`` extrapolated (compiled; callable from other
    kernels). Flat arrays; window ``i``'s bounds are ``start``/``end[(i // inner) % period]``;
    ``scale``: the range in seconds for ``rate``, else 1."""
    period = start.shape[0]  # window i's bounds are start/end[(i // inner) % period]
    for i in range(result.shape[0]):
        b = (i // inner) % period
        n = count[i]
        if n < 2:
            out[i] = np.nan
            continue
        r = result[i]
        to_start = float(first_t[i] - start[b]) / 1000
        to_end = float(end[b] - last_t[i]) / 1000
        sampled = float(last_t[i] - first_t[i]) / 1000
        avg = sampled / float(n - 1)
        threshold = avg * 1.1
        if to_start >= threshold:
            to_start = avg / 2
        if counter and r > 0 and first_v[i] >= 0:
            # Counters cannot go below zero: stop the left extrapolation at the zero point.
            to_zero = sampled * (first_v[i] / r)
            if to_zero < to_start:
                to_start = to_zero
        if to_end >= threshold:
            to_end = avg / 2
        factor = (sampled + to_start + to_end) / sampled if sampled != 0 else 1.0
        if scale != 1.0:
            factor = factor / scale
        out[i] = r * factor


def extrapolated_rate(
    result: np.ndarray,
    first_v: np.ndarray,
    first_t: np.ndarray,
    last_t: np.ndarray,
    count: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    *,
    counter: bool,
    range_seconds: float | None,
) -> np.ndarray:
    """Per window: ``result`` (last − first, plus counter resets) extrapolated to the window
    ``(start, end]`` (ms), divided by ``range_seconds`` for ``rate`` (None: ``increase`` and
    ``delta``). NaN where a window has fewer than two samples. The window arrays share one
    shape; ``start``/``end`` are per window, or per step (last axis) of a [series, steps]
    grid."""
    shape = np.shape(result)
    windows = (result, first_v, first_t, last_t, count)
    inner = 1
    if len(shape) == 2 and np.ndim(start) == 1 and all(_column_major(a) for a in windows):
        # [series, steps] stored column-major (the sketch path's cells): walk it as the C-ordered
        # [steps, series] it is, instead of copying five arrays into row order.
        windows = tuple(a.T for a in windows)
        inner = shape[0]

    def flat(a, dtype):
        return np.ascontiguousarray(a, dtype=dtype).reshape(-1)

    result, first_v, first_t, last_t, count = windows
    out = np.empty(int(np.prod(shape)), dtype=np.float64)
    extrapolate_into(
        flat(result, np.float64), flat(first_v, np.float64), flat(first_t, np.int64),
        flat(last_t, np.int64), flat(count, np.int64), flat(start, np.int64),
        flat(end, np.int64), counter, 1.0 if range_seconds is None else float(range_seconds),
        inner, out,
    )  # fmt: skip
    if inner > 1:
        return out.reshape(shape[::-1]).T
    return out.reshape(shape)


def _column_major(a) -> bool:
    return isinstance(a, np.ndarray) and a.ndim == 2 and a.flags.f_contiguous and a.shape[0] > 1


def warm_up() -> None:
    """Compile the kernel (or load it from numba's cache) before the first request."""
    one = np.ones(2)
    extrapolated_rate(one, one, np.zeros(2, np.int64), np.ones(2, np.int64), np.full(2, 2),
                      np.zeros(2, np.int64), np.ones(2, np.int64), counter=True,
                      range_seconds=1.0)  # fmt: skip
