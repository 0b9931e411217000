"""Turning lark's syntax errors into Prometheus' parse error wording and positions.

Prometheus reports lexer errors (``unclosed left parenthesis``, ``unexpected character inside
braces: '*'``, ``bad number or duration syntax: "5mm"``) and grammar errors
(``unexpected <by>``, ``unexpected identifier "b" in label matching, expected string``). lark
only tells us the offending character or token and the terminals it expected; the lexical
context (open parentheses, braces, brackets) is recovered by rescanning the text before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from promql import lexing
from promql.ast import PosRange


class SemanticError(Exception):
    """An error raised while building or checking the AST; ``message`` is Prometheus' text."""

    def __init__(self, message: str, pos: PosRange) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


_KEYWORDS = frozenset(
    [
        "BOOL",
        "BY",
        "GROUP_LEFT",
        "GROUP_RIGHT",
        "FILL",
        "FILL_LEFT",
        "FILL_RIGHT",
        "IGNORING",
        "OFFSET",
        "SMOOTHED",
        "ANCHORED",
        "ON",
        "WITHOUT",
    ]
)
_OPERATORS = frozenset(
    [
        "ADD",
        "DIV",
        "EQLC",
        "EQL_REGEX",
        "GTE",
        "GTR",
        "LAND",
        "LOR",
        "LSS",
        "LTE",
        "LUNLESS",
        "MOD",
        "MUL",
        "NEQ",
        "NEQ_REGEX",
        "POW",
        "SUB",
        "AT",
        "ATAN2",
    ]
)
_AGGREGATORS = frozenset(
    [
        "AVG",
        "BOTTOMK",
        "COUNT",
        "COUNT_VALUES",
        "GROUP",
        "MAX",
        "MIN",
        "QUANTILE",
        "STDDEV",
        "STDVAR",
        "SUM",
        "TOPK",
        "LIMITK",
        "LIMIT_RATIO",
    ]
)
_VALUE_KINDS = {
    "IDENTIFIER": "identifier",
    "LABEL_NAME": "identifier",
    "METRIC_IDENTIFIER": "metric identifier",
    "STRING": "string",
    "NUMBER": "number",
    "DURATION": "duration",
}
_MATCH_OPS = frozenset({"EQL", "NEQ", "EQL_REGEX", "NEQ_REGEX"})


@dataclass
class _Context:
    """Lexical state just before an offset: what Prometheus' lexer would have open."""

    paren_depth: int = 0
    brace_open: bool = False
    bracket_open: bool = False


def _scan(text: str, end: int) -> _Context:
    ctx = _Context()
    i = 0
    while i < end:
        ch = text[i]
        if ch in "\"'`":
            close = text.find(ch, i + 1) if ch == "`" else _string_end(text, i)
            if close < 0:
                return ctx
            i = close + 1
            continue
        if ch == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if ch == "(":
            ctx.paren_depth += 1
        elif ch == ")":
            ctx.paren_depth -= 1
        elif ch == "{":
            ctx.brace_open = True
        elif ch == "}":
            ctx.brace_open = False
        elif ch == "[":
            ctx.bracket_open = True
        elif ch == "]":
            ctx.bracket_open = False
        i += 1
    return ctx


def _string_end(text: str, start: int) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i
        if ch == "\n":
            return -1
        i += 1
    return -1


def token_desc(tok: Token) -> str:
    """Prometheus' ``Item.desc()`` of a token, as used in ``unexpected ...`` messages."""
    value = str(tok)
    if tok.type in _KEYWORDS:
        return f"<{value}>"
    if tok.type in _OPERATORS:
        return f"<op:{value}>"
    if tok.type in _AGGREGATORS:
        return f"<aggr:{value}>"
    kind = _VALUE_KINDS.get(tok.type)
    if kind in ("identifier", "metric identifier"):
        return f"{kind} {lexing.go_quote(value)}"
    if len(value) > 10:
        quoted = lexing.go_quote_truncated(value, 10) + "..."
    else:
        quoted = lexing.go_quote(value)
    return f"{kind} {quoted}" if kind else quoted


