"""The promqltest DSL parser and the comparison rules, on small inputs and on the real corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planner.result import QueryResult, SeriesResult
from promql.types import ValueType
from storage.model import STALE_NAN, is_stale
from tests.conformance.compare import Mismatch, almost_equal, check_result
from tests.conformance.dsl import (
    ClearCmd,
    DslError,
    EvalCmd,
    LoadCmd,
    parse_file,
    parse_series_desc,
    parse_values,
)
from tests.conformance.lexing import go_unquote, parse_duration_ms, parse_go_number
from tests.conformance.runner import DEFAULT_DIR, corpus_files, load_batch, nhcb_base_series


def test_value_expansions_follow_upstream_counts() -> None:
    assert parse_values("1+2x3") == (1.0, 3.0, 5.0, 7.0)
    assert parse_values("10-1x2") == (10.0, 9.0, 8.0)
    assert parse_values("5x2") == (5.0, 5.0, 5.0)
    assert parse_values("_x3 1 _") == (None, None, None, 1.0, None)
    assert parse_values("-1-1x2") == (-1.0, -2.0, -3.0)
    assert parse_values("1e-6 -Inf") == (1e-6, -math.inf)
    assert parse_values("0+0x2") == (0.0, 0.0, 0.0)


def test_stale_values_are_bit_exact_stale_markers() -> None:
    values = parse_values("1 stale NaN")
    arr = np.array(values, dtype=np.float64)
    assert is_stale(arr).tolist() == [False, True, False]


def test_series_description_parses_names_labels_and_quoted_utf8_names() -> None:
    d = parse_series_desc('http_requests{job="api", path="/a\\"b"} 1 2')
    assert d.labels == (("__name__", "http_requests"), ("job", "api"), ("path", '/a"b'))
    assert d.values == (1.0, 2.0)
    u = parse_series_desc('{"my.metric", "label.name"="v"} 3')
    assert u.labels == (("__name__", "my.metric"), ("label.name", "v"))
    assert parse_series_desc("{} 7").labels == ()


def test_native_histogram_values_are_flagged_not_parsed() -> None:
    d = parse_series_desc("h {{schema:0 sum:1 count:2}}x3")
    assert d.histogram and d.values == ()


def test_invalid_value_is_a_dsl_error() -> None:
    with pytest.raises(DslError):
        parse_values("1+2")


def test_go_literals() -> None:
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("0") == 0
    assert parse_duration_ms("10ms") == 10
    assert parse_go_number("0x10") == 16.0
    assert parse_go_number("010") == 8.0
    assert parse_go_number("1e3") == 1000.0
    assert math.isnan(parse_go_number("NaN") or 0.0)
    assert parse_go_number("{} 1") is None
    assert go_unquote('"a\\tb\\u00e9"') == "a\tb\u00e9"
    assert go_unquote("`raw\\n`") == "raw\\n"


def test_file_with_loads_evals_expectations_and_clear() -> None:
    text = """
# comment
load 5m
  foo{a="1"} 0+10x2
  foo{a="1"} 1 2

eval instant at 10m foo
  expect warn msg: PromQL warning: x
  expect no_info
  foo{a="1"} 2

eval range from 0 to 10m step 5m foo
  foo{a="1"} 1 2 _

eval_fail instant at 0m bar
  expected_fail_message boom

eval instant at 1m foo[1m]
  expect range vector from 10s to 1m step 10s
  foo{a="1"} 1 _ 3

eval instant at 0 "x"
  expect string "x"

