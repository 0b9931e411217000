from __future__ import annotations

import math

import numpy as np

from storage.model import make_labels
from udfs.sorting import natsort_less, sort_by_label_order, sort_desc_order, sort_order


def test_sort_puts_nan_last_in_both_directions():
    v = np.array([3.0, math.nan, 1.0, 2.0])
    assert sort_order(v).tolist() == [2, 3, 0, 1]
    assert sort_desc_order(v).tolist() == [0, 3, 2, 1]


def test_natural_order_compares_digit_runs_as_numbers():
    assert natsort_less("a2", "a10")
    assert not natsort_less("a10", "a2")
    assert natsort_less("abc", "abd")
    assert natsort_less("a", "a1")
    assert natsort_less("1.9", "1.10")


def test_sort_by_label_uses_natural_order_then_the_full_label_set():
    series = [
        make_labels({"instance": "host10", "job": "b"}),
        make_labels({"instance": "host2", "job": "b"}),
        make_labels({"instance": "host2", "job": "a"}),
    ]
    assert sort_by_label_order(series, ["instance"]) == [2, 1, 0]
    assert sort_by_label_order(series, ["instance"], descending=True) == [0, 1, 2]
