"""Literal handling with Go's and Prometheus' exact semantics: strings, numbers, durations.

Prometheus lexes with Go rules (``strconv``, ``model.ParseDuration``, ``model.Duration.String``);
these helpers reproduce them so that values and error wording match. ``LiteralError`` carries
the message Prometheus prints, without position: the parser adds that.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal

import re2

_INT64_MAX = (1 << 63) - 1


class LiteralError(ValueError):
    """A malformed literal; ``str()`` is Prometheus' message."""


# --- strings ---------------------------------------------------------------------------------

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_HEX = "0123456789abcdefABCDEF"


def go_rune(ch: str) -> str:
    """Go's ``%#U`` of a rune, e.g. ``U+0063 'c'``."""
    return f"U+{ord(ch):04X} '{ch}'"


def unquote(literal: str) -> str:
    """Value of a quoted PromQL string (``"..."``, ``'...'`` or raw ```...```)."""
    quote = literal[0]
    body = literal[1:-1]
    if quote == "`":
        return body
    if "\\" not in body:
        return body
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        i += 1
        if i >= n:
            raise LiteralError("escape sequence not terminated")
        esc = body[i]
        i += 1
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc].encode()
        elif esc == quote:
            out += esc.encode()
        elif esc in "01234567":
            digits, i = _take_digits(body, i - 1, 3, "01234567")
            value = int(digits, 8)
            if value > 255:
                raise LiteralError("escape sequence is an invalid Unicode code point")
            out.append(value)
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits, i = _take_digits(body, i, width, _HEX)
            value = int(digits, 16)
            if esc == "x":
                out.append(value)
            elif value > 0x10FFFF or 0xD800 <= value < 0xE000:
                raise LiteralError("escape sequence is an invalid Unicode code point")
            else:
                out += chr(value).encode()
        else:
            raise LiteralError(f"unknown escape sequence {go_rune(esc)}")
    return out.decode("utf-8", "surrogateescape")


