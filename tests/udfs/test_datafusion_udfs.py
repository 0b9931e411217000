from __future__ import annotations

import datafusion
import numpy as np
import pytest

from tests.udfs.strategies import make_range_array
from udfs import range_functions as rf
from udfs.datafusion_udfs import RANGE_FUNCTIONS, range_array_table, register_range_udfs


@pytest.fixture(scope="module")
def ctx():
    rng = np.random.default_rng(7)
    series = []
    for _ in range(5):
        ts = np.cumsum(rng.integers(5_000, 20_000, size=40))
        vals = np.cumsum(rng.integers(0, 10, size=40)).astype(float)
        vals[20:] -= vals[19]  # a counter reset
        series.append(list(zip(ts.tolist(), vals.tolist(), strict=True)))
    ra = make_range_array(series, list(range(60_000, 600_000, 30_000)), 120_000)
    c = datafusion.SessionContext()
    register_range_udfs(c)
    c.register_record_batches("w", [range_array_table(ra).to_batches()])
    return c, ra


@pytest.mark.parametrize("name", sorted(n for n, p in RANGE_FUNCTIONS.items() if p == 0))
def test_sql_udf_equals_the_kernel(ctx, name):
    c, ra = ctx
    got = c.sql(f"SELECT prom_{name}(ts, vals, t, range_ms) AS r FROM w").to_arrow_table()
    want, present = getattr(rf, name)(ra)
    col = got.column("r").combine_chunks()
    assert np.array_equal(col.is_valid().to_numpy(zero_copy_only=False), present)
    np.testing.assert_array_equal(col.to_numpy(zero_copy_only=False)[present], want[present])


def test_sql_udf_with_literal_range_and_parameter(ctx):
    c, ra = ctx
    sql = "SELECT prom_quantile_over_time(ts, vals, t, 120000, 0.9) AS q FROM w"
    got = c.sql(sql).to_arrow_table().column("q").combine_chunks()
    want, present = rf.quantile_over_time(ra, np.full(ra.n_windows, 0.9))
    np.testing.assert_array_equal(got.to_numpy(zero_copy_only=False)[present], want[present])


def test_sql_can_aggregate_udf_results(ctx):
    c, ra = ctx
    got = c.sql("SELECT sum(prom_increase(ts, vals, t, range_ms)) AS s FROM w").to_pydict()["s"][0]
    want, present = rf.increase(ra)
    assert got == pytest.approx(want[present].sum())
