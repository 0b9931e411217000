"""The seed's worker tests, with the issue's corrected semantics ((start, end] windows, lateness
that delays closure, spatial filter applied)."""

from __future__ import annotations

import math

import pytest

from precompute.output import PrecomputedOutput
from precompute.window_batch import expand
from storage.model import STALE_NAN
from tests.precompute.helpers import Harness, agg_yaml


def windows(emits):
    return sorted((o.key, o.window_start, o.window_end, acc.stats().get("sum")) for o, acc in emits)


def test_tumbling_window_closes_with_the_sum_of_its_samples():
    h = Harness(agg_yaml("Sum", window=10))
    h.send([({"__name__": "m"}, 1000, 1.0), ({"__name__": "m"}, 5000, 2.0)])
    assert h.send([({"__name__": "m"}, 10_000, 3.0)]) == []  # 10 s is inside (0, 10 s]
    out = h.send([({"__name__": "m"}, 10_001, 4.0)])
    assert [(o, a.stats()["sum"]) for o, a in out] == [(PrecomputedOutput(1, (), 0, 10_000), 6.0)]


def test_sample_on_a_boundary_counts_in_the_window_it_ends():
    h = Harness(agg_yaml("Count", window=10))
    h.send([({"__name__": "m"}, 0, 1.0), ({"__name__": "m"}, 10_000, 1.0)])
    h.close_all()
    got = sorted((o.window_start, o.window_end, a.stats()["count"]) for o, a in h.emits)
    assert got == [(-10_000, 0, 1), (0, 10_000, 1)]


def test_sliding_windows_share_a_pane_and_each_sees_the_sample_once():
    h = Harness(agg_yaml("Sum", window=30, slide=10))
    h.send([({"__name__": "m"}, 15_000, 42.0)])
    h.close_all()
    assert windows(h.emits) == [
        ((), -10_000, 20_000, 42.0),
        ((), 0, 30_000, 42.0),
        ((), 10_000, 40_000, 42.0),
    ]


def test_group_by_emits_one_window_per_grouping_key():
    h = Harness(agg_yaml("Sum", window=10, grouping=["host"]))
    h.send(
        [({"__name__": "m", "host": "A"}, 1000, 1.0), ({"__name__": "m", "host": "B"}, 2000, 2.0)]
    )
    h.close_all()
    assert windows(h.emits) == [(("A",), 0, 10_000, 1.0), (("B",), 0, 10_000, 2.0)]


def test_keys_containing_quotes_and_semicolons_stay_distinct_tuples():
    h = Harness(agg_yaml("Sum", window=10, grouping=["a", "b"]))
    h.send([({"__name__": "m", "a": 'x";y', "b": "z"}, 1, 1.0)])
    h.send([({"__name__": "m", "a": "x", "b": '";y;z'}, 1, 2.0)])
    h.close_all()
    assert windows(h.emits) == [(("x", '";y;z'), 0, 10_000, 2.0), (('x";y', "z"), 0, 10_000, 1.0)]


def test_allowed_lateness_delays_closure_and_keeps_a_slightly_late_sample():
    h = Harness(agg_yaml("Sum", window=10), allowed_lateness_ms=5000)
    h.send([({"__name__": "m"}, 11_000, 1.0)])
    h.send([({"__name__": "m"}, 9_000, 2.0)])  # late by 2 s: within the allowed 5 s
    assert h.send([({"__name__": "m"}, 15_000, 4.0)]) == []  # watermark 10 s: not past 10 s
    out = h.send([({"__name__": "m"}, 15_001, 8.0)])
    assert windows(out) == [((), 0, 10_000, 2.0)]
    assert h.worker.status()[1]["dropped_late"] == 0


def test_late_sample_is_dropped_under_drop_policy():
    h = Harness(agg_yaml("Sum", window=10), late_data_policy="Drop")
    h.send([({"__name__": "m"}, 5_000, 1.0), ({"__name__": "m"}, 25_000, 1.0)])
    assert h.send([({"__name__": "m"}, 3_000, 5.0)]) == []
    assert h.worker.status()[1]["dropped_late"] == 1
    assert windows(h.emits) == [((), 0, 10_000, 1.0)]


def test_late_sample_is_forwarded_as_a_mini_accumulator_under_forward_to_store():
    from precompute.config import LateDataPolicy

    h = Harness(agg_yaml("Sum", window=10), late_data_policy=LateDataPolicy.FORWARD_TO_STORE)
    h.send([({"__name__": "m"}, 5_000, 1.0), ({"__name__": "m"}, 25_000, 1.0)])
    out = h.send([({"__name__": "m"}, 3_000, 5.0)])
    assert windows(out) == [((), 0, 10_000, 5.0)]
    assert h.worker.status()[1]["forwarded_late"] == 1