def translate(text: str, exc: UnexpectedInput) -> tuple[str, PosRange]:
    """Prometheus' message and position for a lark syntax error."""
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(text, exc.pos_in_stream)
    assert isinstance(exc, UnexpectedToken)
    tok: Token = exc.token
    if tok.type == "$END":
        return _unexpected_end(text, set(exc.expected))
    start = tok.start_pos
    ctx = _scan(text, start)
    pos = PosRange(start, tok.end_pos)
    if tok.type == "RPAREN" and ctx.paren_depth <= 0:
        return "unexpected right parenthesis ')'", PosRange(tok.end_pos, len(text))
    if tok.type == "RBRACE" and not ctx.brace_open:
        return "unexpected character: '}'", PosRange(start, len(text))
    if tok.type == "RBRACKET" and not ctx.bracket_open:
        return "unexpected right bracket ']'", PosRange(tok.end_pos, len(text))
    if ctx.bracket_open:
        found = _bracket_error(text, tok)
        if found is not None:
            return found
    if tok.type == "LBRACE" and ctx.brace_open:
        return "unexpected left brace '{'", PosRange(tok.end_pos, len(text))
    if tok.type in ("EQL_REGEX", "NEQ_REGEX") and not ctx.brace_open:
        return f"unexpected character after '{text[start]}': '~'", PosRange(start, len(text))
    if ctx.brace_open and tok.type not in _BRACE_TOKENS:
        if tok.type in _KEYWORDS or tok.type in _AGGREGATORS or tok.type in _WORD_OPERATORS:
            tok = Token("IDENTIFIER", str(tok), start_pos=tok.start_pos, end_pos=tok.end_pos)
        else:
            return _bad_character(text, start)
    context = _context_phrase(text, start, set(exc.expected), ctx)
    return f"unexpected {token_desc(tok)}{context}", pos


_BRACE_TOKENS = frozenset(
    [
        "IDENTIFIER",
        "LABEL_NAME",
        "STRING",
        "EQL",
        "NEQ",
        "EQL_REGEX",
        "NEQ_REGEX",
        "COMMA",
        "RBRACE",
        "LBRACE",
    ]
)
_WORD_OPERATORS = frozenset({"LAND", "LOR", "LUNLESS", "ATAN2"})
_DURATION_TOKENS = frozenset(
    [
        "NUMBER",
        "DURATION",
        "ADD",
        "SUB",
        "MUL",
        "DIV",
        "MOD",
        "POW",
        "LPAREN",
        "RPAREN",
        "COLON",
        "RBRACKET",
        "COMMA",
        "STEP",
        "RANGE",
        "MIN_OF",
        "MAX_OF",
    ]
)


def _duration_mode(text: str, pos: int) -> bool:
    """Whether Prometheus' lexer is still in its duration-expression state at ``pos``.

    After ``[`` it lexes with ``lexDurationExpr`` until the first number or duration, and with
    the ordinary statement lexer from then on until ``]``.
    """
    segment = text[text.rfind("[", 0, pos) + 1 : pos]
    return not any(ch.isdigit() for ch in segment)


def _bracket_error(text: str, tok: Token) -> tuple[str, PosRange] | None:
    """Lexer errors Prometheus reports for a token inside ``[...]``, else ``None``."""
    start = tok.start_pos
    first = str(tok)[:1]
    segment = text[text.rfind("[", 0, start) + 1 : start]
    if _duration_mode(text, start):
        if first == ":":
            return (
                "unexpected colon before duration in duration expression",
                PosRange(start + 1, len(text)),
            )
        return None if tok.type in _DURATION_TOKENS else _bad_character(text, start)
    if tok.type == "LBRACKET":
        return "unexpected left bracket '['", PosRange(tok.end_pos, len(text))
    if first == ":" and ":" in segment:
        return "unexpected colon ':'", PosRange(start, len(text))
    word = first.isalpha() or first in "_:"
    if word and tok.type not in ("STEP", "RANGE", "MIN_OF", "MAX_OF"):
        return _bad_character(text, start)
    if tok.type == "RBRACE":
        return _bad_character(text, start)
    return None


def _previous_token_text(text: str, start: int) -> str:
    before = text[:start].rstrip()
    if not before:
        return ""
    if before[-1] in "[:@(,":
        return before[-1]
    word_start = len(before)
    while word_start > 0 and (lexing.is_alnum(before[word_start - 1])):
        word_start -= 1
    return before[word_start:].lower()


