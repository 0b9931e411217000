"""Spatial filters: a config's ``spatialFilter`` (PromQL label matchers) parsed and evaluated.

The filter text is the inside of a PromQL selector's braces, e.g. ``job="api", code=~"5.."``. It is
parsed by a small matcher-list parser here (the precompute package must not depend on the query
parser); string escapes follow PromQL (Go string literals in double or single quotes, raw strings
in backticks). Regexes are fully anchored and evaluated with RE2, like Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import re2

from promql.errors import BadDataError
from promql.types import Matcher, MatchType
from storage.model import Labels

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<name>[a-zA-Z_][a-zA-Z0-9_]*)
      | (?P<op>=~|!~|!=|=)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<comma>,)
    )""",
    re.VERBOSE,
)

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unquote(token: str) -> str:
    """Decode a PromQL string literal (Go-style escapes; backticks are raw)."""
    if token[0] == "`":
        return token[1:-1]
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        elif nxt in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse ``name op "value", ...`` (optionally wrapped in braces) into matchers.

    Raises ``BadDataError`` naming the offending position on any syntax error or invalid regex.
    """
    src = text.strip()
    if src.startswith("{") and src.endswith("}"):
        src = src[1:-1]
    pos, matchers = 0, []
    expect = "name"
    pending: list[str] = []
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        kind = m.lastgroup if m else None
        if kind is None or kind != expect:
            raise BadDataError(f"bad spatialFilter {text!r}: expected {expect} at offset {pos}")
        assert m is not None
        pos = m.end()
        if kind != "comma":
            pending.append(m.group(kind))
        expect = {"name": "op", "op": "str", "str": "comma", "comma": "name"}[kind]
        if kind == "str":
            name, op, raw = pending
            matchers.append(Matcher(MatchType(op), name, _unquote(raw)))
            pending = []
    if expect not in ("comma", "name") or pending:
        raise BadDataError(f"bad spatialFilter {text!r}: incomplete matcher")
    for matcher in matchers:
        if matcher.type in (MatchType.REGEX, MatchType.NOT_REGEX):
            _compile(matcher.value, text)
    return tuple(matchers)


def _compile(pattern: str, text: str) -> re2._Regexp:
    try:
        return re2.compile(f"^(?:{pattern})$")
    except re2.error as exc:
        raise BadDataError(f"bad spatialFilter {text!r}: invalid regex {pattern!r}: {exc}") from exc


@dataclass(frozen=True)
class LabelFilter:
    """A compiled conjunction of matchers evaluated against one label set.

    As in Prometheus, a missing label has the value ``""`` for matching purposes.
    """

    matchers: tuple[Matcher, ...]

    @classmethod
    def from_matchers(cls, matchers: Sequence[Matcher]) -> LabelFilter:
        return cls(tuple(matchers))

    def __post_init__(self) -> None:
        compiled = {
            m.value: _compile(m.value, m.value)
            for m in self.matchers
            if m.type in (MatchType.REGEX, MatchType.NOT_REGEX)
        }
        object.__setattr__(self, "_regexes", compiled)

    def matches(self, labels: Labels) -> bool:
        values = dict(labels)
        regexes: dict[str, re2._Regexp] = self._regexes  # type: ignore[attr-defined]
        for m in self.matchers:
            value = values.get(m.name, "")
            if m.type is MatchType.EQUAL:
                ok = value == m.value
            elif m.type is MatchType.NOT_EQUAL:
                ok = value != m.value
            elif m.type is MatchType.REGEX:
                ok = regexes[m.value].match(value) is not None
            else:
                ok = regexes[m.value].match(value) is None
            if not ok:
                return False
        return True
