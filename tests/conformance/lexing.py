"""Small literal parsers the test DSL needs, with Go's semantics (durations, numbers, quoting)."""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_MS = (
    365 * 24 * 3600_000,
    7 * 24 * 3600_000,
    24 * 3600_000,
    3600_000,
    60_000,
    1000,
    1,
)
_GO_INT = re.compile(
    r"^[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$"
)
_GO_FLOAT = re.compile(
    r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE
)
_SIMPLE_ESCAPES = {
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
    "\\": 92,
    '"': 34,
    "'": 39,
}


def parse_duration_ms(text: str) -> int:
    """Prometheus ``model.ParseDuration`` (``1h30m``, ``5m``, ``0``), in milliseconds."""
    text = text.strip()
    if text == "0":
        return 0
    m = _DURATION.match(text)
    if not text or m is None:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(int(g) * unit for g, unit in zip(m.groups(), _UNIT_MS, strict=True) if g)


def parse_go_number(text: str) -> float | None:
    """Go's ``strconv.ParseInt(s, 0, 64)`` then ``ParseFloat(s, 64)``; None if neither parses."""
    if _GO_INT.match(text):
        body = text.lstrip("+-").replace("_", "")
        sign = -1 if text.startswith("-") else 1
        base = 10
        if body[:2].lower() in ("0x", "0o", "0b"):
            base = {"x": 16, "o": 8, "b": 2}[body[1].lower()]
            body = body[2:]
        elif len(body) > 1 and body.startswith("0"):
            base = 8  # a leading zero means octal in Go's base-0 parsing
        try:
            return float(sign * int(body, base))
        except ValueError:
            return None
    if _GO_FLOAT.match(text):
        return float(text)
    return None


def go_unquote(literal: str) -> str:
    """Go's ``strconv.Unquote`` for "...", '...' (as PromQL strings) and raw `...` literals."""
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in "\"'`":
        raise ValueError(f"invalid quoted string {literal!r}")
    body = literal[1:-1]
    if literal[0] == "`":
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(f"invalid escape in {literal!r}")
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif esc in "01234567":
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            out += chr(int(body[i + 2 : i + 2 + width], 16)).encode("utf-8")
            i += 2 + width
        else:
            raise ValueError(f"invalid escape \\{esc} in {literal!r}")
    return out.decode("utf-8", errors="replace")
