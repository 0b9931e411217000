"""PromQL text → typed AST: lark LALR parse with an inline transformer, then the type checker.

The transformer (``promql.builder``) builds AST nodes while lark reduces, so there is no
intermediate parse tree. Errors Prometheus' grammar actions raise are raised as they occur;
type errors are checked afterwards by ``promql.checker`` only when the text parsed, as
Prometheus does. The lark parser is built once per process per option set (tables cached on
disk).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import lark
from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from promql import checker
from promql.ast import Expr, PosRange
from promql.builder import SOURCE, Builder, ParserOptions
from promql.errors import ParseError
from promql.syntax_errors import SemanticError, translate
from promql.types import Matcher

__all__ = ["ParserOptions", "parse", "parse_metric_selector"]

_GRAMMAR = Path(__file__).with_name("grammar.lark")

_KEYWORD_TYPES = {
    name.lower(): name
    for name in [
        "ATAN2",
        "SUM",
        "AVG",
        "COUNT",
        "MIN",
        "MAX",
        "GROUP",
        "STDDEV",
        "STDVAR",
        "TOPK",
        "BOTTOMK",
        "COUNT_VALUES",
        "QUANTILE",
        "LIMITK",
        "LIMIT_RATIO",
        "OFFSET",
        "SMOOTHED",
        "ANCHORED",
        "BY",
        "WITHOUT",
        "ON",
        "IGNORING",
        "GROUP_LEFT",
        "GROUP_RIGHT",
        "BOOL",
        "START",
        "END",
        "STEP",
        "RANGE",
        "MAX_OF",
        "MIN_OF",
    ]
} | {"and": "LAND", "or": "LOR", "unless": "LUNLESS", "inf": "NUMBER", "nan": "NUMBER"}


def _keyword_or_identifier(tok: Token) -> Token:
    """Keywords are keywords everywhere outside braces, as in Prometheus' (context-free) lexer.

    The contextual lexer would otherwise read ``group_left`` as an identifier where the grammar
    does not expect the keyword, accepting text Prometheus rejects.
    """
    kind = _KEYWORD_TYPES.get(tok.lower())
    if kind is not None:
        tok.type = kind
    return tok


_LOCK = threading.Lock()
_PARSERS: dict[ParserOptions, Lark] = {}


def _cache_file() -> str | bool:
    """Where lark keeps the LALR tables (~0.4 s to build): a per-user file, never /tmp.

    A pickle in a shared temp directory could be planted by another user; the user's own cache
    directory cannot. The name carries the grammar and lark version, so edits invalidate it.
    """
    digest = hashlib.sha256(_GRAMMAR.read_bytes() + lark.__version__.encode()).hexdigest()
    directory = Path.home() / ".cache" / "tidemark"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(directory / f"promql-grammar-{digest[:16]}.lark")


def _lark(options: ParserOptions) -> Lark:
    parser = _PARSERS.get(options)
    if parser is None:
        with _LOCK:
            parser = _PARSERS.get(options)
            if parser is None:
                parser = Lark(
                    _GRAMMAR.read_text(),
                    parser="lalr",
                    lexer="contextual",
                    maybe_placeholders=True,
                    start=["start", "metric_selector"],
                    transformer=Builder(options),
                    lexer_callbacks={"IDENTIFIER": _keyword_or_identifier},
                    cache=_cache_file(),
                )
                _PARSERS[options] = parser
    return parser


def parse(text: str, options: ParserOptions | None = None) -> Expr:
    """Parse PromQL ``text`` into a typed AST; raises ``ParseError`` with Prometheus' wording."""
    opts = options or ParserOptions()
    if not text.strip() or _only_comments(text):
        raise ParseError("no expression found in input", PosRange(0, 0), text)
    SOURCE.text = text
    try:
        expr = _lark(opts).parse(text, start="start")
    except SemanticError as exc:
        raise ParseError(exc.message, exc.pos, text) from None
    except UnexpectedInput as exc:
        message, pos = translate(text, exc)
        raise ParseError(message, pos, text) from None
    try:
        checker.check(expr, text)
    except SemanticError as exc:
        raise ParseError(exc.message, exc.pos, text) from None
    return expr


def parse_metric_selector(text: str) -> tuple[Matcher, ...]:
    """Matchers of a lone series selector (``match[]``), as Prometheus' ``ParseMetricSelector``.

    Only a vector selector is accepted (no offset, @, range or operator). As upstream, no type
    check runs here: callers decide whether an all-empty selector is acceptable.
    """
    SOURCE.text = text
    try:
        selector = _lark(ParserOptions()).parse(text, start="metric_selector")
    except SemanticError as exc:
        raise ParseError(exc.message, exc.pos, text) from None
    except UnexpectedInput as exc:
        message, pos = translate(text, exc)
        raise ParseError(message, pos, text) from None
    return selector.matchers


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
