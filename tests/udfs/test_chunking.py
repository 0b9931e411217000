from __future__ import annotations

import numpy as np
import pytest

import udfs.scan
from tests.udfs.strategies import make_range_array
from udfs import range_functions as rf

CASES = {
    "deriv": (),
    "predict_linear": (60.0,),
    "stddev_over_time": (),
    "stdvar_over_time": (),
    "ts_of_max_over_time": (),
    "ts_of_min_over_time": (),
    "double_exponential_smoothing": (0.3, 0.6),
    "sum_over_time": (),
    "avg_over_time": (),
}


@pytest.fixture(scope="module")
def ra():
    rng = np.random.default_rng(3)
    series = []
    for _ in range(6):
        ts = np.cumsum(rng.integers(1_000, 20_000, size=50))
        vals = rng.normal(0, 100, size=50)
        vals[::7] = np.round(vals[::7])
        series.append(list(zip(ts.tolist(), vals.tolist(), strict=True)))
    return make_range_array(series, list(range(0, 900_000, 20_000)), 90_000)


@pytest.mark.parametrize("name", sorted(CASES))
def test_chunked_window_scans_equal_the_unchunked_result(ra, name, monkeypatch):
    params = [np.full(ra.n_windows, p) for p in CASES[name]]
    whole, whole_present = getattr(rf, name)(ra, *params)
    monkeypatch.setattr(udfs.scan, "WINDOW_CHUNK", 7)
    part, part_present = getattr(rf, name)(ra, *params)
    np.testing.assert_array_equal(part_present, whole_present)
    np.testing.assert_array_equal(part, whole)
