"""One exception taxonomy for the whole product, each carrying Prometheus' ``errorType``.

``server/`` maps ``error_type`` to HTTP status in exactly one place; nothing else decides status.
"""

from __future__ import annotations

from dataclasses import dataclass

from promql.ast import PosRange


class TidemarkError(Exception):
    """Base error. ``error_type`` is Prometheus' API ``errorType``."""

    error_type = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadDataError(TidemarkError):
    """Invalid input from the client (bad parameters, bad payloads): HTTP 400."""

    error_type = "bad_data"


class ExecutionError(TidemarkError):
    """A query failed while executing (e.g. too many samples, duplicate series): HTTP 422."""

    error_type = "execution"


class QueryTimeoutError(TidemarkError):
    error_type = "timeout"


class QueryCanceledError(TidemarkError):
    error_type = "canceled"


class UnavailableError(TidemarkError):
    """Overload or shutdown (too many concurrent queries, ingest backpressure): HTTP 503."""

    error_type = "unavailable"


class NotFoundError(TidemarkError):
    error_type = "not_found"


@dataclass(frozen=True)
class ErrorPosition:
    """1-based line and column of a parse error, as Prometheus prints ``line:col``."""

    line: int
    column: int


class ParseError(BadDataError):
    """A syntax or type error in a PromQL query; ``str()`` is Prometheus' wording.

    ``str(e)`` reads e.g. ``1:6: parse error: unexpected <EOF>``; ``e.pos`` is the offending range.
    """

    def __init__(self, message: str, pos: PosRange, query: str) -> None:
        self.detail = message
        self.pos = pos
        self.query = query
        self.position = _line_col(query, pos.start)
        super().__init__(f"{self.position.line}:{self.position.column}: parse error: {message}")


def _line_col(query: str, offset: int) -> ErrorPosition:
    before = query[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return ErrorPosition(line, column)
