"""Plain PromQL value types shared by the parser, the function registry and storage.

No logic lives here: storage uses ``Matcher`` the way Prometheus' TSDB uses ``labels.Matcher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ValueType(StrEnum):
    """The four PromQL expression types, spelled as Prometheus' API and error messages spell them."""

    NONE = "none"
    SCALAR = "scalar"
    VECTOR = "vector"
    MATRIX = "matrix"
    STRING = "string"

    def document_name(self) -> str:
        """Name as Prometheus' error messages use it (``instant vector``, ``range vector``...)."""
        return {
            ValueType.VECTOR: "instant vector",
            ValueType.MATRIX: "range vector",
        }.get(self, self.value)


class MatchType(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """A label matcher. Regexes are fully anchored with RE2 semantics when evaluated."""

    type: MatchType
    name: str
    value: str
