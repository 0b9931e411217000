from __future__ import annotations

from planner.labels import DROPPED_NAMES, ListMemo, all_distinct
from storage.model import make_labels


def _series(n: int, name: str = "x") -> list:
    return [make_labels({"__name__": name, "i": str(i)}) for i in range(n)]


def test_a_list_equal_to_one_seen_reuses_its_answer():
    calls = []
    memo = ListMemo(lambda ls: calls.append(1) or tuple(ls))
    series = _series(5)
    first = memo(series)
    assert memo(list(series)) is first
    assert len(calls) == 1


def test_a_changed_middle_with_the_same_ends_and_length_is_derived_again():
    memo = ListMemo(lambda ls: tuple(dict(p)["i"] for p in ls))
    series = _series(5)
    assert memo(series) == ("0", "1", "2", "3", "4")
    changed = list(series)
    changed[2] = make_labels({"__name__": "x", "i": "9"})
    assert memo(changed) == ("0", "1", "9", "3", "4")


def test_equal_but_not_identical_label_sets_give_the_same_answer():
    memo = ListMemo(lambda ls: len(ls))
    assert memo(_series(3)) == memo(_series(3)) == 3


def test_the_memo_forgets_everything_past_its_series_budget():
    memo = ListMemo(lambda ls: object(), series=10)
    a = _series(6)
    kept = memo(a)
    memo(_series(6, "y"))  # 12 > 10: starts over
    assert memo(a) is not kept


def test_name_drops_hand_out_a_list_the_caller_may_change():
    series = _series(3)
    dropped = DROPPED_NAMES.many(series)
    dropped.append(("extra", "1"))
    assert DROPPED_NAMES.many(series) == [make_labels({"i": str(i)}) for i in range(3)]


def test_distinctness_is_judged_by_label_values():
    series = _series(3)
    assert all_distinct(series)
    assert not all_distinct([series[0], series[1], make_labels({"__name__": "x", "i": "0"})])
