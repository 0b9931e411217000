"""lark callbacks that build the typed AST while the LALR parser reduces.

Checks that Prometheus makes in its grammar actions (offset/@ placement, unknown functions,
aggregation argument counts, literals, regexes, experimental syntax) are raised here as
``SemanticError`` in reduction order; type checks come later, in ``promql.checker``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace

from lark import Token, Transformer

from promql import lexing
from promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
    DurationExpr,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    PosRange,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)
from promql.operators import AGGREGATORS
from promql.syntax_errors import SemanticError
from promql.types import Matcher, MatchType, ValueType
from udfs.registry import get_function


@dataclass(frozen=True)
class ParserOptions:
    """Parser switches; ``experimental`` enables Prometheus' experimental syntax and functions."""

    experimental: bool = False


class _Source(threading.local):
    """The text being parsed: literal checks rescan it as Prometheus' lexer would."""

    text = ""


SOURCE = _Source()
_SET_OPS = frozenset({"and", "or", "unless"})
_MATCH_TYPES = {"=": MatchType.EQUAL, "!=": MatchType.NOT_EQUAL}
_MATCH_TYPES.update({"=~": MatchType.REGEX, "!~": MatchType.NOT_REGEX})
_INT64 = float(1 << 63)


@dataclass(frozen=True)
class _BinMod:
    return_bool: bool
    matching: VectorMatching
    fill: tuple[float | None, float | None]


def _pos(tok: Token) -> PosRange:
    return PosRange(tok.start_pos, tok.end_pos)


def _span(first: Expr | Token, last: Expr | Token) -> PosRange:
    start = first.start_pos if isinstance(first, Token) else first.pos.start
    end = last.end_pos if isinstance(last, Token) else last.pos.end
    return PosRange(start, end)


def _unquote(tok: Token) -> str:
    try:
        return lexing.unquote(str(tok))
    except lexing.LiteralError as exc:
        raise SemanticError(str(exc), _pos(tok)) from None


def _vector_selector(expr: Expr) -> VectorSelector | None:
    if isinstance(expr, VectorSelector):
        return expr
    if isinstance(expr, MatrixSelector):
        return expr.vector_selector
    return None