def _take_digits(body: str, start: int, width: int, valid: str) -> tuple[str, int]:
    digits = body[start : start + width]
    for ch in digits:
        if ch not in valid:
            raise LiteralError(f"illegal character {go_rune(ch)} in escape sequence")
    if len(digits) < width:
        raise LiteralError("escape sequence not terminated")
    return digits, start + width


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(value: str) -> str:
    """Go's ``strconv.Quote``: double quotes, Go escapes, printable Unicode kept as is."""
    parts = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            parts.append(_GO_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte kept by surrogateescape
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif ch == " " or (ch.isprintable() and not ch.isspace()):
            parts.append(ch)
        elif code < 0x20 or code == 0x7F:
            parts.append(f"\\x{code:02x}")
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


def go_quote_truncated(value: str, limit: int) -> str:
    """Go's ``%.<limit>q``: the first ``limit`` runes, quoted."""
    return go_quote(value[:limit])


def go_rune_quote(ch: str) -> str:
    """Go's ``%q`` of a rune: ``'x'``."""
    if ch == "'":
        return "'\\''"
    inner = go_quote(ch)[1:-1]
    return "'" + inner.replace('\\"', '"') + "'"


# --- numbers ---------------------------------------------------------------------------------

_OCTAL = re.compile(r"0[0-7_]+")


def parse_number(text: str) -> float:
    """Value of a NUMBER token as Prometheus computes it (``ParseInt(s, 0, 64)``, then float)."""
    low = text.lower()
    if low == "inf":
        return math.inf
    if low == "nan":
        return math.nan
    value: int | None = None
    try:
        value = int(text[1:].lstrip("_") or "0", 8) if _OCTAL.fullmatch(text) else int(text, 0)
    except ValueError:
        value = None
    if value is not None and value <= _INT64_MAX:
        return float(value)
    try:
        result = float(text)
    except ValueError as exc:
        raise LiteralError(
            f'error parsing number: strconv.ParseFloat: parsing "{text}": invalid syntax'
        ) from exc
    if math.isinf(result):
        raise LiteralError(
            f'error parsing number: strconv.ParseFloat: parsing "{text}": value out of range'
        )
    return result


def format_number(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` as Prometheus prints number literals."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_go_g(value: float) -> str:
    """Go's ``%v`` of a float64 (``strconv`` 'g', shortest): ``1e+06``, ``0.5``, ``+Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exponent = _shortest_digits(abs(value))
    sign = "-" if value < 0 else ""
    if exponent < -4 or exponent >= 6:  # Go: shortest 'g' switches to %e at these exponents
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return sign + format_number(abs(value))


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-tripping decimal digits of ``value`` and its decimal exponent."""
    text = repr(value)
    if "e" in text:
        mantissa, _, exp = text.partition("e")
        digits = mantissa.replace(".", "").lstrip("0")
        point = mantissa.index(".") if "." in mantissa else len(mantissa)
        return digits.rstrip("0") or "0", int(exp) + point - 1
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if whole != "0":
        return (whole + frac).rstrip("0"), len(whole) - 1
    stripped = frac.lstrip("0")
    return stripped, -(len(frac) - len(stripped)) - 1


# --- durations -------------------------------------------------------------------------------

_UNITS: dict[str, tuple[int, int]] = {  # unit -> (order, milliseconds)
    "y": (1, 365 * 24 * 3600 * 1000),
    "w": (2, 7 * 24 * 3600 * 1000),
    "d": (3, 24 * 3600 * 1000),
    "h": (4, 3600 * 1000),
    "m": (5, 60 * 1000),
    "s": (6, 1000),
    "ms": (7, 1),
}
_DURATION_PART = re.compile(r"([0-9]+)([^0-9]*)")
_MAX_NS = (1 << 63) - 1


def parse_duration_ms(text: str) -> int:
    """``model.ParseDuration`` in integer milliseconds, with its error wording."""
    if text == "0":
        return 0
    if text == "":
        raise LiteralError("empty duration string")
    total_ns = 0
    last_order = 0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or not match.group(2):
            raise LiteralError(f'not a valid duration string: "{text}"')
        unit = match.group(2)
        if unit not in _UNITS:
            raise LiteralError(f'unknown unit "{unit}" in duration "{text}"')
        order, mult_ms = _UNITS[unit]
        if order <= last_order:
            raise LiteralError(f'not a valid duration string: "{text}"')
        last_order = order
        mult_ns = mult_ms * 1_000_000
        count = int(match.group(1))
        if count > (1 << 63) // mult_ns:
            raise LiteralError("duration out of range")
        total_ns += count * mult_ns
        if total_ns > _MAX_NS:
            raise LiteralError("duration out of range")
        pos = match.end()
    return total_ns // 1_000_000


_FORMAT_UNITS = (
    ("y", 365 * 24 * 3600 * 1000, True),
    ("w", 7 * 24 * 3600 * 1000, True),
    ("d", 24 * 3600 * 1000, False),
    ("h", 3600 * 1000, False),
    ("m", 60 * 1000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)


def format_duration_ms(ms: int) -> str:
    """``model.Duration.String()``: ``1h30m``, ``90d`` rather than ``12w6d``, ``0s`` for zero."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, mult, exact in _FORMAT_UNITS:
        if exact and ms % mult != 0:
            continue
        count = ms // mult
        if count > 0:
            parts.append(f"{count}{unit}")
            ms -= count * mult
    return "".join(parts)


def seconds_to_ms(seconds: float) -> int:
    """Go's ``time.Duration(math.Round(s * 1e9))`` truncated to milliseconds.

    Prometheus keeps range and offset literals as float seconds before this conversion, so
    beyond ~26 days a millisecond part can come out 1 ms short; this reproduces that exactly.
    """
    ns = go_round(seconds * 1e9)
    return -((-ns) // 1_000_000) if ns < 0 else ns // 1_000_000


def go_round(value: float) -> int:
    """Go's ``math.Round`` (half away from zero; Python's ``round`` rounds half to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def duration_out_of_range(seconds: float) -> bool:
    # NaN passes Prometheus' check and then converts to an undefined int64; reject it here.
    return math.isnan(seconds) or seconds > (1 << 63) / 1e9 or seconds < -(1 << 63) / 1e9


# --- Prometheus' number/duration scanner ----------------------------------------------------
#
# The grammar's NUMBER and DURATION regexes cover every well-formed literal, but Prometheus'
# hand-written scanner (lex.go: lexNumberOrDuration, scanNumber, acceptRemainingDuration) also
# decides what a malformed one is: "0x" and ".5." become NUMBER tokens that fail to convert,
# "0xfe+1" is one token, "5mm" is a syntax error. This is a faithful port, used to check each
# literal token and to word errors exactly as Prometheus does.


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


class _Scanner:
    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def accept(self, valid: str) -> bool:
        ch = self.peek()
        if ch and ch in valid:
            self.pos += 1
            return True
        return False

    def scan_number(self) -> bool:
        initial = self.pos
        digits = "0123456789"
        if self.accept("0") and self.accept("xX"):
            self.accept("_")
            digits = "0123456789abcdefABCDEF"
        self.accept(".")
        self.accept(digits)
        dot = exponent = False
        while self.peek() and self.peek() in digits + "._eE":
            ch = self.peek()
            if (ch == "." and dot) or (ch in "eE" and exponent):
                self.pos += 1
                return False
            if self.accept("."):
                dot = True
                if self.accept("_.") or len(digits) > 10:
                    return False
                continue
            if self.accept("eE"):
                exponent = True
                self.accept("+-")
                if self.accept("._eE") or not self.peek():
                    return False
                continue
            if self.accept("_"):
                if self.accept("._eE") or not self.peek():
                    return False
                continue
            while self.accept(digits):
                pass
        if self.pos == initial:
            return False
        return not _is_alnum(self.peek())

    def accept_remaining_duration(self) -> bool:
        if not self.accept("smhdwy"):
            return False
        self.accept("s")
        while self.accept("0123456789"):
            while self.accept("0123456789"):
                pass
            if not self.accept("smhdw"):
                return False
            self.accept("s")
        terminator = self.peek()
        if _is_alnum(terminator):
            self.pos += 1  # Go's next() consumed it; on success it backs up again
            return False
        return True


def prometheus_literal(text: str, start: int) -> tuple[str, str]:
    """What Prometheus' lexer makes of the literal at ``start``: ``(kind, token_text)``.

    ``kind`` is ``NUMBER``, ``DURATION`` or ``ERROR`` (then ``token_text`` is the message).
    """
    scanner = _Scanner(text, start)
    if scanner.scan_number():
        return "NUMBER", text[start : scanner.pos]
    if scanner.accept_remaining_duration():
        return "DURATION", text[start : scanner.pos]
    return "ERROR", f"bad number or duration syntax: {go_quote(text[start : scanner.pos])}"


def literal_problem(text: str, start: int, token_text: str | None) -> str | None:
    """Prometheus' error for the literal at ``start`` when the grammar read ``token_text``.

    ``token_text`` is ``None`` when the grammar could not read a literal there at all. Returns
    ``None`` when Prometheus lexes the same token (its value is then checked as usual).
    """
    if token_text is not None and not token_text[:1].isdigit() and token_text[:1] != ".":
        return None  # Inf / NaN are keywords in Prometheus' lexer, not scanned numbers
    kind, value = prometheus_literal(text, start)
    if kind == "ERROR":
        return value
    if value == token_text:
        return None
    try:
        if kind == "NUMBER":
            parse_number(value)
        else:
            parse_duration_ms(value)
    except LiteralError as exc:
        return str(exc)
    return f"bad number or duration syntax: {go_quote(value)}"


def is_alnum(ch: str) -> bool:
    return _is_alnum(ch)


# --- regular expressions ---------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error goes to the user, not to stderr
_RE2_OPTIONS.dot_nl = True
# RE2 (C++) error codes → Go regexp/syntax codes, as Prometheus reports them.
_GO_REGEX_CODES = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid named capture group": "invalid named capture",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "trailing \\": "trailing backslash at end of expression",
}


@functools.lru_cache(maxsize=1024)  # dashboards repeat the same few regexes
def regex_error(pattern: str) -> str | None:
    """Go-style ``error parsing regexp: <code>: `<expr>``` for an invalid RE2 pattern, else None.

    The pattern is checked as Prometheus checks matchers: RE2 syntax, ``.`` matching newlines,
    fully anchored when evaluated.
    """
    try:
        re2.compile(pattern, _RE2_OPTIONS)
        return None
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code, _, fragment = text.partition(": ")
    if code in ("missing )", "missing ]"):
        fragment = pattern
    return f"error parsing regexp: {_GO_REGEX_CODES.get(code, code)}: `{fragment}`"
