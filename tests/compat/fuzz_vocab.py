"""The fuzzer's vocabulary and expression trees: the compat data set's metrics, labels, values
and durations; ``Node`` trees with shrinking; equivalent spellings (``style``).

Why each choice keeps 2.42 and 3.x in agreement is explained in ``fuzz_gen.py``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tests.compat.dataset import t_at

Part = str | int  # an int part is the index of a child node


@dataclass(frozen=True)
class Node:
    """One generated expression: ``parts`` joined, each int replaced by that child's text."""

    typ: str  # "vector" | "scalar" | "matrix"
    parts: tuple[Part, ...]
    kids: tuple[Node, ...] = ()

    def render(self) -> str:
        return "".join(self.kids[p].render() if isinstance(p, int) else p for p in self.parts)

    def size(self) -> int:
        return 1 + sum(k.size() for k in self.kids)


def leaf(typ: str, text: str) -> Node:
    return Node(typ, (text,))


@dataclass(frozen=True)
class Ctx:
    depth: int  # nesting left
    back_s: int  # look-back budget left (seconds)
    in_subquery: bool = False
    smooth: bool = False  # only expressions that never drop a step of a gap-free series
    outer_step: int = 0  # the enclosing subquery's step (s), 0 outside subqueries


# Metric -> its labels (besides __name__) and whether rate/increase may read it.
METRICS: dict[str, tuple[tuple[str, ...], bool]] = {
    "http_requests_total": (("job", "instance", "code"), True),
    "node_temperature_celsius": (("job", "instance"), False),  # a 12.5 min gap
    "node_load": (("job", "instance"), True),
    "process_open_fds": (("job", "instance"), False),  # stale markers
    "build_info": (("job", "version"), True),
    "http_request_duration_seconds_bucket": (("job", "le"), True),
    "http_request_duration_seconds_sum": (("job",), True),
    "http_request_duration_seconds_count": (("job",), True),
    "odd_values": (("job", "instance"), False),  # NaN, +-Inf, -0, extremes (fuzz.odd_series)
}
VALUES = {
    "job": ("api", "db", "cache", "nope"),
    "instance": ("0", "1"),
    "code": ("200", "500"),
    "le": ("0.1", "1", "+Inf"),
    "version": ("1.3.0", "1.5.0"),
}
REGEXES = {
    "job": (
        *("a.*", "api|db", ".*", ".+", "d.", "", "cache|nope", "(?i)API", "[[:alpha:]]+"),
        *("\\\\w+", "a|", "^api$", ".*b.*", "c.+e", "\\\\pL+", "[^a]*", "(api|db)?", "a{1,2}pi"),
    ),
    "instance": ("0|1", "1", ".*", "[01]"),
    "code": ("5..", "2.*", "[25]00"),
    "le": ("0.*", "\\\\+Inf", ".*"),
    "version": ("1\\\\..*", ".*"),
}
NAME_REGEXES = {  # __name__ regex -> the metrics it selects
    "node_.*": ("node_temperature_celsius", "node_load"),
    "node_load|build_info": ("node_load", "build_info"),
    "http_request_duration_seconds_(sum|count)": (
        "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count",
    ),
}
LABELS = ("job", "instance", "code", "le", "version")
RANGES_S = (30, 45, 60, 90, 120, 180, 300, 420, 600)
OFFSETS_S = (30, 60, 90, 180, 300, -60, -120)
SUB_STEPS_S = (None, 15, 30, 47, 60, 120)
AT_TIMES = (*tuple(f"{t_at(m) / 1000:.3f}" for m in (40, 52.5, 75, 91)), "start()", "end()")

MATH = [
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "tanh",
    "asinh",
    "acosh",
    "atanh",
    "deg",
    "rad",
]
DATE = [
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
]
OVER_TIME = [
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
]
ANY_RANGE = ("delta", "irate", "idelta", "deriv", "changes", "resets")
COUNTER_RANGE = ("rate", "increase")
AGGS = ("sum", "avg", "min", "max", "count", "group", "stddev", "stdvar")
ARITH = ("+", "-", "*", "/", "%", "^")
COMPARE = ("==", "!=", ">", "<", ">=", "<=")


