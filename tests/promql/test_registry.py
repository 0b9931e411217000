"""The function registry: Prometheus 3's functions with their signatures, usable by the parser."""

from __future__ import annotations

import pytest

from promql import ParseError, ParserOptions, parse
from promql.types import ValueType
from udfs.registry import FUNCTIONS, FunctionSpec, get_function

_EXAMPLE_ARGS = {
    ValueType.SCALAR: "1",
    ValueType.VECTOR: "up",
    ValueType.MATRIX: "up[5m]",
    ValueType.STRING: '"a"',
}


def test_registry_covers_prometheus_3_functions() -> None:
    assert len(FUNCTIONS) >= 90
    for name in ("rate", "histogram_quantile", "label_replace", "sort", "pi", "vector"):
        assert name in FUNCTIONS
    for name in ("ts_of_max_over_time", "mad_over_time", "sort_by_label", "info"):
        assert FUNCTIONS[name].experimental
    assert not FUNCTIONS["first_over_time"].experimental
    assert get_function("no_such_function") is None


def test_variadic_counts_follow_prometheus() -> None:
    assert (FUNCTIONS["round"].min_args, FUNCTIONS["round"].max_args) == (1, 2)
    assert (FUNCTIONS["label_join"].min_args, FUNCTIONS["label_join"].max_args) == (3, None)
    assert FUNCTIONS["label_join"].arg_type(7) == ValueType.STRING
    assert FUNCTIONS["time"].max_args == 0


@pytest.mark.parametrize("spec", list(FUNCTIONS.values()), ids=lambda s: s.name)
def test_every_function_type_checks_with_its_declared_signature(spec: FunctionSpec) -> None:
    count = spec.min_args if spec.max_args is None else spec.max_args
    args = ", ".join(_EXAMPLE_ARGS[spec.arg_type(i)] for i in range(count))
    if spec.name == "info" and count > 1:
        args = 'up, {job="x"}'
    expr = parse(f"{spec.name}({args})", ParserOptions(experimental=True))
    assert expr.type == spec.return_type


@pytest.mark.parametrize(
    "spec", [s for s in FUNCTIONS.values() if s.experimental], ids=lambda s: s.name
)
def test_experimental_functions_need_the_experimental_option(spec: FunctionSpec) -> None:
    with pytest.raises(ParseError, match="is not enabled"):
        parse(f"{spec.name}()")
