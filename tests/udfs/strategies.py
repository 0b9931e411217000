"""Hypothesis strategies shared by the udfs property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from udfs.range_array import RangeArray
from udfs.windows import range_windows

NASTY = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e100,
    -1e100,
    1e-300,
    1.7e308,
    -1.7e308,
    np.inf,
    -np.inf,
    np.nan,
    0.1,
    0.2,
    3.0,
]

value_st = st.one_of(
    st.integers(-5, 50).map(float),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(NASTY),
)


@st.composite
def series_st(draw, max_series: int = 4, max_len: int = 12, values=value_st):
    """Series as lists of (ts, value) with strictly increasing, jittered timestamps."""
    n_series = draw(st.integers(0, max_series))
    out = []
    for _ in range(n_series):
        n = draw(st.integers(0, max_len))
        gaps = draw(st.lists(st.integers(1, 25_000), min_size=n, max_size=n))
        start = draw(st.integers(-30_000, 30_000))
        ts = list(np.cumsum([start, *gaps])[1:].tolist()) if n else []
        vals = draw(st.lists(values, min_size=n, max_size=n))
        out.append(list(zip(ts, vals, strict=True)))
    return out


@st.composite
def grid_st(draw):
    start = draw(st.integers(-20_000, 100_000))
    step = draw(st.integers(1, 40_000))
    n_steps = draw(st.integers(1, 8))
    range_ms = draw(st.sampled_from([1, 1000, 15_000, 30_000, 60_000, 90_500, 300_000]))
    return [start + k * step for k in range(n_steps)], range_ms


def flatten(series):
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in series])
    ts = np.array([p[0] for s in series for p in s], dtype=np.int64)
    vals = np.array([p[1] for s in series for p in s], dtype=np.float64)
    return offsets, ts, vals


def make_range_array(series, eval_times, range_ms) -> RangeArray:
    offsets, ts, vals = flatten(series)
    o, s, e = range_windows(offsets, ts, np.array(eval_times, dtype=np.int64), range_ms)
    return RangeArray(vals, ts, o, s, e, range_ms)


def assert_same(got, want, present, rtol: float = 0.0):
    """``want`` is a list of float|None; ``got``/``present`` the kernel's arrays."""
    want_present = np.array([w is not None for w in want], dtype=bool)
    np.testing.assert_array_equal(present, want_present)
    exp = np.array([np.nan if w is None else w for w in want], dtype=np.float64)
    g = np.asarray(got, dtype=np.float64)[want_present]
    e = exp[want_present]
    if rtol == 0.0:
        same = (g == e) | (np.isnan(g) & np.isnan(e))
        assert same.all(), f"got {g[~same]} want {e[~same]}"
    else:
        np.testing.assert_allclose(g, e, rtol=rtol, atol=0, equal_nan=True)
