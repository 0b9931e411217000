"""Binary operators: vector matching in every cardinality, its errors, set operators, bool."""

from __future__ import annotations

import pytest

from promql.errors import ExecutionError
from tests.planner.conftest import as_dict, load

T = 60_000


@pytest.fixture
def data(storage):
    load(
        storage,
        {
            'req{job="api",instance="1",code="200"}': ([0], [10.0]),
            'req{job="api",instance="1",code="500"}': ([0], [2.0]),
            'req{job="web",instance="2",code="200"}': ([0], [5.0]),
            'cap{job="api",instance="1"}': ([0], [100.0]),
            'cap{job="web",instance="2"}': ([0], [50.0]),
            'info{job="api",owner="alice"}': ([0], [1.0]),
            'info{job="web",owner="bob"}': ([0], [1.0]),
            'dup{job="api",x="1"}': ([0], [1.0]),
            'dup{job="api",x="2"}': ([0], [1.0]),
        },
    )
    return storage


def test_one_to_one_arithmetic_matches_on_all_labels_and_drops_the_name(data, engine):
    r = engine.instant_query('cap / on(job, instance) req{code="200"}', T)
    assert as_dict(r) == {
        (("instance", "1"), ("job", "api")): [10.0],
        (("instance", "2"), ("job", "web")): [10.0],
    }


def test_ignoring_removes_labels_from_the_match_and_the_result(data, engine):
    r = engine.instant_query('req{code="200"} + ignoring(code) cap', T)
    assert as_dict(r) == {
        (("instance", "1"), ("job", "api")): [110.0],
        (("instance", "2"), ("job", "web")): [55.0],
    }


def test_many_to_one_with_group_left_keeps_the_many_side_labels(data, engine):
    r = engine.instant_query("req / ignoring(code) group_left cap", T)
    assert as_dict(r) == {
        (("code", "200"), ("instance", "1"), ("job", "api")): [0.1],
        (("code", "500"), ("instance", "1"), ("job", "api")): [0.02],
        (("code", "200"), ("instance", "2"), ("job", "web")): [0.1],
    }


def test_group_left_copies_included_labels_from_the_one_side(data, engine):
    r = engine.instant_query("cap * on(job) group_left(owner) info", T)
    assert as_dict(r) == {
        (("instance", "1"), ("job", "api"), ("owner", "alice")): [100.0],
        (("instance", "2"), ("job", "web"), ("owner", "bob")): [50.0],
    }


def test_group_right_is_the_mirror_of_group_left(data, engine):
    r = engine.instant_query("cap - on(job, instance) group_right req", T)
    assert as_dict(r) == {
        (("code", "200"), ("instance", "1"), ("job", "api")): [90.0],
        (("code", "500"), ("instance", "1"), ("job", "api")): [98.0],
        (("code", "200"), ("instance", "2"), ("job", "web")): [45.0],
    }


def test_one_to_one_with_many_matches_on_the_left_is_an_error(data, engine):
    with pytest.raises(ExecutionError, match="many-to-one matching must be explicit"):
        engine.instant_query("req / ignoring(code) cap", T)


def test_duplicate_series_on_the_one_side_is_a_many_to_many_error(data, engine):
    with pytest.raises(ExecutionError) as err:
        engine.instant_query("cap * on(job) group_left dup", T)
    assert str(err.value) == (
        'found duplicate series for the match group {job="api"} on the right hand-side of the '
        'operation: [{__name__="dup", job="api", x="1"}, {__name__="dup", job="api", x="2"}]'
        ";many-to-many matching not allowed: matching labels must be unique on one side"
    )


def test_duplicates_on_the_one_side_are_no_error_while_the_other_side_is_empty(data, engine):
    # Upstream short-circuits an empty side before looking for duplicates (``VectorBinop``).
    r = engine.instant_query("clamp(cap, 2, 0) * on(job) group_left dup", T)
    assert as_dict(r) == {}
    r = engine.instant_query("cap{job='none'} * on(job) dup", T)
    assert as_dict(r) == {}


def test_duplicates_on_the_one_side_are_an_error_only_at_steps_where_both_sides_have_samples(
    storage, engine
):
    load(
        storage,
        {
            'one{job="a",x="1"}': ([0], [1.0]),
            'one{job="a",x="2"}': ([0], [2.0]),
            'many{job="a"}': ([240_000], [5.0]),
        },
    )
    # From 300s on the one-side samples at 0s are out of the (t - 5m, t] lookback.
    r = engine.range_query("many * on(job) group_left one", 300_000, 420_000, 60_000)
    assert as_dict(r) == {}
    with pytest.raises(ExecutionError, match="found duplicate series"):
        engine.range_query("many * on(job) group_left one", 240_000, 360_000, 60_000)


def test_comparison_filters_and_keeps_the_name(data, engine):
    r = engine.instant_query("req > 4", T)
    assert sorted(as_dict(r).values()) == [[5.0], [10.0]]
    assert all(dict(s.labels)["__name__"] == "req" for s in r.series)


