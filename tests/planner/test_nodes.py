"""Plan nodes one at a time, executed directly on hand-built inputs with hand-computed results."""

from __future__ import annotations

import time

import numpy as np
import pytest

from planner.engine import EngineOptions
from planner.executor import Executor
from planner.nodes.absent import Absent
from planner.nodes.base import PlanNode
from planner.nodes.instant_manipulate import InstantManipulate
from planner.nodes.range_manipulate import RangeManipulate
from planner.nodes.scalar_calc import ScalarCalc, scalar_of
from planner.nodes.series_normalize import SeriesNormalize
from planner.nodes.series_scan import SeriesScan
from planner.nodes.set_op import SetOp
from planner.nodes.step_invariant import StepInvariant
from planner.nodes.subquery import go_div, inner_grid
from planner.stmt import Grid
from planner.values import InstantVector, SeriesData
from promql.errors import QueryTimeoutError
from promql.types import Matcher, MatchType, ValueType
from storage.model import STALE_NAN, is_stale
from tests.planner.conftest import load


class Const(PlanNode):
    """A test-only leaf returning a fixed value (so one node can be run in isolation)."""

    def __init__(self, value, out=ValueType.VECTOR):
        self.value, self._out = value, out

    @property
    def output_type(self):
        return self._out

    def execute(self, ex, grid):
        return self.value


def _ex(storage, **opts) -> Executor:
    return Executor(storage, EngineOptions(**opts), 300_000, time.monotonic() + 60)


def _series(*samples: list[tuple[int, float]]) -> SeriesData:
    ts = [t for s in samples for t, _ in s]
    vs = [v for s in samples for _, v in s]
    offsets = np.cumsum([0] + [len(s) for s in samples])
    labels = [(("i", str(i)),) for i in range(len(samples))]
    return SeriesData(labels, offsets, np.array(ts, np.int64), np.array(vs, np.float64))


def test_series_normalize_drops_stale_markers_and_fixes_offsets(storage):
    data = _series([(0, 1.0), (10, STALE_NAN), (20, 3.0)], [(5, STALE_NAN), (15, 2.0)])
    out = SeriesNormalize(Const(data, ValueType.NONE), drop_stale=True).execute(
        _ex(storage), Grid(0, 0, 0)
    )
    assert out.offsets.tolist() == [0, 2, 3]
    assert out.timestamps.tolist() == [0, 20, 15]
    assert not is_stale(out.values).any()


def test_instant_manipulate_picks_newest_sample_and_honours_stale_markers(storage):
    data = _series([(0, 1.0), (100, 2.0), (200, STALE_NAN), (300, 4.0)])
    node = InstantManipulate(Const(data, ValueType.NONE), lookback_ms=150)
    out = node.execute(_ex(storage), Grid(50, 450, 50))
    # t:      50  100 150 200   250   300 350 400 450
    # newest:  0  100 100 stale stale 300 300 300 (300 is 150 old at 450: out)
    assert out.present[0].tolist() == [True, True, True, False, False, True, True, True, False]
    assert out.values[0][out.present[0]].tolist() == [1.0, 2.0, 2.0, 4.0, 4.0, 4.0]


def test_instant_manipulate_with_offset_and_at(storage):
    data = _series([(0, 1.0), (100, 2.0)])
    node = InstantManipulate(Const(data, ValueType.NONE), 1000, offset_ms=50, at_ms=150)
    out = node.execute(_ex(storage), Grid(0, 1000, 500))
    assert out.values.tolist() == [[2.0, 2.0, 2.0]]  # every step looks at 150 - 50 = 100


def test_range_manipulate_windows_are_left_open(storage):
    data = _series([(0, 1.0), (100, 2.0), (200, 3.0)])
    out = RangeManipulate(Const(data, ValueType.NONE), range_ms=100).execute(
        _ex(storage), Grid(100, 200, 100)
    )
    assert out.ranges.offsets.tolist() == [1, 2]  # (0, 100] holds only t=100
    assert out.ranges.sizes.tolist() == [1, 1]
    assert out.ranges.window_ends.tolist() == [100, 200]


def test_series_scan_reads_the_pushed_down_range(storage):
    load(storage, {'x{a="1"}': ([0, 100, 200], [1.0, 2.0, 3.0])})
    scan = SeriesScan((Matcher(MatchType.EQUAL, "__name__", "x"),), 50, 150)
    out = scan.execute(_ex(storage), Grid(0, 0, 0))
    assert out.timestamps.tolist() == [100] and out.offsets.tolist() == [0, 1]


