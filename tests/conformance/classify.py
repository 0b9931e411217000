"""Sort eval cases into the three groups the acceptance criteria count separately.

- ``native_histogram``: the expected output has ``{{...}}`` values, or a selector of the query
  matches a series loaded with native histogram samples (``{{...}}`` or ``load_with_nhcb``).
- ``experimental``: Prometheus' experimental syntax and functions as the issue lists them —
  duration expressions (incl. ``start()``/``end()``/``range()``/``step()``), anchored/smoothed
  selectors, fill modifiers, ``info()``, ``limitk``/``limit_ratio``, type-and-unit labels and
  start timestamps, and the functions Prometheus marks experimental (``mad_over_time``,
  ``sort_by_label``, ``ts_of_*_over_time``...); plus anything the parser accepts only with
  experimental syntax enabled.
- ``core``: everything else (the 95% acceptance bar).

Decided from the parsed AST where possible; the text is used only when parsing fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from promql.ast import AggregateExpr, Call, DurationExpr, Expr, VectorSelector, walk
from promql.types import Matcher, MatchType
from storage.model import Labels
from tests.conformance.dsl import EvalCmd

CORE = "core"
EXPERIMENTAL = "experimental"
NATIVE_HISTOGRAM = "native_histogram"
GROUPS = (CORE, EXPERIMENTAL, NATIVE_HISTOGRAM)

_DURATION_FUNCS = frozenset({"start", "end", "range", "step"})
_EXPERIMENTAL_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})
_FILL = re.compile(r"\bfill(?:_left|_right)?\s*\(")
# Used only when the expression does not parse at all (e.g. syntax our parser lacks).
_TEXT_MARKERS = (
    (_FILL, "fill modifier"),
    (re.compile(r"\]\s*(?:anchored|smoothed)\b"), "anchored/smoothed selector"),
    (re.compile(r"\binfo\s*\("), "info() function"),
    (re.compile(r"\blimit(?:k|_ratio)\s*\("), "limitk/limit_ratio aggregation"),
    (re.compile(r"\b(?:start|end|range|step)\s*\(\s*\)"), "duration expression function"),
)
_NAME_TOKEN = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class StoreFacts:
    """What the loads since the last ``clear`` put into the store, as far as grouping cares."""

    histogram_series: list[Labels] = field(default_factory=list)
    start_timestamps: bool = False
    type_and_unit: bool = False


def classify(cmd: EvalCmd, facts: StoreFacts) -> tuple[str, str]:
    """Return ``(group, reason)`` for one eval."""
    tree, experimental_only = _parse(cmd.expr)
    if cmd.histogram_values:
        return NATIVE_HISTOGRAM, "expected output has native histogram values"
    if facts.histogram_series and _touches(tree, cmd.expr, facts.histogram_series):
        return NATIVE_HISTOGRAM, "queries series loaded with native histogram samples"
    if facts.type_and_unit:
        return EXPERIMENTAL, "type-and-unit labels (__type__/__unit__) in the loaded data"
    if facts.start_timestamps:
        return EXPERIMENTAL, "start timestamps (@st) in the loaded data"
    reason = _experimental_reason(tree, cmd.expr) if tree is not None else _text_reason(cmd.expr)
    if reason is None and experimental_only:
        reason = "parses only with experimental syntax enabled"
    if reason is not None:
        return EXPERIMENTAL, reason
    return CORE, ""


def _parse(text: str) -> tuple[Expr | None, bool]:
    """The AST (experimental syntax on) and whether the text needs experimental syntax."""
    import promql

    try:
        tree = promql.parse(text, promql.ParserOptions(experimental=True))
    except Exception:
        return None, False
    try:
        promql.parse(text, promql.ParserOptions(experimental=False))
    except Exception:
        return tree, True
    return tree, False


def _experimental_reason(tree: Expr, text: str) -> str | None:
    for node in walk(tree):
        for name in ("range_expr", "offset_expr", "step_expr"):
            if getattr(node, name, None) is not None:
                return "duration expression"
        if isinstance(node, DurationExpr):
            return "duration expression"
        if isinstance(node, VectorSelector) and (node.anchored or node.smoothed):
            return "anchored/smoothed selector"
        if isinstance(node, Call) and node.func in _DURATION_FUNCS:
            return f"duration expression function {node.func}()"
        if isinstance(node, Call) and node.func == "info":
            return "info() function"
        if isinstance(node, Call) and _experimental_function(node.func):
            return f"experimental function {node.func}()"
        if isinstance(node, AggregateExpr) and node.op in _EXPERIMENTAL_AGGREGATIONS:
            return f"{node.op} aggregation"
        matching = getattr(node, "matching", None)
        for holder in (node, matching):
            # ``fill(0)`` stores 0.0: test for presence, not truthiness.
            if holder is not None and any(
                f.startswith("fill") and getattr(holder, f) is not None for f in vars(holder)
            ):
                return "fill modifier"
    if _FILL.search(text):
        return "fill modifier"
    return None


def _experimental_function(name: str) -> bool:
    from udfs.registry import get_function

    spec = get_function(name)
    return spec is not None and spec.experimental


def _text_reason(text: str) -> str | None:
    for pattern, reason in _TEXT_MARKERS:
        if pattern.search(text):
            return f"{reason} (expression does not parse)"
    return None


def _touches(tree: Expr | None, text: str, series: list[Labels]) -> bool:
    if tree is None:
        names = set(_NAME_TOKEN.findall(text))
        return any(dict(ls).get("__name__") in names for ls in series)
    for node in walk(tree):
        if isinstance(node, VectorSelector) and any(
            _matches_all(node.matchers, ls) for ls in series
        ):
            return True
    return False


def _matches_all(matchers: tuple[Matcher, ...], labels: Labels) -> bool:
    values = dict(labels)
    return all(_match(m, values.get(m.name, "")) for m in matchers)


def _match(m: Matcher, value: str) -> bool:
    if m.type == MatchType.EQUAL:
        return value == m.value
    if m.type == MatchType.NOT_EQUAL:
        return value != m.value
    hit = _fullmatch(m.value, value)
    return hit if m.type == MatchType.REGEX else not hit


def _fullmatch(pattern: str, value: str) -> bool:
    try:
        import re2

        return re2.fullmatch(pattern, value) is not None
    except Exception:
        try:
            return re.fullmatch(pattern, value) is not None
        except re.error:
            return False
