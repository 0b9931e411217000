"""Stored window rows → cells: the compiled pass equals the numpy formulation, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from planner.window_cells import COUNTERS, MOMENTS, empty_cells, gather_cells, to_rows


def _rows(rng, n_rows: int, n_keys: int, w: int, with_nan: bool):
    kid = rng.integers(0, n_keys, n_rows)
    col = np.sort(rng.integers(0, w, n_rows))  # grouped by window end, as tables return them
    prow = rng.permutation(n_rows)
    source = {
        "sum": rng.normal(size=n_rows) * 1e3,
        "count": rng.integers(1, 50, n_rows),
        "min": rng.normal(size=n_rows),
        "max": rng.normal(size=n_rows),
        "n": rng.integers(0, 40, n_rows),
        "first_t": rng.integers(0, 10**6, n_rows),
        "first_v": rng.random(n_rows),
        "last_t": rng.integers(0, 10**6, n_rows),
        "last_v": rng.random(n_rows),
        "resets": rng.random(n_rows),
    }
    if with_nan:
        for k in ("min", "max", "sum"):
            source[k][rng.random(n_rows) < 0.2] = np.nan
    return kid, col, prow, source


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("family", ["moments", "counter"])
def test_cells_equal_the_numpy_scatter_with_duplicates_masks_and_nans(seed, family):
    rng = np.random.default_rng(seed)
    n_keys, n, w = 40, 30, 17
    kid, col, prow, source = _rows(rng, 900, n_keys, w, with_nan=seed % 2 == 0)
    key_row = np.where(rng.random(n_keys) < 0.8, rng.integers(0, n, n_keys), -1)
    col_ok = rng.random(w) < 0.85
    names = MOMENTS if family == "moments" else COUNTERS

    out = empty_cells(names, n * w)
    hits = np.zeros(n * w, dtype=np.int32)
    gather_cells(family, source, prow, kid, col, key_row, col_ok, n, out, hits)
    got = {k: to_rows(v, n, w) for k, v in out.items()}

    # Reference: the numpy formulation the kernel replaced (row-major cells).
    r = key_row[kid]
    keep = (r >= 0) & col_ok[col]
    flat = r[keep] * w + col[keep]
    picked = {k: source[k][prow[keep]] for k in names}
    per_cell = np.bincount(flat, minlength=n * w)
    np.testing.assert_array_equal(to_rows(hits, n, w).reshape(-1), per_cell)
    if family == "counter":
        for k in names:
            want = empty_cells((k,), n * w)[k]
            want[flat] = picked[k]  # last row wins
            np.testing.assert_array_equal(got[k].reshape(-1), want)
        return
    want_sum = np.bincount(flat, picked["sum"], minlength=n * w)
    want_count = np.bincount(flat, picked["count"], minlength=n * w).astype(np.int64)
    want_min, want_max = np.full(n * w, np.nan), np.full(n * w, np.nan)
    np.fmin.at(want_min, flat, picked["min"])
    np.fmax.at(want_max, flat, picked["max"])
    np.testing.assert_array_equal(got["sum"].reshape(-1), want_sum)
    np.testing.assert_array_equal(got["count"].reshape(-1), want_count)
    np.testing.assert_array_equal(got["min"].reshape(-1), want_min)
    np.testing.assert_array_equal(got["max"].reshape(-1), want_max)


@pytest.mark.parametrize("shape", [(1, 1), (3, 70), (70, 3), (33, 65), (0, 5)])
def test_to_rows_transposes_column_major_cells(shape):
    n, w = shape
    cells = np.arange(n * w, dtype=np.float64)
    np.testing.assert_array_equal(to_rows(cells, n, w), cells.reshape(w, n).T)