def _context_phrase(text: str, start: int, expected: set[str], ctx: _Context) -> str:
    prev = _previous_token_text(text, start)
    if ctx.brace_open:
        if expected == {"STRING"}:
            return " in label matching, expected string"
        if expected <= _MATCH_OPS:
            return " in label matching, expected label matching operator"
        # After a complete matcher (or a bare quoted name) Prometheus has reduced the list.
        if {"COMMA", "RBRACE"} <= expected:
            return ' in label matching, expected "," or "}"'
        return ' in label matching, expected identifier or "}"'
    if prev == "offset":
        return " in offset, expected number, duration, step(), or range()"
    if prev == "@":
        return " in @, expected timestamp"
    if ctx.bracket_open:
        segment = text[text.rfind("[", 0, start) + 1 : start].strip()
        if not any(ch.isdigit() for ch in segment) and ")" not in segment:
            return " in subquery or range selector, expected number, duration, step(), or range()"
        if segment.endswith(":"):
            return ' in subquery selector, expected number, duration, step(), range(), or "]"'
        if ":" in segment:
            return ' in subquery selector, expected "]"'
        return ' in subquery or range, expected ":" or "]"'
    if {"IDENTIFIER", "STRING", "METRIC_IDENTIFIER"} <= expected and "NUMBER" not in expected:
        return " in grouping opts, expected label"
    if expected == {"COMMA", "RPAREN"} and prev not in ("(", ","):
        return ' in grouping opts, expected "," or ")"'
    if expected == {"LPAREN"} and prev in ("by", "without", "on", "ignoring"):
        return ' in grouping opts, expected "("'
    return ""


def _unexpected_end(text: str, expected: set[str]) -> tuple[str, PosRange]:
    end = len(text)
    ctx = _scan(text, end)
    pos = PosRange(end, end)
    if ctx.brace_open:
        return "unexpected end of input inside braces", pos
    if ctx.bracket_open:
        return "unexpected end of input in duration expression", pos
    if ctx.paren_depth > 0:
        return "unclosed left parenthesis", pos
    return f"unexpected end of input{_context_phrase(text, end, expected, ctx)}", pos


def _bad_character(text: str, pos: int) -> tuple[str, PosRange]:
    ch = text[pos]
    ctx = _scan(text, pos)
    nxt = text[pos + 1] if pos + 1 < len(text) else ""
    rest = PosRange(pos, len(text))
    if ctx.bracket_open and _duration_mode(text, pos) and not _starts_duration_token(text, pos):
        return f"unexpected character in duration expression: {lexing.go_rune_quote(ch)}", rest
    if ch in "\"'":
        return _string_problem(text, pos), rest
    if ch == "`":
        return "unterminated raw string", rest
    if ctx.brace_open:
        if ch == "!" and nxt not in "=~":
            return f"unexpected character after '!' inside braces: {_rune(nxt)}", rest
        if ch == "{":
            return "unexpected left brace '{'", rest
        return f"unexpected character inside braces: {lexing.go_rune_quote(ch)}", rest
    if ch.isdigit() or (ch == "." and nxt.isdigit()):
        problem = lexing.literal_problem(text, pos, None)
        if problem is not None:
            return problem, rest
    if ch == "!":
        return f"unexpected character after '!': {_rune(nxt)}", rest
    if ch == "=" and nxt == "~":
        return "unexpected character after '=': '~'", rest
    if ctx.bracket_open and (ch.isalpha() or ch == "_" or ch == ":"):
        return f"unexpected character: {lexing.go_rune_quote(ch)}, expected ':'", rest
    return f"unexpected character: {lexing.go_rune_quote(ch)}", rest


def _starts_duration_token(text: str, pos: int) -> bool:
    """Whether Prometheus' ``lexDurationExpr`` accepts the character at ``pos``."""
    ch = text[pos]
    if ch in "]:()+-*/%^, \t\r\n" or ch.isdigit():
        return True
    if ch == "." and text[pos + 1 : pos + 2].isdigit():
        return True
    word = ""
    for c in text[pos:]:
        if not (c.isalpha() or c == "_"):
            break
        word += c
    return word.lower() in ("step", "range", "min_of", "max_of")


def _string_problem(text: str, pos: int) -> str:
    quote = text[pos]
    i = pos + 1
    while i < len(text) and text[i] not in (quote, "\n"):
        if text[i] == "\\":
            if i + 1 >= len(text):
                return "escape sequence not terminated"
            i += 1
        i += 1
    return "unterminated quoted string"


def _rune(ch: str) -> str:
    return lexing.go_rune_quote(ch) if ch else "U+FFFFFFFF"