def test_comparison_with_bool_returns_zero_or_one_without_the_name(data, engine):
    r = engine.instant_query('req{job="api"} > bool 4', T)
    assert as_dict(r) == {
        (("code", "200"), ("instance", "1"), ("job", "api")): [1.0],
        (("code", "500"), ("instance", "1"), ("job", "api")): [0.0],
    }


def test_scalar_on_the_left_of_a_comparison_keeps_the_vector_value(data, engine):
    r = engine.instant_query('3 < req{job="api"}', T)
    assert list(as_dict(r).values()) == [[10.0]]


def test_vector_scalar_arithmetic_drops_the_name(data, engine):
    r = engine.instant_query('cap{job="web"} * 2', T)
    assert as_dict(r) == {(("instance", "2"), ("job", "web")): [100.0]}


def test_dropping_the_name_that_collides_is_a_duplicate_labelset_error(storage, engine):
    load(storage, {'a{x="1"}': ([0], [1.0]), 'b{x="1"}': ([0], [2.0])})
    with pytest.raises(
        ExecutionError, match="vector cannot contain metrics with the same labelset"
    ):
        engine.instant_query('{x="1"} * 2', T)


def test_scalar_arithmetic_follows_go_semantics(engine):
    r = engine.instant_query("-7 % 3", T)
    assert r.scalar == (T, -1.0)
    assert engine.instant_query("2 ^ 10 == bool 1024", T).scalar == (T, 1.0)


def test_and_keeps_left_series_with_a_match(data, engine):
    r = engine.instant_query('req and on(job) info{owner="bob"}', T)
    assert list(as_dict(r)) == [
        (("__name__", "req"), ("code", "200"), ("instance", "2"), ("job", "web"))
    ]


def test_unless_drops_left_series_with_a_match(data, engine):
    r = engine.instant_query('req unless on(code) req{job="web"}', T)
    assert [dict(k)["code"] for k in as_dict(r)] == ["500"]


def test_or_adds_right_series_whose_signature_is_missing_on_the_left(data, engine):
    r = engine.instant_query('cap{job="api"} or on(job) cap', T)
    assert sorted(v[0] for v in as_dict(r).values()) == [50.0, 100.0]


def test_or_takes_the_right_side_only_at_steps_where_the_left_is_absent(storage, engine):
    load(storage, {'l{k="1"}': ([0], [1.0]), 'r{k="1"}': ([0, 400_000], [2.0, 3.0])})
    r = engine.range_query("l or ignoring(__name__) r", 0, 600_000, 200_000)
    got = {
        s.labels: list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True)) for s in r.series
    }
    assert got[(("__name__", "l"), ("k", "1"))] == [(0, 1.0), (200_000, 1.0)]
    assert got[(("__name__", "r"), ("k", "1"))] == [(400_000, 3.0), (600_000, 3.0)]


def test_negation_merges_series_whose_labels_collide_only_at_different_steps(storage, engine):
    # Prometheus 3.x (mergeSeriesWithSameLabelset) joins them; 2.42 failed the whole range query.
    load(storage, {'l{k="1"}': ([0], [1.0]), 'r{k="1"}': ([0, 400_000], [2.0, 3.0])})
    r = engine.range_query("-(l or ignoring(__name__) r)", 0, 600_000, 200_000)
    got = {
        s.labels: list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True)) for s in r.series
    }
    assert got == {(("k", "1"),): [(0, -1.0), (200_000, -1.0), (400_000, -3.0), (600_000, -3.0)]}


def test_negation_of_series_colliding_at_the_same_step_is_a_duplicate_labelset_error(
    storage, engine
):
    load(storage, {'l{k="1"}': ([0], [1.0]), 'r{k="1"}': ([0], [2.0])})
    with pytest.raises(
        ExecutionError, match="vector cannot contain metrics with the same labelset"
    ):
        engine.range_query('-{k="1"}', 0, 120_000, 60_000)


def test_matching_can_change_per_step_in_a_range_query(storage, engine):
    load(
        storage,
        {
            'a{k="1"}': ([0, 400_000], [1.0, 1.0]),
            'b{k="1",v="x"}': ([0], [10.0]),
            'b{k="1",v="y"}': ([400_000], [20.0]),
        },
    )
    # v differs per step: each step has one match; the group_left label follows the match.
    r = engine.range_query("a * on(k) group_left(v) b", 0, 400_000, 400_000)
    got = {dict(s.labels)["v"]: s.values.tolist() for s in r.series}
    assert got == {"x": [10.0], "y": [20.0]}


def test_fill_modifiers_stand_in_for_a_missing_side(storage):
    from planner.engine import Engine, EngineOptions

    load(
        storage,
        {
            'l{k="1"}': ([0], [1.0]),
            'l{k="2"}': ([0], [2.0]),
            'r{k="2"}': ([0], [10.0]),
            'r{k="3"}': ([0], [30.0]),
        },
    )
    engine = Engine(storage, EngineOptions(experimental=True))
    r = engine.instant_query("l + fill(100) r", T)
    assert as_dict(r) == {(("k", "1"),): [101.0], (("k", "2"),): [12.0], (("k", "3"),): [130.0]}
    r = engine.instant_query("l + fill_right(0) r", T)
    assert as_dict(r) == {(("k", "1"),): [1.0], (("k", "2"),): [12.0]}
