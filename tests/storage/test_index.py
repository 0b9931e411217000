"""Label index and Prometheus matcher semantics."""

from __future__ import annotations

import numpy as np
import pytest

from promql.errors import BadDataError
from promql.types import Matcher, MatchType
from storage.index import LabelIndex, matcher_matches, validate_labels
from tests.storage.helpers import lab

SERIES = [
    lab("http_requests_total", job="api", code="200"),
    lab("http_requests_total", job="api", code="500"),
    lab("http_requests_total", job="web"),
    lab("up", job="api", env="prod\nx"),
    lab("up", job="db"),
]


@pytest.fixture
def index() -> LabelIndex:
    idx = LabelIndex()
    idx.intern(SERIES, None)
    return idx


def names(index: LabelIndex, *matchers: Matcher) -> list:
    return [index.labels(int(i)) for i in index.select(list(matchers))]


def m(kind: str, name: str, value: str) -> Matcher:
    return Matcher(MatchType(kind), name, value)


def test_equal_matcher_selects_exact_value(index):
    assert names(index, m("=", "job", "web")) == [SERIES[2]]


def test_regex_is_fully_anchored(index):
    assert names(index, m("=~", "job", "ap")) == []
    assert names(index, m("=~", "job", "a.*")) == [SERIES[0], SERIES[1], SERIES[3]]


def test_regex_dot_matches_newline_like_prometheus_3(index):
    assert names(index, m("=~", "env", "prod.x")) == [SERIES[3]]


def test_equal_empty_selects_series_lacking_the_label(index):
    assert names(index, m("=", "code", "")) == [SERIES[2], SERIES[3], SERIES[4]]


def test_not_equal_keeps_series_lacking_the_label(index):
    assert names(index, m("!=", "code", "200")) == SERIES[1:]


def test_not_equal_empty_selects_series_having_the_label(index):
    assert names(index, m("!=", "code", "")) == SERIES[:2]


def test_regex_matching_empty_also_selects_series_lacking_the_label(index):
    got = names(index, m("=~", "code", "5..|"))
    assert got == [SERIES[1], SERIES[2], SERIES[3], SERIES[4]]


def test_not_regex_excludes_matches_and_keeps_unlabelled_series(index):
    assert names(index, m("!~", "code", "2.*")) == SERIES[1:]
    assert names(index, m("!~", "code", ".+")) == SERIES[2:]


def test_matchers_intersect(index):
    got = names(index, m("=", "__name__", "http_requests_total"), m("!~", "job", "web|db"))
    assert got == SERIES[:2]


def test_matcher_on_unknown_label(index):
    assert names(index, m("=", "nope", "x")) == []
    assert len(names(index, m("!=", "nope", "x"))) == len(SERIES)


def test_invalid_regex_is_bad_data(index):
    with pytest.raises(BadDataError, match="invalid regular expression"):
        index.select([m("=~", "job", "(")])


def test_catastrophic_regex_runs_in_linear_time():
    idx = LabelIndex()
    idx.intern([lab("x", v="a" * 5000 + "!")], None)
    # Exponential for a backtracking engine; RE2 answers at once.
    assert idx.select([m("=~", "v", "(a+)+$")]).shape[0] == 0


def test_interning_by_raw_key_and_by_labels_agree():
    idx = LabelIndex()
    a = idx.intern([SERIES[0], SERIES[1]], [b"k0", b"k1"])
    b = idx.intern([SERIES[1], SERIES[0]], [b"other-encoding", b"k0"])
    c = idx.intern([SERIES[1]], None)
    assert a.tolist() == [0, 1]
    assert b.tolist() == [1, 0]
    assert c.tolist() == [1]
    assert len(idx) == 2


def test_sort_ids_orders_by_label_set(index):
    ids = np.arange(len(SERIES), dtype=np.int64)[::-1].copy()
    ordered = [index.labels(int(i)) for i in index.sort_ids(ids)]
    assert ordered == sorted(SERIES)


@pytest.mark.parametrize(
    "labels",
    [
        (("job", "x"),),
        (("__name__", "x"), ("__name__", "y")),
        (("b", "1"), ("a", "1"), ("__name__", "x")),
        (("__name__", "x"), ("", "v")),
        (("__name__", "x"), ("\udcff", "v")),
        (("__name__", "x"), ("a", "")),
        (("__name__", "x"), ("a", "\udcff")),
        (),
    ],
)
def test_malformed_label_sets_are_rejected(labels):
    with pytest.raises(BadDataError):
        validate_labels(labels)


@pytest.mark.parametrize(
    "pattern",
    ["api|db", "api|db|", "web", ".*", ".+", "a.i|db", "api|x|y", "", "|"],
)
@pytest.mark.parametrize("kind", ["=~", "!~"])
def test_regex_fast_paths_agree_with_re2_on_every_series(index, pattern, kind):
    matcher = m(kind, "job", pattern)
    got = names(index, matcher)
    expected = [s for s in SERIES if matcher_matches(matcher, dict(s).get("job", ""))]
    assert got == expected


def test_utf8_label_names_are_accepted_as_in_prometheus_3():
    labels = (("__name__", "http.requests"), ("service.name", "api"), ("ünï", "x"))
    validate_labels(labels)
    idx = LabelIndex()
    idx.intern([labels], None)
    assert idx.select([m("=", "service.name", "api")]).tolist() == [0]


def test_intersection_of_sorted_id_lists_equals_numpy_intersect1d():
    from storage.index import _intersect_sorted

    rng = np.random.default_rng(0)
    for _ in range(500):
        a = np.unique(rng.integers(0, 60, rng.integers(0, 40))).astype(np.int64)
        b = np.unique(rng.integers(0, 60, rng.integers(0, 40))).astype(np.int64)
        assert np.array_equal(_intersect_sorted(a, b), np.intersect1d(a, b))