class Builder(Transformer):
    """lark callbacks: one method per grammar rule or alias, each returning an AST value."""

    def __init__(self, options: ParserOptions) -> None:
        super().__init__()
        self.options = options

    def _experimental(self, what: str, pos: PosRange) -> None:
        if not self.options.experimental:
            raise SemanticError(what, pos)

    # --- literals ---------------------------------------------------------------------------

    def number_literal(self, children: list) -> NumberLiteral:
        return self._number(children[0])

    def _number(self, tok: Token) -> NumberLiteral:
        problem = lexing.literal_problem(SOURCE.text, tok.start_pos, str(tok))
        if problem is not None:
            raise SemanticError(problem, PosRange(tok.start_pos, len(SOURCE.text)))
        try:
            if tok.type == "DURATION":
                ms = lexing.parse_duration_ms(str(tok))
                return NumberLiteral(ms / 1000.0, duration=True, pos=_pos(tok))
            return NumberLiteral(lexing.parse_number(str(tok)), pos=_pos(tok))
        except lexing.LiteralError as exc:
            raise SemanticError(str(exc), _pos(tok)) from None

    def string_literal(self, children: list) -> StringLiteral:
        return StringLiteral(_unquote(children[0]), pos=_pos(children[0]))

    def paren(self, children: list) -> ParenExpr:
        return ParenExpr(children[1], pos=_span(children[0], children[2]))

    def start(self, children: list) -> Expr:
        return children[0]

    def metric_selector(self, children: list) -> VectorSelector:
        return children[0]

    # --- operators --------------------------------------------------------------------------

    def signed(self, children: list) -> _Signed:
        return _Signed(tuple(children[:-1]), children[-1])

    def expr(self, children: list) -> Expr:
        if len(children) == 1:
            only = children[0]
            return self._apply_signs(only, only.base) if isinstance(only, _Signed) else only
        return _Climber(self, children).parse(0)

    def _apply_signs(self, signed: _Signed, expr: Expr) -> Expr:
        for sign in reversed(signed.signs):
            expr = self._unary(sign, expr)
        return expr

    def _unary(self, op: Token, expr: Expr) -> Expr:
        pos = PosRange(op.start_pos, expr.pos.end)
        if isinstance(expr, NumberLiteral):
            value = -expr.value if op == "-" else expr.value
            return NumberLiteral(value, duration=expr.duration, pos=pos)
        return UnaryExpr(str(op), expr, pos=pos)

    def _binary(self, lhs: Expr, op_tok: Token, mod: _BinMod, rhs: Expr) -> BinaryExpr:
        op = str(op_tok).lower()
        matching = mod.matching
        if op in _SET_OPS and matching.card == Cardinality.ONE_TO_ONE:
            matching = replace(matching, card=Cardinality.MANY_TO_MANY)
        pos = _span(lhs, rhs)
        if mod.fill != (None, None):
            self._experimental("binop fill modifiers are experimental and not enabled", pos)
            matching = replace(matching, fill_lhs=mod.fill[0], fill_rhs=mod.fill[1])
        vectors = lhs.type == ValueType.VECTOR and rhs.type == ValueType.VECTOR
        # Between a scalar and anything Prometheus drops the matching; keep it only when it
        # carries labels or fills, so that the checker can report the misuse.
        keep = vectors or matching.matching_labels or mod.fill != (None, None)
        matching_or_none = matching if keep else None
        return BinaryExpr(op, lhs, rhs, matching_or_none, mod.return_bool, pos=pos)

    def bin_mod(self, children: list) -> _BinMod:
        bool_tok, matching, fills = children
        vm = matching if matching is not None else VectorMatching()
        return _BinMod(bool_tok is not None, vm, fills or (None, None))

    def matching(self, children: list) -> VectorMatching:
        kind, labels, side = children
        card, include = Cardinality.ONE_TO_ONE, ()
        if side is not None:
            card, include = side
        on = kind.type == "ON"
        return VectorMatching(card, labels, on, include, has_matching=True)

    def group_side(self, children: list) -> tuple[Cardinality, tuple[str, ...]]:
        tok, labels = children
        card = Cardinality.MANY_TO_ONE if tok.type == "GROUP_LEFT" else Cardinality.ONE_TO_MANY
        return card, labels or ()

    def fill_spec(self, children: list) -> tuple[float | None, float | None]:
        left = right = None
        for kind, value in zip(children[0::2], children[1::2], strict=True):
            if kind is None:
                continue
            if kind.type in ("FILL", "FILL_LEFT"):
                left = value
            if kind.type in ("FILL", "FILL_RIGHT"):
                right = value
        return left, right

    def fill_value(self, children: list) -> float:
        _lp, sign, tok, _rp = children
        value = self._number(tok).value
        return -value if sign == "-" else value

    def grouping_labels(self, children: list) -> tuple[str, ...]:
        # Plain ``str`` in the tree: the marker class must not leak into result label sets.
        return tuple(str(c) for c in children if isinstance(c, _Label))

    def grouping_label(self, children: list) -> str:
        tok = children[0]
        name = _unquote(tok) if tok.type == "STRING" else str(tok)
        if name == "":
            raise SemanticError(
                f"invalid label name for grouping: {lexing.go_quote(name)}", _pos(tok)
            )
        return _Label(name)

    # --- selectors --------------------------------------------------------------------------

    def metric_identifier(self, children: list) -> Token:
        return children[0]

    def vector_selector(self, children: list) -> VectorSelector:
        if len(children) == 1:  # only braces
            matchers, pos = children[0]
            return VectorSelector(None, matchers, pos=pos)
        name_tok, braces = children
        matchers: tuple[Matcher, ...] = ()
        end = name_tok.end_pos
        if braces is not None:
            matchers, bpos = braces
            end = bpos.end
        name = str(name_tok)
        matchers = (*matchers, Matcher(MatchType.EQUAL, "__name__", name))
        return VectorSelector(name, matchers, pos=PosRange(name_tok.start_pos, end))

    def label_matchers(self, children: list) -> tuple[tuple[Matcher, ...], PosRange]:
        matchers = tuple(c for c in children if isinstance(c, Matcher))
        return matchers, _span(children[0], children[-1])

    def label_matcher(self, children: list) -> Matcher:
        name_tok, op_tok, value_tok = children
        name = _unquote(name_tok) if name_tok.type == "STRING" else str(name_tok)
        value = _unquote(value_tok)
        match_type = _MATCH_TYPES[str(op_tok)]
        if match_type in (MatchType.REGEX, MatchType.NOT_REGEX):
            _check_regex(value, _span(name_tok, value_tok))
        return Matcher(match_type, name, value)

    def name_matcher(self, children: list) -> Matcher:
        return Matcher(MatchType.EQUAL, "__name__", _unquote(children[0]))

    # --- calls and aggregations -------------------------------------------------------------

    def call_body(self, children: list) -> tuple[tuple[Expr, ...], Token]:
        args = tuple(c for c in children if isinstance(c, Expr))
        commas = [c for c in children if isinstance(c, Token) and c.type == "COMMA"]
        if commas and len(commas) >= len(args):
            raise SemanticError(
                "trailing commas not allowed in function call args", _pos(commas[-1])
            )
        return args, children[-1]

    def function_call(self, children: list) -> Call:
        name_tok, (args, rparen) = children
        name = str(name_tok)
        spec = get_function(name)
        pos = _span(name_tok, rparen)
        if spec is None:
            raise SemanticError(
                f"unknown function with name {lexing.go_quote(name)}", _pos(name_tok)
            )
        if spec.experimental:
            self._experimental(f"function {lexing.go_quote(name)} is not enabled", _pos(name_tok))
        return Call(name, args, return_type=spec.return_type, pos=pos)

    def aggregate_op(self, children: list) -> Token:
        return children[0]

    def aggregate_modifier(self, children: list) -> tuple[bool, tuple[str, ...]]:
        kind, labels = children
        return kind.type == "WITHOUT", labels

    def aggregate(self, children: list) -> AggregateExpr:
        op_tok = children[0]
        if isinstance(children[1], tuple) and isinstance(children[1][0], bool):
            modifier, (args, rparen) = children[1], children[2]
        else:
            (args, rparen), modifier = children[1], children[2]
        op = str(op_tok).lower()
        spec = AGGREGATORS[op]
        pos = _span(op_tok, rparen)
        if not args:
            raise SemanticError("no arguments for aggregate expression provided", pos)
        if spec.has_param and spec.experimental and not self.options.experimental:
            raise SemanticError(
                f"{op}() is experimental and must be enabled with "
                "--enable-feature=promql-experimental-functions",
                pos,
            )
        wanted = 2 if spec.has_param else 1
        if len(args) != wanted:
            raise SemanticError(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted}, got {len(args)}",
                pos,
            )
        without, grouping = modifier if modifier is not None else (False, ())
        param = args[0] if spec.has_param else None
        return AggregateExpr(
            op, args[-1], param, grouping, without, has_grouping=modifier is not None, pos=pos
        )

    # --- postfix modifiers ------------------------------------------------------------------

    def matrix(self, children: list) -> MatrixSelector:
        expr, lbr, dur, rbr = children
        err_pos = _span(lbr, rbr)
        vs = expr if isinstance(expr, VectorSelector) else None
        if vs is None:
            raise SemanticError("ranges only allowed for vector selectors", err_pos)
        if vs.offset_ms != 0 or vs.offset_expr is not None:
            raise SemanticError("no offset modifiers allowed before range", err_pos)
        if vs.timestamp_ms is not None or vs.start_or_end is not None:
            raise SemanticError("no @ modifiers allowed before range", err_pos)
        range_ms, range_expr = self._positive_duration(dur)
        return MatrixSelector(vs, range_ms, range_expr, pos=_span(expr, rbr))

    def subquery(self, children: list) -> SubqueryExpr:
        expr, _lbr, rng, _colon, step, rbr = children
        range_ms, range_expr = self._positive_duration(rng)
        step_ms, step_expr = (0, None) if step is None else self._positive_duration(step)
        return SubqueryExpr(
            expr, range_ms, step_ms, range_expr=range_expr, step_expr=step_expr,
            pos=_span(expr, rbr),
        )  # fmt: skip

    def _positive_duration(self, dur: Expr) -> tuple[int, DurationExpr | None]:
        if isinstance(dur, NumberLiteral):
            if lexing.duration_out_of_range(dur.value):
                raise SemanticError("duration out of range", dur.pos)
            if not dur.value > 0:
                raise SemanticError("duration must be greater than 0", dur.pos)
            return lexing.seconds_to_ms(dur.value), None
        return 0, dur

    def offset(self, children: list) -> Expr:
        expr, _kw, dur = children
        offset_ms, offset_expr = 0, None
        if isinstance(dur, NumberLiteral):
            if lexing.duration_out_of_range(dur.value):
                raise SemanticError("duration out of range", dur.pos)
            offset_ms = lexing.seconds_to_ms(dur.value)
        else:
            offset_expr = dur
        target = expr.vector_selector if isinstance(expr, MatrixSelector) else expr
        if not isinstance(target, (VectorSelector, SubqueryExpr)):
            raise SemanticError(
                "offset modifier must be preceded by an instant vector selector or range "
                "vector selector or a subquery",
                expr.pos,
            )
        if target.offset_ms != 0 or target.offset_expr is not None:
            raise SemanticError("offset may not be set multiple times", expr.pos)
        updated = replace(target, offset_ms=offset_ms, offset_expr=offset_expr)
        return self._rewrap(expr, updated, dur.pos.end)

    def at(self, children: list) -> Expr:
        expr, _at, value = children
        target = expr.vector_selector if isinstance(expr, MatrixSelector) else expr
        if not isinstance(target, (VectorSelector, SubqueryExpr)):
            raise SemanticError(
                "@ modifier must be preceded by an instant vector selector or range vector "
                "selector or a subquery",
                expr.pos,
            )
        if target.timestamp_ms is not None or target.start_or_end is not None:
            raise SemanticError("@ <timestamp> may not be set multiple times", expr.pos)
        kind, number, end = value
        if kind == "number":
            if math.isinf(number) or math.isnan(number) or abs(number) >= _INT64:
                raise SemanticError(
                    f"timestamp out of bounds for @ modifier: {_go_f(number)}", expr.pos
                )
            updated = replace(target, timestamp_ms=_round_ms(number))
        else:
            updated = replace(target, start_or_end=kind)
        return self._rewrap(expr, updated, end)

    def at_value(self, children: list) -> tuple[str, float, int]:
        if children[0] is not None and children[0].type in ("START", "END"):
            return children[0].lower(), 0.0, children[-1].end_pos
        sign, tok = children
        value = self._number(tok).value
        return "number", (-value if sign == "-" else value), tok.end_pos

    def anchored(self, children: list) -> Expr:
        return self._extended(children[0], children[1], "anchored")

    def smoothed(self, children: list) -> Expr:
        return self._extended(children[0], children[1], "smoothed")

    def _extended(self, expr: Expr, tok: Token, which: str) -> Expr:
        self._experimental(f"{which} modifier is experimental and not enabled", expr.pos)
        other = "smoothed" if which == "anchored" else "anchored"
        if isinstance(expr, SubqueryExpr):
            raise SemanticError(f"{which} modifier is not supported for subqueries", expr.pos)
        target = _vector_selector(expr)
        if target is None:
            raise SemanticError(f"{which} modifier not implemented", expr.pos)
        if getattr(target, other):
            raise SemanticError("anchored and smoothed modifiers cannot be used together", expr.pos)
        return self._rewrap(expr, replace(target, **{which: True}), tok.end_pos)

    @staticmethod
    def _rewrap(expr: Expr, updated: Expr, end: int) -> Expr:
        if isinstance(expr, MatrixSelector):
            return replace(expr, vector_selector=updated, pos=PosRange(expr.pos.start, end))
        return replace(updated, pos=PosRange(expr.pos.start, end))

    # --- duration expressions (experimental beyond a single literal) ------------------------

    def dur_number(self, children: list) -> NumberLiteral:
        return self._number(children[0])

    def dur_unary_op(self, children: list) -> Expr:
        op, inner = children
        pos = PosRange(op.start_pos, inner.pos.end)
        if isinstance(inner, NumberLiteral):
            value = -inner.value if op == "-" else inner.value
            return NumberLiteral(value, duration=inner.duration, pos=pos)
        if op == "+":
            return replace(inner, pos=pos)
        return DurationExpr("-", None, inner, pos=pos)

    def dur_binary(self, children: list) -> DurationExpr:
        lhs, op, rhs = children
        pos = _span(lhs, rhs)
        self._experimental("experimental duration expression is not enabled", lhs.pos)
        if op in ("/", "%") and isinstance(rhs, NumberLiteral) and rhs.value == 0:
            word = "division" if op == "/" else "modulo"
            raise SemanticError(f"{word} by zero", _pos(op))
        return DurationExpr(str(op), lhs, rhs, pos=pos)

    def dur_call(self, children: list) -> DurationExpr:
        name = children[0].lower()
        pos = _span(children[0], children[-1])
        self._experimental("experimental duration expression is not enabled", pos)
        if name in ("step", "range"):
            return DurationExpr(name, None, None, pos=pos)
        return DurationExpr(name, children[2], children[4], pos=pos)

    def dur_paren(self, children: list) -> DurationExpr:
        pos = _span(children[0], children[2])
        self._experimental("experimental duration expression is not enabled", pos)
        return DurationExpr("()", None, children[1], pos=pos)


