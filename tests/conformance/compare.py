"""Result and annotation comparison with the upstream runner's rules (``promqltest/test.go``).

Values compare with relative tolerance 1e-6 (``util/almost.Equal``): NaN equals NaN, a stale
marker equals only a stale marker. Series compare as a set unless the eval is ``ordered``.
Every check raises ``Mismatch`` with a message naming what differed.
"""

from __future__ import annotations

import math

import numpy as np

from planner.result import QueryResult
from promql.types import ValueType
from storage.model import STALE_NAN_BITS, Labels
from tests.conformance.dsl import EvalCmd, Expectation

EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308  # math.Float64frombits(0x0010000000000000)


class Mismatch(AssertionError):
    """The engine's answer differs from the test file's expectation."""


def is_stale_value(v: float) -> bool:
    return bool(np.array([v], dtype=np.float64).view(np.uint64)[0] == STALE_NAN_BITS)


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """Prometheus ``almost.Equal``."""
    if is_stale_value(a) or is_stale_value(b):
        return is_stale_value(a) and is_stale_value(b)
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


def fmt_labels(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def check_annotations(cmd: EvalCmd, expr: str, result: QueryResult) -> None:
    warnings, infos = list(result.warnings), list(result.infos)
    if cmd.legacy == "warn" and not warnings:
        raise Mismatch(f"expected warnings evaluating {expr!r} but got none")
    if cmd.legacy == "info" and not infos:
        raise Mismatch(f"expected info annotations evaluating {expr!r} but got none")
    _check_kind(cmd.of_kind("warn"), warnings, "warn", expr)
    _check_kind(cmd.of_kind("info"), infos, "info", expr)
    if cmd.of_kind("no_warn") and warnings:
        raise Mismatch(f"unexpected warning annotations evaluating {expr!r}: {warnings}")
    if cmd.of_kind("no_info") and infos:
        raise Mismatch(f"unexpected info annotations evaluating {expr!r}: {infos}")


def _check_kind(expected: tuple[Expectation, ...], actual: list[str], kind: str, expr: str) -> None:
    if not expected:
        return
    if not actual:
        raise Mismatch(f"expected {kind} annotations but none were found for {expr!r}")
    for e in expected:
        if not any(e.matches(a) for a in actual):
            raise Mismatch(f"expected {kind} annotation {e.message or e.regex!r}, found {actual}")
    for a in actual:
        if not any(e.matches(a) for e in expected):
            raise Mismatch(f"unexpected {kind} annotation {a!r} for {expr!r}")


def check_failure(cmd: EvalCmd, message: str) -> None:
    """The query failed and ``cmd`` expects that: check the message constraints."""
    if cmd.fail_message is not None and cmd.fail_message != message:
        raise Mismatch(f"expected error {cmd.fail_message!r}, got {message!r}")
    if cmd.fail_regexp is not None:
        import re

        if re.search(cmd.fail_regexp, message) is None:
            raise Mismatch(f"expected error matching {cmd.fail_regexp!r}, got {message!r}")
    fails = cmd.of_kind("fail")
    if fails and not fails[0].matches(message):
        raise Mismatch(
            f"expected error matching {fails[0].message or fails[0].regex!r}, got {message!r}"
        )


def check_result(cmd: EvalCmd, result: QueryResult) -> None:
    """Compare a successful result with the expectation (``compareResult`` upstream)."""
    kind = result.result_type
    if kind == ValueType.MATRIX:
        _check_matrix(cmd, result)
    elif kind == ValueType.VECTOR:
        points = [(s.labels, float(s.values[0])) for s in result.series if len(s.values)]
        check_vector(cmd, points)
    elif kind == ValueType.SCALAR:
        if cmd.scalar is None:
            raise Mismatch(f"expected vector or matrix result, but got scalar {result.scalar}")
        got = result.scalar[1] if result.scalar is not None else math.nan
        if not almost_equal(cmd.scalar, got):
            raise Mismatch(f"expected scalar {cmd.scalar} but got {got}")
    elif kind == ValueType.STRING:
        got_s = result.string[1] if result.string is not None else None
        if cmd.string != got_s:
            raise Mismatch(f'expected string "{cmd.string}" but got "{got_s}"')
    else:
        raise Mismatch(f"unexpected result type {kind}")


def check_vector(cmd: EvalCmd, points: list[tuple[Labels, float]]) -> None:
    if cmd.scalar is not None:
        raise Mismatch(f"expected scalar result, but got vector of {len(points)} samples")
    expected = {e.labels: e for e in cmd.series}
    seen: set[Labels] = set()
    for pos, (labels, value) in enumerate(points):
        exp = expected.get(labels)
        if exp is None:
            raise Mismatch(f"unexpected metric {fmt_labels(labels)} in result, has value {value}")
        if cmd.ordered and exp.pos != pos + 1:
            raise Mismatch(
                f"expected {fmt_labels(labels)} at position {exp.pos} but was at {pos + 1}"
            )
        if not exp.values or exp.values[0] is None:
            raise Mismatch(f"expected no value for {fmt_labels(labels)} but got {value}")
        if not almost_equal(exp.values[0], value):
            raise Mismatch(f"expected {exp.values[0]} for {fmt_labels(labels)} but got {value}")
        seen.add(labels)
    for labels in expected:
        if labels not in seen:
            raise Mismatch(f"expected metric {fmt_labels(labels)} not found")


def check_sorted(result: QueryResult) -> None:
    labels = [s.labels for s in result.series]
    for i in range(len(labels) - 1):
        if labels[i] > labels[i + 1]:
            raise Mismatch(
                f"matrix results should always be sorted by labels: {fmt_labels(labels[i + 1])} "
                f"sorts before {fmt_labels(labels[i])}"
            )


def _check_matrix(cmd: EvalCmd, result: QueryResult) -> None:
    if cmd.ordered:
        raise Mismatch("expected ordered result, but query returned a matrix")
    if cmd.scalar is not None:
        raise Mismatch("expected scalar result, but got matrix")
    check_sorted(result)
    expected = {e.labels: e for e in cmd.series}
    seen: set[Labels] = set()
    # Upstream: an instant eval without ``expect range vector`` has step 0 and no end time.
    end = cmd.end_ms if (cmd.is_range or cmd.range_vector) else -(2**62)
    for s in result.series:
        exp = expected.get(s.labels)
        if exp is None:
            raise Mismatch(f"unexpected metric {fmt_labels(s.labels)} in result")
        seen.add(s.labels)
        want_t: list[int] = []
        want_v: list[float] = []
        for i, v in enumerate(exp.values):
            t = cmd.start_ms + i * cmd.step_ms
            if t > end:
                raise Mismatch(
                    f"expected {len(exp.values)} points for {fmt_labels(s.labels)}, but query "
                    "time range cannot return this many points"
                )
            if v is not None:
                want_t.append(t)
                want_v.append(v)
        got_t = [int(t) for t in s.timestamps]
        got_v = [float(v) for v in s.values]
        if len(got_t) != len(want_t):
            raise Mismatch(
                f"expected {len(want_t)} points for {fmt_labels(s.labels)}, got "
                f"{list(zip(got_t, got_v, strict=True))}"
            )
        for i, (wt, wv) in enumerate(zip(want_t, want_v, strict=True)):
            if wt != got_t[i]:
                raise Mismatch(f"point {i} of {fmt_labels(s.labels)} at t={got_t[i]}, want {wt}")
            if not almost_equal(wv, got_v[i]):
                raise Mismatch(
                    f"point {i} (t={wt}) of {fmt_labels(s.labels)}: {got_v[i]}, want {wv}"
                )
    for labels in expected:
        if labels not in seen:
            raise Mismatch(f"expected metric {fmt_labels(labels)} not found")