clear
"""
    cmds = parse_file(text)
    assert [type(c) for c in cmds] == [
        LoadCmd,
        EvalCmd,
        EvalCmd,
        EvalCmd,
        EvalCmd,
        EvalCmd,
        ClearCmd,
    ]
    load = cmds[0]
    assert isinstance(load, LoadCmd) and load.interval_ms == 300_000
    assert load.series[0].values == (1.0, 2.0)  # the later line for the same series wins
    inst = cmds[1]
    assert isinstance(inst, EvalCmd) and inst.eval_ms == 600_000 and not inst.is_range
    assert inst.of_kind("warn")[0].matches("PromQL warning: x")
    assert inst.series[0].values == (2.0,)
    rng = cmds[2]
    assert isinstance(rng, EvalCmd) and rng.is_range and rng.step_ms == 300_000
    assert rng.series[0].values == (1.0, 2.0, None)
    fail = cmds[3]
    assert isinstance(fail, EvalCmd) and fail.fail and fail.fail_message == "boom"
    rv = cmds[4]
    assert isinstance(rv, EvalCmd) and rv.range_vector and rv.exclude_from_range
    assert (rv.start_ms, rv.end_ms, rv.step_ms, rv.eval_ms) == (10_000, 60_000, 10_000, 60_000)
    st = cmds[5]
    assert isinstance(st, EvalCmd) and st.string == "x"


def test_multiple_values_in_an_instant_eval_are_rejected() -> None:
    with pytest.raises(DslError):
        parse_file("eval instant at 0 foo\n  foo 1 2\n")


def test_load_batch_places_samples_on_the_interval_grid_and_skips_blanks() -> None:
    (load,) = parse_file("load 1m\n  a 1 _ 3\n  b stale\n")
    assert isinstance(load, LoadCmd)
    batch = load_batch(load)
    assert batch.timestamps.tolist() == [0, 120_000, 0]
    assert batch.sample_series.tolist() == [0, 0, 1]
    assert is_stale(batch.values).tolist() == [False, False, True]


def test_nhcb_loads_mark_the_histogram_base_series() -> None:
    base = nhcb_base_series([(("__name__", "h_bucket"), ("job", "x"), ("le", "1"))])
    assert base == [(("__name__", "h"), ("job", "x"))]


def test_almost_equal_matches_prometheus_rules() -> None:
    assert almost_equal(1.0, 1.0 + 1e-9)
    assert not almost_equal(1.0, 1.001)
    assert almost_equal(math.nan, math.nan)
    assert not almost_equal(STALE_NAN, math.nan)
    assert almost_equal(STALE_NAN, STALE_NAN)
    assert not almost_equal(0.0, 1e-300)


def _vector(*points: tuple[tuple[tuple[str, str], ...], float]) -> QueryResult:
    series = [SeriesResult(ls, np.array([0], dtype=np.int64), np.array([v])) for ls, v in points]
    return QueryResult(ValueType.VECTOR, series)


def test_vector_comparison_is_a_set_unless_ordered() -> None:
    (cmd,) = parse_file('eval instant at 0 x\n  x{a="1"} 1\n  x{a="2"} 2\n')
    assert isinstance(cmd, EvalCmd)
    a1, a2 = (("__name__", "x"), ("a", "1")), (("__name__", "x"), ("a", "2"))
    check_result(cmd, _vector((a2, 2.0), (a1, 1.0)))
    with pytest.raises(Mismatch):
        check_result(cmd, _vector((a1, 1.0)))
    with pytest.raises(Mismatch):
        check_result(cmd, _vector((a1, 1.0), (a2, 3.0)))
    (ordered,) = parse_file('eval instant at 0 x\n  expect ordered\n  x{a="1"} 1\n  x{a="2"} 2\n')
    assert isinstance(ordered, EvalCmd)
    with pytest.raises(Mismatch):
        check_result(ordered, _vector((a2, 2.0), (a1, 1.0)))


def test_matrix_comparison_checks_timestamps_and_gaps() -> None:
    (cmd,) = parse_file("eval range from 0 to 2m step 1m x\n  x 1 _ 3\n")
    assert isinstance(cmd, EvalCmd)
    labels = (("__name__", "x"),)
    good = SeriesResult(labels, np.array([0, 120_000]), np.array([1.0, 3.0]))
    check_result(cmd, QueryResult(ValueType.MATRIX, [good]))
    shifted = SeriesResult(labels, np.array([0, 60_000]), np.array([1.0, 3.0]))
    with pytest.raises(Mismatch):
        check_result(cmd, QueryResult(ValueType.MATRIX, [shifted]))


@pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason=f"corpus not found at {DEFAULT_DIR}")
def test_every_corpus_file_parses_into_the_documented_number_of_evals() -> None:
    evals = [c for f in corpus_files() for c in parse_file(f.read_text()) if isinstance(c, EvalCmd)]
    assert len(corpus_files()) == 21
    assert len(evals) == 2214