_KEYWORDS = re.compile(
    r"\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile|count_values|by|without"
    r"|on|ignoring|group_left|group_right|bool|and|or|unless|offset|atan2)\b(?=[ (]|$)"
)
_STRINGS = re.compile(r'"((?:[^"\\]|\\.)*)"')
_DURATIONS = re.compile(r"(?<=[\[: ])(\d+)m(?=[\]: )]|$)")


def style(expr: str, seed: int) -> str:
    """The same expression in other legal spellings: keyword case, quotes, durations, comments.

    PromQL keywords are case-insensitive, strings may use single quotes or (without escapes)
    backticks, ``5m`` is ``300s``, and ``#`` starts a comment; 2.42 and 3.x agree on all of it.
    """
    rng = random.Random(seed)
    if rng.random() < 0.3:
        expr = _KEYWORDS.sub(
            lambda m: m.group(1).upper() if rng.random() < 0.5 else m.group(1), expr
        )
    if rng.random() < 0.3:
        expr = _STRINGS.sub(lambda m: _requote(m.group(1), rng), expr)
    if rng.random() < 0.2:
        expr = _DURATIONS.sub(
            lambda m: f"{int(m.group(1)) * 60}s" if rng.random() < 0.5 else m.group(0), expr
        )
    if rng.random() < 0.1:
        expr = expr.replace(", ", ",\n  ", 1) + "  # a comment"
    return expr


def _requote(body: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4 and "\\" not in body and "`" not in body:
        return f"`{body}`"
    if r < 0.8 and "'" not in body:
        return f"'{body}'"
    return f'"{body}"'


# Functions whose 2.42 and 3.x algorithms differ on infinite or huge inputs: 2.42's Kahan
# increment turns an infinite sum into NaN (3.x resets the compensation), and 2.42's
# avg/avg_over_time keep an incremental mean where 3.x sums (so 1.2, 1e308, -1e308 average to
# 1.2 in 2.42 and 0.4 in 3.x); 2.42's sum adds plainly, 3.x compensates.
KAHAN = frozenset(
    (
        "avg_over_time",
        "sum_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "deriv",
        "predict_linear",
        "avg",
        "sum",
    )
)
_EXTREME = ("odd_values", "exp(", "^", "/", "sinh(", "cosh(", "Inf", "ln(", "log2(", "log10(")
_EXTREME2 = ("tan(", "atanh(", "NaN", "1e2", "0x1F", "acosh(", "asin(", "acos(", "sqrt(")


def may_be_extreme(text: str) -> bool:
    """Whether an expression may produce NaN, +-Inf or huge values (a cautious, textual test)."""
    return any(m in text for m in _EXTREME + _EXTREME2)


def dur(seconds: int) -> str:
    sign, s = ("-", -seconds) if seconds < 0 else ("", seconds)
    if s % 60 == 0:
        return f"{sign}{s // 60}m"
    if s > 60:
        return f"{sign}{s // 60}m{s % 60}s"
    return f"{sign}{s}s"


def shrink_candidates(node: Node) -> list[Node]:
    """Smaller expressions of the same type: a same-typed descendant, or one child shrunk."""
    out: list[Node] = []
    stack = list(node.kids)
    while stack:
        k = stack.pop(0)
        if k.typ == node.typ:
            out.append(k)
        stack.extend(k.kids)
    for i, kid in enumerate(node.kids):
        for smaller in shrink_candidates(kid):
            kids = (*node.kids[:i], smaller, *node.kids[i + 1 :])
            out.append(Node(node.typ, node.parts, kids))
    return out


def paths(node: Node, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    out = [prefix]
    for i, kid in enumerate(node.kids):
        out.extend(paths(kid, (*prefix, i)))
    return out


def node_at(node: Node, path: tuple[int, ...]) -> Node:
    for i in path:
        node = node.kids[i]
    return node


def replace_at(node: Node, path: tuple[int, ...], new: Node) -> Node:
    if not path:
        return new
    i = path[0]
    kid = replace_at(node.kids[i], path[1:], new)
    return Node(node.typ, node.parts, (*node.kids[:i], kid, *node.kids[i + 1 :]))
