"""Property test: a random well-typed canonical AST survives ``format`` then ``parse`` unchanged.

The generator builds only trees the parser itself can produce: parentheses wherever operator
precedence demands them, matchers in printed order with the metric name last, folded negative
literals, ``by ()`` only with ``without``. Anything else would be a different tree with the
same text, not a printer bug.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promql import format, parse
from promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)
from promql.operators import AGGREGATORS
from promql.printer import format_matcher
from promql.types import Matcher, MatchType, ValueType
from udfs.registry import FUNCTIONS

S, V, M, STR = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX, ValueType.STRING
_NOT_METRIC_NAMES = {"on", "ignoring", "group_left", "group_right", "bool", "inf", "nan"}
_PREC = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3}
_PREC |= {"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 7}
_UNARY_PREC = 6
_ATOM_PREC = 9
_ARITH = ("+", "-", "*", "/", "%", "^", "atan2")
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")
_SET = ("and", "or", "unless")
_REGEXES = ("", ".*", ".+", "a|b", "[0-9]+", "x.*y", "(?i)abc")
_STABLE_FUNCS = sorted((f for f in FUNCTIONS.values() if not f.experimental), key=lambda f: f.name)
_STABLE_AGGS = sorted(name for name, spec in AGGREGATORS.items() if not spec.experimental)

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,7}", fullmatch=True).filter(
    lambda s: s.lower() not in _NOT_METRIC_NAMES
)
label_names = st.one_of(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,6}", fullmatch=True), st.text(max_size=4)
).filter(lambda s: s != "__name__")
grouping_names = label_names.filter(bool)
texts = st.text(max_size=6)
# Prometheus turns duration literals into float seconds and back into nanoseconds, so a
# millisecond part survives only below ~26 days; longer durations are drawn in whole seconds.
durations_ms = st.one_of(
    st.integers(min_value=1, max_value=20 * 86_400_000),
    st.integers(min_value=1, max_value=10**8).map(lambda s: s * 1000),
)
offsets_ms = st.one_of(st.just(0), durations_ms, durations_ms.map(lambda ms: -ms))


def _prec(expr: Expr) -> int:
    if isinstance(expr, BinaryExpr):
        return _PREC[expr.op]
    if isinstance(expr, UnaryExpr):
        return _UNARY_PREC
    if isinstance(expr, NumberLiteral) and format(expr)[0] in "+-":
        return _UNARY_PREC  # printed with a sign (-1, +Inf): re-read as a unary expression
    return _ATOM_PREC


def _paren_if(expr: Expr, needed: bool) -> Expr:
    return ParenExpr(expr) if needed else expr


@st.composite
def matchers(draw, with_name: bool) -> tuple[Matcher, ...]:
    found = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(list(MatchType)))
        regex = kind in (MatchType.REGEX, MatchType.NOT_REGEX)
        value = draw(st.sampled_from(_REGEXES)) if regex else draw(texts)
        found.append(Matcher(kind, draw(label_names), value))
    if not with_name:  # a selector without a name needs one matcher that rejects ""
        found.append(Matcher(MatchType.EQUAL, draw(label_names), draw(texts.filter(bool))))
    return tuple(sorted(found, key=format_matcher))


@st.composite
def vector_selectors(draw, modifiers: bool = True) -> VectorSelector:
    name = draw(st.one_of(st.none(), metric_names))
    found = draw(matchers(with_name=name is not None))
    if name is not None:
        found = (*found, Matcher(MatchType.EQUAL, "__name__", name))
    offset = draw(offsets_ms) if modifiers else 0
    at = draw(st.sampled_from(["none", "ts", "start", "end"])) if modifiers else "none"
    timestamp = draw(st.integers(-(10**12), 10**12)) if at == "ts" else None
    start_or_end = at if at in ("start", "end") else None
    return VectorSelector(name, found, offset, timestamp, start_or_end)


def number_literals() -> st.SearchStrategy[Expr]:
    plain = st.floats(allow_nan=True, allow_infinity=True).map(NumberLiteral)
    seconds = st.integers(-(10**6), 10**6).map(lambda s: NumberLiteral(float(s), duration=True))
    return st.one_of(plain, seconds)


@st.composite
def binaries(draw, lhs: Expr, rhs: Expr) -> Expr:
    vectors = lhs.type == V and rhs.type == V
    ops = list(_ARITH + _COMPARE) + (list(_SET) if vectors else [])
    op = draw(st.sampled_from(ops))
    matching = None
    if vectors:
        matching = draw(vector_matchings(set_op=op in _SET))
    both_scalar = lhs.type == S and rhs.type == S
    return_bool = op in _COMPARE and (both_scalar or draw(st.booleans()))
    prec = _PREC[op]
    right_assoc = op == "^"
    lhs = _paren_if(lhs, _prec(lhs) < prec or (_prec(lhs) == prec and right_assoc))
    rhs_prec = _prec(rhs)
    rhs_needs = rhs_prec != _UNARY_PREC and (
        rhs_prec < prec or (rhs_prec == prec and not right_assoc)
    )
    return BinaryExpr(op, lhs, _paren_if(rhs, rhs_needs), matching, return_bool)


@st.composite
def vector_matchings(draw, set_op: bool) -> VectorMatching:
    labels = tuple(draw(st.lists(grouping_names, max_size=3)))
    on = draw(st.booleans())
    grouped = not set_op and draw(st.booleans())
    card = Cardinality.MANY_TO_MANY if set_op else Cardinality.ONE_TO_ONE
    include: tuple[str, ...] = ()
    if grouped:
        card = draw(st.sampled_from([Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY]))
        include = tuple(
            draw(st.lists(grouping_names.filter(lambda n: not on or n not in labels), max_size=2))
        )
    return VectorMatching(card, labels, on, include, has_matching=on or bool(labels) or grouped)


def _unary(expr: Expr) -> Expr:
    # "-1" folds into a literal, and the operand of unary minus binds like "^".
    wrap = isinstance(expr, NumberLiteral) or _prec(expr) < _PREC["^"]
    if isinstance(expr, UnaryExpr):
        wrap = False
    return UnaryExpr("-", _paren_if(expr, wrap))


def _postfix_target(expr: Expr) -> Expr:
    return _paren_if(expr, _prec(expr) < _ATOM_PREC)


@st.composite
def calls(draw, want: ValueType, depth: int) -> Expr:
    candidates = [f for f in _STABLE_FUNCS if f.return_type == want]
    spec = draw(st.sampled_from(candidates))
    count = spec.min_args
    if spec.max_args is None:
        count += draw(st.integers(0, 2))
    elif spec.max_args > count:
        count = draw(st.integers(count, spec.max_args))
    args = tuple(draw(exprs(spec.arg_type(i), depth - 1)) for i in range(count))
    return Call(spec.name, args, return_type=spec.return_type)


@st.composite
def aggregates(draw, depth: int) -> Expr:
    op = draw(st.sampled_from(_STABLE_AGGS))
    spec = AGGREGATORS[op]
    param = draw(exprs(spec.param_type, depth - 1)) if spec.param_type is not None else None
    without = draw(st.booleans())
    grouping = tuple(draw(st.lists(grouping_names, max_size=3)))
    inner = draw(exprs(V, depth - 1))
    return AggregateExpr(
        op, inner, param, grouping, without, has_grouping=without or bool(grouping)
    )


@st.composite
def subqueries(draw, depth: int) -> Expr:
    inner = _postfix_target(draw(exprs(V, depth - 1)))
    at = draw(st.sampled_from(["none", "ts", "start", "end"]))
    return SubqueryExpr(
        inner,
        draw(durations_ms),
        draw(st.one_of(st.just(0), durations_ms)),
        offset_ms=draw(offsets_ms),
        timestamp_ms=draw(st.integers(-(10**12), 10**12)) if at == "ts" else None,
        start_or_end=at if at in ("start", "end") else None,
    )


def exprs(want: ValueType, depth: int) -> st.SearchStrategy[Expr]:
    if want == STR:
        return texts.map(StringLiteral)
    if want == M:
        matrix = st.builds(MatrixSelector, vector_selectors(), durations_ms)
        return st.one_of(matrix, subqueries(depth)) if depth > 0 else matrix
    leaves = number_literals() if want == S else vector_selectors()
    if depth <= 0:
        return leaves
    other = st.sampled_from([S, V]) if want == V else st.just(S)
    sides = st.tuples(exprs(want, depth - 1), other.flatmap(lambda t: exprs(t, depth - 1)))
    binary = sides.flatmap(lambda p: st.one_of(binaries(p[0], p[1]), binaries(p[1], p[0])))
    compound = [
        binary,
        exprs(want, depth - 1).map(_unary),
        exprs(want, depth - 1).map(ParenExpr),
        calls(want, depth),
    ]
    if want == V:
        compound.append(aggregates(depth))
    return st.one_of(leaves, *compound)


any_expr = st.sampled_from([S, V, M, STR]).flatmap(lambda t: exprs(t, 3))


# derandomize: CI stays deterministic; widen locally with more examples and a random seed.
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(any_expr)
def test_formatted_ast_parses_back_to_the_same_ast(expr: Expr) -> None:
    text = format(expr)
    assert parse(text) == expr, text


@settings(max_examples=100, deadline=None, derandomize=True)
@given(any_expr)
def test_formatting_is_idempotent(expr: Expr) -> None:
    text = format(expr)
    assert format(parse(text)) == text