def test_subquery_grid_uses_go_integer_division_for_negative_times():
    assert go_div(-7, 2) == -3 and go_div(7, 2) == 3
    g = inner_grid(np.array([-50_000], np.int64), range_ms=60_000, step_ms=20_000)
    # first multiple of 20s strictly after -110s: Go truncation gives -100s
    assert (g.start_ms, g.end_ms) == (-100_000, -50_000)


def test_scalar_of_needs_exactly_one_series():
    vec = InstantVector(
        [(("a", "1"),), (("a", "2"),)],
        np.array([[1.0, 2.0, 3.0], [9.0, 9.0, 9.0]]),
        np.array([[True, True, False], [False, True, False]]),
    )
    out = scalar_of(vec, 3)
    assert out[0] == 1.0 and np.isnan(out[1]) and np.isnan(out[2])


def test_set_op_and_matches_per_step(storage):
    lhs = InstantVector([(("a", "1"),)], np.array([[1.0, 2.0]]), np.array([[True, True]]))
    rhs = InstantVector([(("a", "1"),)], np.array([[5.0, 5.0]]), np.array([[False, True]]))
    out = SetOp("and", Const(lhs), Const(rhs)).execute(_ex(storage), Grid(0, 10, 10))
    assert out.present.tolist() == [[False, True]] and out.values[0, 1] == 2.0


def test_absent_fills_only_empty_steps(storage):
    vec = InstantVector([(("a", "1"),)], np.array([[1.0, 0.0]]), np.array([[True, False]]))
    out = Absent(Const(vec), (("job", "x"),)).execute(_ex(storage), Grid(0, 10, 10))
    assert out.labels == [(("job", "x"),)] and out.present.tolist() == [[False, True]]


def test_step_invariant_evaluates_once_and_broadcasts(storage):
    calls = []

    class Counting(Const):
        def execute(self, ex, grid):
            calls.append(grid.n_steps)
            return InstantVector([()], np.array([[7.0]]), np.array([[True]]))

    out = StepInvariant(Counting(None)).execute(_ex(storage), Grid(0, 40, 10))
    assert calls == [1] and out.values.tolist() == [[7.0] * 5]


def test_time_is_seconds_per_step(storage):
    out = ScalarCalc("time").execute(_ex(storage), Grid(0, 20_000, 10_000))
    assert out.values.tolist() == [0.0, 10.0, 20.0]


def test_executor_raises_timeout_past_the_deadline(storage):
    ex = Executor(storage, EngineOptions(), 300_000, time.monotonic() - 1)
    with pytest.raises(QueryTimeoutError):
        ex.run(ScalarCalc("literal", value=1.0), Grid(0, 0, 0))


def _all_node_types() -> list[type]:
    import importlib
    import pkgutil

    import planner.nodes

    for mod in pkgutil.iter_modules(planner.nodes.__path__):
        importlib.import_module(f"planner.nodes.{mod.name}")
    found, todo = [], [PlanNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def test_plan_nodes_hold_no_derived_state_that_a_copy_with_new_children_would_keep():
    """``map_inputs`` copies a node's fields without re-running ``__init__``."""
    types = _all_node_types()
    assert len(types) > 20
    for cls in types:
        assert not hasattr(cls, "__post_init__"), cls
        assert "__slots__" not in vars(cls), cls  # slot fields would not be in ``__dict__``


def test_every_node_that_reads_storage_itself_says_so():
    """``planner.raw_step_cache`` keeps answers by the ranges ``SeriesScan``s read: a node
    reading ``ex.storage`` another way must set ``READS_STORAGE`` so its plans are not kept."""
    import inspect

    for cls in _all_node_types():
        if cls.__module__.startswith("planner.nodes."):
            source = inspect.getsource(cls)
            assert ("ex.storage" in source) <= cls.READS_STORAGE, cls


def test_a_node_rebuilt_with_a_new_child_keeps_its_other_fields_and_leaves_the_old_one():
    scan = SeriesScan((Matcher(MatchType.EQUAL, "__name__", "x"),), 0, 10)
    other = SeriesScan((Matcher(MatchType.EQUAL, "__name__", "y"),), 0, 10)
    node = SeriesNormalize(scan)
    rebuilt = node.map_inputs(lambda _c: other)
    assert rebuilt == SeriesNormalize(other) and rebuilt is not node
    assert node.input is scan
    assert node.map_inputs(lambda c: c) is node
