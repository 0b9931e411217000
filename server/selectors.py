"""``match[]`` parameters: PromQL series selectors → matcher lists, Prometheus' checks included."""

from __future__ import annotations

import importlib

import re2

from promql.errors import BadDataError
from promql.types import Matcher, MatchType


def matches_empty(m: Matcher) -> bool:
    """Whether the matcher accepts the empty string (i.e. also series without the label)."""
    if m.type is MatchType.EQUAL:
        return m.value == ""
    if m.type is MatchType.NOT_EQUAL:
        return m.value != ""
    hit = re2.fullmatch(m.value, "") is not None
    return hit if m.type is MatchType.REGEX else not hit


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """Matchers of one series selector such as ``up{job=~"a|b"}``; raises ``BadDataError``."""
    promql = importlib.import_module("promql")
    selector_parser = getattr(promql, "parse_metric_selector", None)
    if selector_parser is not None:
        return tuple(selector_parser(text))
    from promql.ast import VectorSelector

    expr = promql.parse(text)
    if not isinstance(expr, VectorSelector):
        raise BadDataError(f"invalid series selector {text!r}: expected a vector selector")
    return tuple(expr.matchers)


def match_param(values: list[str], required: bool) -> list[tuple[Matcher, ...]] | None:
    """All ``match[]`` values parsed; ``None`` when absent and not required.

    As Prometheus' ``parseMatchersParam``: every selector needs a matcher that does not match
    the empty string, otherwise it would select every series.
    """
    if not values:
        if required:
            raise BadDataError("no match[] parameter provided")
        return None
    sets = [parse_selector(v) for v in values]
    for ms in sets:
        if all(matches_empty(m) for m in ms):
            raise BadDataError("match[] must contain at least one non-empty matcher")
    return sets
