"""Typed PromQL syntax tree: frozen dataclasses mirroring Prometheus' ``parser/ast.go``.

Positions (``pos``) are excluded from equality so that ``parse(format(e)) == e`` holds. Durations
and timestamps are integer milliseconds, as in Prometheus. Every node has a ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from promql.types import Matcher, ValueType


@dataclass(frozen=True)
class PosRange:
    """Half-open character range ``[start, end)`` of a node in the query text."""

    start: int
    end: int


NO_POS = PosRange(0, 0)


class Expr:
    """Base class of all expression nodes."""

    pos: PosRange

    @property
    def type(self) -> ValueType:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True)
class DurationExpr(Expr):
    """Experimental duration arithmetic (``[5m+1m]``, ``step()``, ``range()``...).

    ``op`` is one of ``+ - * / % ^`` for binary forms, ``step``/``range`` for the functions,
    ``min_of``/``max_of`` for the two-argument functions, ``-`` with only ``rhs`` for negation and
    ``()`` for parentheses; leaves are ``NumberLiteral`` (seconds) or durations parsed as such.
    """

    op: str
    lhs: Expr | None
    rhs: Expr | None
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.SCALAR

    def children(self) -> tuple[Expr, ...]:
        return tuple(c for c in (self.lhs, self.rhs) if c is not None)


@dataclass(frozen=True)
class NumberLiteral(Expr):
    value: float
    # True when written as a duration (``5m`` used as a number); the printer keeps that form.
    duration: bool = field(default=False, compare=False)
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumberLiteral):
            return NotImplemented
        # NaN literals compare equal so that round-trip equality holds.
        return self.value == other.value or (
            self.value != self.value and other.value != other.value
        )

    def __hash__(self) -> int:
        return hash(("NumberLiteral", repr(self.value)))

    @property
    def type(self) -> ValueType:
        return ValueType.SCALAR


@dataclass(frozen=True)
class StringLiteral(Expr):
    value: str
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.STRING


@dataclass(frozen=True)
class VectorSelector(Expr):
    """``name{matchers} offset d @ t``. ``name`` is also present as an ``__name__`` matcher."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    timestamp_ms: int | None = None  # ``@ <t>``
    start_or_end: str | None = None  # ``@ start()`` / ``@ end()``
    offset_expr: DurationExpr | None = None  # experimental duration expression offset
    anchored: bool = False  # experimental
    smoothed: bool = False  # experimental
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR


@dataclass(frozen=True)
class MatrixSelector(Expr):
    """``selector[range]``; offset and ``@`` live on the inner vector selector, as upstream."""

    vector_selector: VectorSelector
    range_ms: int
    range_expr: DurationExpr | None = None  # experimental
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX

    def children(self) -> tuple[Expr, ...]:
        return (self.vector_selector,)


@dataclass(frozen=True)
class SubqueryExpr(Expr):
    """``expr[range:step] offset d @ t``; ``step_ms == 0`` means the default evaluation interval."""

    expr: Expr
    range_ms: int
    step_ms: int = 0
    offset_ms: int = 0
    timestamp_ms: int | None = None
    start_or_end: str | None = None
    range_expr: DurationExpr | None = None
    step_expr: DurationExpr | None = None
    offset_expr: DurationExpr | None = None
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    return_type: ValueType = field(default=ValueType.VECTOR, compare=False)
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return self.return_type

    def children(self) -> tuple[Expr, ...]:
        return self.args


@dataclass(frozen=True)
class AggregateExpr(Expr):
    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    # ``sum by () (x)`` and ``sum(x)`` print differently; keep whether a clause was written.
    has_grouping: bool = False
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR

    def children(self) -> tuple[Expr, ...]:
        return (self.param, self.expr) if self.param is not None else (self.expr,)


class Cardinality(StrEnum):
    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"
    ONE_TO_MANY = "one-to-many"
    MANY_TO_MANY = "many-to-many"


@dataclass(frozen=True)
class VectorMatching:
    card: Cardinality = Cardinality.ONE_TO_ONE
    matching_labels: tuple[str, ...] = ()
    on: bool = False  # ``on(...)`` when True, ``ignoring(...)`` when False
    include: tuple[str, ...] = ()  # ``group_left(...)`` / ``group_right(...)`` labels
    # ``x + on() y`` differs from ``x + y``; keep whether on/ignoring was written.
    has_matching: bool = False
    # Experimental ``fill(v)`` / ``fill_left(v)`` / ``fill_right(v)``: the value used for a
    # missing series on that side; ``None`` when not filled.
    fill_lhs: float | None = None
    fill_rhs: float | None = None


@dataclass(frozen=True)
class BinaryExpr(Expr):
    op: str  # + - * / % ^ atan2 == != > < >= <= and or unless
    lhs: Expr
    rhs: Expr
    matching: VectorMatching | None = None  # None when either side is a scalar
    return_bool: bool = False
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        if self.lhs.type == ValueType.SCALAR and self.rhs.type == ValueType.SCALAR:
            return ValueType.SCALAR
        return ValueType.VECTOR

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs, self.rhs)


@dataclass(frozen=True)
class UnaryExpr(Expr):
    op: str  # "-" or "+"
    expr: Expr
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


@dataclass(frozen=True)
class ParenExpr(Expr):
    expr: Expr
    pos: PosRange = field(default=NO_POS, compare=False, repr=False)

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


def walk(expr: Expr):
    """Pre-order traversal of an expression tree."""
    yield expr
    for child in expr.children():
        yield from walk(child)