def test_forward_to_store_sends_late_sample_to_every_closed_sliding_window_containing_it():
    from precompute.config import LateDataPolicy

    h = Harness(
        agg_yaml("Sum", window=30, slide=10), late_data_policy=LateDataPolicy.FORWARD_TO_STORE
    )
    h.send([({"__name__": "m"}, 1_000, 1.0), ({"__name__": "m"}, 45_000, 1.0)])  # closes ≤ 40 s
    out = h.send([({"__name__": "m"}, 15_000, 7.0)])  # windows ending 20, 30, 40 s are closed
    assert windows(out) == [
        ((), -10_000, 20_000, 7.0),
        ((), 0, 30_000, 7.0),
        ((), 10_000, 40_000, 7.0),
    ]


def test_spatial_filter_excludes_series_that_do_not_match():
    h = Harness(agg_yaml("Sum", window=10, spatial='job=~"api|web", code!="500"'))
    h.send(
        [
            ({"__name__": "m", "job": "api", "code": "200"}, 1_000, 1.0),
            ({"__name__": "m", "job": "web", "code": "500"}, 1_000, 10.0),
            ({"__name__": "m", "job": "db", "code": "200"}, 1_000, 100.0),
            ({"__name__": "other", "job": "api", "code": "200"}, 1_000, 1000.0),
        ]
    )
    h.close_all()
    assert windows(h.emits) == [((), 0, 10_000, 1.0)]


def test_stale_markers_are_never_values():
    h = Harness(agg_yaml("Count", window=10))
    h.send([({"__name__": "m"}, 1_000, 1.0), ({"__name__": "m"}, 2_000, STALE_NAN)])
    h.close_all()
    assert [a.stats()["count"] for _, a in h.emits] == [1]


def test_one_batch_spanning_many_windows_loses_nothing():
    h = Harness(agg_yaml("Sum", window=10, slide=5))
    samples = [({"__name__": "m"}, t, 1.0) for t in range(1, 100_001, 1000)]
    out = h.send(samples)
    out += h.close_all()
    total = sum(a.stats()["sum"] for o, a in out if o.window_end % 10_000 == 0)
    assert total == pytest.approx(100.0)
    assert sum(a.stats()["sum"] for _, a in out) == pytest.approx(200.0)


def test_idle_group_advances_from_the_flush_timer_to_the_stream_watermark_only():
    h = Harness(agg_yaml("Sum", window=10, grouping=["g"]))
    h.send(
        [({"__name__": "m", "g": "idle"}, 1_000, 1.0), ({"__name__": "m", "g": "busy"}, 1_000, 1.0)]
    )
    h.worker.flush()  # both groups were active: nothing advances
    h.send([({"__name__": "m", "g": "busy"}, 25_000, 1.0)])
    assert [o.key for o, _ in h.emits] == [("busy",)]
    out = expand(h.worker.flush())  # "idle" received nothing since the last tick
    assert [(o.key, o.window_end) for o, _ in out] == [(("idle",), 10_000)]
    again = h.worker.flush()
    assert again == []
    assert h.worker.status()[1]["watermark_ms"] == 25_000


def test_raw_ingest_without_matching_aggregation_emits_nothing():
    h = Harness(agg_yaml("Sum", window=10, metric="x"))
    h.send([({"__name__": "m"}, 1_000, 1.0)])
    assert h.close_all() == []
    assert not math.isnan(0.0)


@pytest.mark.parametrize("agg_type", ["Sum", "Count", "Min", "Max", "MinMax", "Avg", "Increase"])
def test_columnar_panes_equal_one_accumulator_per_pane(agg_type):
    import numpy as np

    rng = np.random.default_rng(4)
    samples = [
        ({"__name__": "m", "g": f"s{int(rng.integers(0, 7))}"}, int(t), float(rng.normal()))
        for t in rng.integers(0, 200_000, 600)
    ]
    results = []
    for columnar in (True, False):
        h = Harness(
            agg_yaml(agg_type, window=30, slide=10, grouping=["g"]), allowed_lateness_ms=10**6
        )
        if not columnar:
            h.worker.aggs[1].columnar = None
        for i in range(0, len(samples), 50):
            h.send(samples[i : i + 50])
        h.worker.flush()
        h.close_all()
        results.append(
            sorted(
                (
                    o.key,
                    o.window_start,
                    o.window_end,
                    tuple(round(v, 9) for v in a.stats().values()),
                )
                for o, a in h.emits
            )
        )
    assert results[0] and results[0] == results[1]