@dataclass(frozen=True)
class _Signed:
    """An operand with prefix signs; the signs apply after any ``^`` chain that follows."""

    signs: tuple[Token, ...]
    base: Expr


# Binding power of each binary operator (Prometheus' yacc precedence); ^ is right-associative.
_PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3}
_PRECEDENCE |= {">=": 3, "</": 3, ">/": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5}
_POW = 7
_PRECEDENCE["^"] = _POW


class _Climber:
    """Precedence climbing over ``operand (op modifier operand)*`` as lark hands it over.

    Unary signs bind looser than ``^`` and tighter than ``*``: ``-a ^ b`` is ``-(a ^ b)``
    and ``-a * b`` is ``(-a) * b``, as in Prometheus' grammar (``unary_expr %prec MUL``).
    """

    def __init__(self, builder: Builder, children: list) -> None:
        self.builder = builder
        self.operands = children[0::3]
        self.ops = children[1::3]
        self.mods = children[2::3]
        self.at = 0  # index of the next operator (operand ``at`` precedes it)

    def parse(self, min_prec: int) -> Expr:
        lhs = self._operand()
        while self.at < len(self.ops):
            index = self.at
            prec = _PRECEDENCE[self.ops[index].lower()]
            if prec < min_prec:
                break
            self.at += 1
            rhs = self.parse(prec if prec == _POW else prec + 1)
            lhs = self.builder._binary(lhs, self.ops[index], self.mods[index], rhs)
        return lhs

    def _operand(self) -> Expr:
        item = self.operands[self.at]
        if not isinstance(item, _Signed):
            return item
        expr = item.base
        while self.at < len(self.ops) and self.ops[self.at] == "^":
            index = self.at
            self.at += 1
            rhs = self.parse(_POW)
            expr = self.builder._binary(expr, self.ops[index], self.mods[index], rhs)
        return self.builder._apply_signs(item, expr)


class _Label(str):
    """A grouping label name (distinguishes labels from tokens among rule children)."""


def _check_regex(value: str, pos: PosRange) -> None:
    message = lexing.regex_error(value)
    if message is not None:
        raise SemanticError(message, pos)


def _round_ms(seconds: float) -> int:
    """Go's ``timestamp.FromFloatSeconds``: ``int64(math.Round(s * 1000))``."""
    return lexing.go_round(seconds * 1000.0)


def _go_f(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:f}"
