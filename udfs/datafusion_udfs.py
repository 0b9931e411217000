"""Range kernels as DataFusion scalar UDFs: ``prom_rate``, ``prom_increase``, ...

Each UDF is called per row = one window:
``prom_<fn>(timestamps list_view<int64>, values list_view<float64>, window_end int64,
range_ms int64 [, params float64...])`` and returns float64, NULL where Prometheus emits no
sample. The window columns are Arrow ``ListView`` arrays, the Arrow form of ``RangeArray``:
overlapping windows share one child buffer, nothing is copied. ``range_array_table`` builds such
a table from a ``RangeArray``. A batch of rows becomes one ``RangeArray`` and one kernel call.
"""

from __future__ import annotations

from collections.abc import Callable

import datafusion
import numpy as np
import pyarrow as pa

from udfs import range_functions as rf
from udfs.range_array import RangeArray

# PromQL name -> number of float parameters after the range vector.
RANGE_FUNCTIONS: dict[str, int] = {
    "rate": 0,
    "increase": 0,
    "delta": 0,
    "irate": 0,
    "idelta": 0,
    "deriv": 0,
    "predict_linear": 1,
    "changes": 0,
    "resets": 0,
    "avg_over_time": 0,
    "sum_over_time": 0,
    "count_over_time": 0,
    "min_over_time": 0,
    "max_over_time": 0,
    "stddev_over_time": 0,
    "stdvar_over_time": 0,
    "quantile_over_time": 1,
    "mad_over_time": 0,
    "first_over_time": 0,
    "last_over_time": 0,
    "present_over_time": 0,
    "ts_of_first_over_time": 0,
    "ts_of_last_over_time": 0,
    "ts_of_min_over_time": 0,
    "ts_of_max_over_time": 0,
    "double_exponential_smoothing": 2,
}


def _numpy(arr: pa.Array, dtype: type) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _windows(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """(offsets, sizes, child values) of a ListView or List array, respecting slicing."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_list_view(arr.type) or pa.types.is_large_list_view(arr.type):
        return _numpy(arr.offsets, np.int64), _numpy(arr.sizes, np.int64), arr.values
    offs = _numpy(arr.offsets, np.int64)
    return offs[:-1], np.diff(offs), arr.values


def _to_range_array(ts: pa.Array, vals: pa.Array, ends: pa.Array, range_ms: pa.Array) -> RangeArray:
    v_off, v_size, v_child = _windows(vals)
    t_off, t_size, t_child = _windows(ts)
    if not (np.array_equal(v_off, t_off) and np.array_equal(v_size, t_size)):
        raise ValueError("timestamps and values windows must share offsets and sizes")
    r = _numpy(range_ms, np.int64)
    if r.shape[0] and not (r == r[0]).all():
        raise ValueError("range_ms must be constant within a batch")
    return RangeArray(
        values=_numpy(v_child, np.float64),
        timestamps=_numpy(t_child, np.int64),
        offsets=v_off,
        sizes=v_size,
        window_ends=_numpy(ends, np.int64),
        range_ms=int(r[0]) if r.shape[0] else 0,
    )


def _make(name: str, n_params: int) -> Callable[..., pa.Array]:
    kernel = getattr(rf, name)

    def call(ts: pa.Array, vals: pa.Array, ends: pa.Array, range_ms: pa.Array, *params: pa.Array):
        ra = _to_range_array(ts, vals, ends, range_ms)
        out, present = kernel(ra, *(_numpy(p, np.float64) for p in params[:n_params]))
        return pa.array(out, type=pa.float64(), mask=~present)

    call.__name__ = f"prom_{name}"
    return call


def range_udfs() -> list[datafusion.ScalarUDF]:
    """One ``prom_<fn>`` UDF per range function."""
    list_ts, list_vals = pa.list_view(pa.int64()), pa.list_view(pa.float64())
    out = []
    for name, n_params in RANGE_FUNCTIONS.items():
        inputs = [list_ts, list_vals, pa.int64(), pa.int64()] + [pa.float64()] * n_params
        fn = _make(name, n_params)
        out.append(datafusion.udf(fn, inputs, pa.float64(), "immutable", f"prom_{name}"))
    return out


def register_range_udfs(ctx: datafusion.SessionContext) -> None:
    for u in range_udfs():
        ctx.register_udf(u)


def range_array_table(ra: RangeArray) -> pa.Table:
    """``ts``, ``vals`` (ListView, sharing the window layout), ``t`` and ``range_ms`` columns."""
    offsets = pa.array(ra.offsets.astype(np.int32))
    sizes = pa.array(ra.sizes.astype(np.int32))
    return pa.table(
        {
            "ts": pa.ListViewArray.from_arrays(offsets, sizes, pa.array(ra.timestamps, pa.int64())),
            "vals": ra.to_arrow(),
            "t": pa.array(ra.window_ends, pa.int64()),
            "range_ms": pa.array(np.full(ra.n_windows, ra.range_ms, dtype=np.int64)),
        }
    )
