"""Prometheus' JSON forms for query results and for the parsed AST (``/api/v1/parse_query``).

Values are strings formatted as Prometheus' ``jsonutil.MarshalFloat`` does: Go's
``strconv.FormatFloat(v, 'f', -1, 64)`` (shortest round-trip digits), switching to the ``'e'``
form below 1e-6 and from 1e21, and ``+Inf``/``-Inf``/``NaN``. Timestamps are float seconds
written like ``jsonutil.MarshalTimestamp``: integer seconds, then ``.`` and the three millisecond
digits when they are not zero (``1.500``, ``0.005``). The result body is assembled as text so
these spellings reach the client byte for byte (a JSON library would re-spell the numbers).

A query answer's body is one buffer (``result_body``): the envelope's lead, the data (matrices
written by ``server.json_matrix``) and room for what only the event loop knows (stats, analyze,
the warnings tail), closed in place by ``OpenBody.close`` and sent as a view of that buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from planner.result import QueryResult, SeriesResult
from promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    DurationExpr,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from promql.types import Matcher, MatchType, ValueType
from server.json_matrix import matrix_bytes, matrix_into
from storage.model import Labels

# Go's encoding/json (and jsoniter's standard config) escape these inside strings.
_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def format_float(f: float) -> str:
    """Prometheus' sample value spelling (see module docstring)."""
    if f != f:
        return "NaN"
    if f == math.inf:
        return "+Inf"
    if f == -math.inf:
        return "-Inf"
    r = repr(float(f))
    a = abs(f)
    use_e = a != 0 and (a < 1e-6 or a >= 1e21)
    if "e" not in r:
        if use_e:  # cannot happen with repr's own cutoffs, kept for clarity
            return _to_exponent(r)
        return r[:-2] if r.endswith(".0") else r
    mantissa, exp_text = r.split("e")
    exp = int(exp_text)
    if use_e:
        return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return _to_positional(mantissa, exp)


def _to_positional(mantissa: str, exp: int) -> str:
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "")
    point = 1 + exp  # digits before the decimal point
    if point <= 0:
        body = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        body = digits + "0" * (point - len(digits))
    else:
        body = digits[:point] + "." + digits[point:]
    return sign + body


def _to_exponent(r: str) -> str:
    return format_float(float(r))


def format_timestamp(t_ms: int) -> str:
    """``jsonutil.MarshalTimestamp``: ``1.5 s`` is written ``1.500``, whole seconds bare."""
    t = int(t_ms)
    sign = "-" if t < 0 else ""
    t = abs(t)
    whole, frac = divmod(t, 1000)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:03d}"


def labels_json(labels: Labels) -> str:
    """A label set as a JSON object (Go's HTML-safe string escaping)."""
    return labels_bytes(labels).decode()


def labels_bytes(labels: Labels) -> bytes:
    # OPT_NON_STR_KEYS: label names may arrive as ``str`` subclasses (e.g. parser tokens).
    return html_safe(orjson.dumps(dict(labels), option=orjson.OPT_NON_STR_KEYS))


def html_safe(text: bytes) -> bytes:
    """JSON text with Go's HTML-safe escapes for ``<``, ``>`` and ``&``."""
    if b"<" in text or b">" in text or b"&" in text:
        text = text.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    return text


_FRACTIONS = ["", *(f".{i:03d}" for i in range(1, 1000))]
# A grid of distinct timestamps larger than this (relative to the point count) is not worth
# formatting in full; the sort-based path is used instead.
_GRID_SLACK = 4096


def format_values(values: np.ndarray) -> list[str]:
    """``format_float`` over an array, in bulk.

    orjson's float writer gives the same shortest round-trip digits as Go in positional form,
    except that it writes integers as ``1.0``: no other number it writes contains ``.0,`` (a
    shortest non-integer ends in a non-zero digit), so one byte replace fixes all of them. The
    magnitudes where one of the two switches to the exponent form and non-finite values are
    re-done one by one (rare).
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    finite = np.isfinite(v)
    all_finite = bool(finite.all())
    clean = v if all_finite else np.where(finite, v, 0.0)
    body = orjson.dumps(clean, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    if bool((clean == np.trunc(clean)).any()):
        body = body.replace(b".0,", b",")
        if body.endswith(b".0"):  # the last number has no comma after it
            body = body[:-2]
    texts = body.decode().split(",")
    a = np.abs(clean)
    odd = ((a < 1e-4) & (a != 0)) | (a >= 1e15)
    if not all_finite:
        odd |= ~finite
    if not odd.any():
        return texts
    out = np.array(texts, dtype=object)
    out[odd] = [format_float(x) for x in v[odd].tolist()]
    return out.tolist()


def distinct_timestamps(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct, inverse)`` as ``np.unique(ts, return_inverse=True)`` gives (``distinct`` may
    hold grid points no sample has). Range results sit on a step grid: found from the greatest
    common divisor of the offsets to the minimum, without a sort; scattered ones are sorted."""
    lo = int(ts.min())
    delta = ts - lo
    gcd = int(np.gcd.reduce(delta))
    span = int(delta.max()) // gcd + 1 if gcd > 0 else 1
    if span <= ts.size + _GRID_SLACK:
        uniq = lo + np.arange(span, dtype=np.int64) * max(gcd, 1)
        inverse = delta // gcd if gcd > 0 else np.zeros(ts.size, dtype=np.int64)
        return uniq, inverse
    uniq, inverse = np.unique(ts, return_inverse=True)
    return uniq, inverse.reshape(-1)


def format_timestamps(timestamps: np.ndarray, before: str = "", after: str = "") -> list[str]:
    """``format_timestamp`` over an array, each text between ``before`` and ``after``.

    Each distinct timestamp is formatted once. Range results sit on a step grid: the distinct
    values are found from the greatest common divisor of the offsets to the minimum (no sort);
    scattered timestamps fall back to a sort.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        return []
    uniq, inverse = distinct_timestamps(ts)
    if uniq[0] >= 0:
        whole, frac = np.divmod(uniq, 1000)
        texts = list(
            map(str.__add__, map(str, whole.tolist()), map(_FRACTIONS.__getitem__, frac.tolist()))
        )
    else:
        texts = [format_timestamp(t) for t in uniq.tolist()]
    if before or after:
        texts = [before + t + after for t in texts]
    return np.array(texts, dtype=object)[inverse.reshape(-1)].tolist()


def _vector(rows: list[SeriesResult]) -> str:
    rows = [s for s in rows if len(s.values)]
    if not rows:
        return "[]"
    ts = format_timestamps(np.array([int(s.timestamps[0]) for s in rows], dtype=np.int64))
    vs = format_values(np.array([float(s.values[0]) for s in rows], dtype=np.float64))
    return (
        "["
        + ",".join(
            f'{{"metric":{labels_json(s.labels)},"value":[{t},"{v}"]}}'
            for s, t, v in zip(rows, ts, vs, strict=True)
        )
        + "]"
    )


def result_json(result: QueryResult, series: Iterable[SeriesResult] | None = None) -> str:
    """``{"resultType":..,"result":..}`` for a query result (``series`` overrides, for limit)."""
    rows = list(result.series if series is None else series)
    kind = result.result_type
    lead = f'{{"resultType":"{kind.value}","result":'
    if kind == ValueType.SCALAR:
        t, v = result.scalar if result.scalar is not None else (0, math.nan)
        body = f'[{format_timestamp(t)},"{format_float(v)}"]'
    elif kind == ValueType.STRING:
        t, s = result.string if result.string is not None else (0, "")
        body = f"[{format_timestamp(t)},{_json_string(s)}]"
    elif kind == ValueType.VECTOR:
        body = _vector(rows)
    else:
        return matrix_bytes(rows, lead.encode(), b"}").decode()
    return lead + body + "}"


def result_json_bytes(result: QueryResult, series: Iterable[SeriesResult] | None = None) -> bytes:
    """``result_json`` as UTF-8 (matrices assembled as bytes, never as ``str``)."""
    if result.result_type == ValueType.MATRIX:
        rows = list(result.series if series is None else series)
        return matrix_bytes(rows, b'{"resultType":"matrix","result":', b"}")
    return result_json(result, series).encode()


def _json_string(s: str) -> str:
    return orjson.dumps(s).decode().translate(_HTML_ESCAPES)


ENVELOPE_LEAD = b'{"status":"success","data":'


def envelope_tail(warnings: list[str] | None = None, infos: list[str] | None = None) -> bytes:
    """What follows ``data`` in the success envelope: ``,"warnings":[..],"infos":[..]}``."""
    parts = []
    if warnings:
        parts.append(b',"warnings":' + orjson.dumps(warnings))
    if infos:
        parts.append(b',"infos":' + orjson.dumps(infos))
    parts.append(b"}")
    return b"".join(parts)


def envelope(
    data_json: str | bytes, warnings: list[str] | None = None, infos: list[str] | None = None
) -> bytes:
    """``{"status":"success","data":..,"warnings":[..],"infos":[..]}`` around pre-built data
    (small answers; query results use ``result_body``)."""
    data = data_json.encode() if isinstance(data_json, str) else data_json
    return b"".join((ENVELOPE_LEAD, data, envelope_tail(warnings, infos)))


@dataclass(frozen=True)
class OpenBody:
    """A success envelope written up to the end of ``data``'s last member (``data``'s ``}`` not
    yet written) in a buffer with room after it: closing it writes the rest in place, so a
    40 MB answer is never joined or copied again on its way to the socket."""

    buf: np.ndarray
    end: int

    def close(self, fields: bytes, tail: bytes) -> memoryview:
        """The whole body: ``fields`` (more members of ``data``, e.g. ``,"stats":{..}``), ``}``
        and ``tail`` (``envelope_tail``) written after ``end``; copied only if they do not fit
        the room left for them."""
        rest = np.frombuffer(fields + b"}" + tail, dtype=np.uint8)
        stop = self.end + rest.shape[0]
        if stop > self.buf.shape[0]:
            return memoryview(np.concatenate((self.buf[: self.end], rest)))
        self.buf[self.end : stop] = rest
        return memoryview(self.buf[:stop])


def result_body(
    result: QueryResult, series: Iterable[SeriesResult] | None = None, room: int = 0
) -> OpenBody:
    """The success envelope around ``result_json`` (``series`` overrides, for limit), open after
    ``data``'s last member, with at least ``room`` bytes to close it in (``OpenBody.close``)."""
    if result.result_type == ValueType.MATRIX:
        rows = list(result.series if series is None else series)
        lead = ENVELOPE_LEAD + b'{"resultType":"matrix","result":'
        return OpenBody(*matrix_into(rows, lead, room))
    text = ENVELOPE_LEAD + result_json(result, series).encode()[:-1]  # without data's ``}``
    buf = np.empty(len(text) + room, dtype=np.uint8)
    buf[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    return OpenBody(buf, len(text))


# ---------------------------------------------------------------------------------------------
# /api/v1/parse_query: upstream ``web/api/v1/translate_ast.go``.


def translate_ast(node: Expr | None) -> Any:
    """The JSON tree Prometheus' ``parse_query`` returns for an expression."""
    if node is None:
        return None
    if isinstance(node, AggregateExpr):
        return {
            "type": "aggregation",
            "op": node.op,
            "expr": translate_ast(node.expr),
            "param": translate_ast(node.param),
            "grouping": list(node.grouping),
            "without": node.without,
        }
    if isinstance(node, BinaryExpr):
        return _translate_binary(node)
    if isinstance(node, Call):
        return _translate_call(node)
    if isinstance(node, MatrixSelector):
        vs = node.vector_selector
        return {
            "type": "matrixSelector",
            "name": vs.name or "",
            "range": node.range_ms,
            "rangeExpr": translate_duration(node.range_expr),
            **_selector_fields(vs),
        }
    if isinstance(node, SubqueryExpr):
        return {
            "type": "subquery",
            "expr": translate_ast(node.expr),
            "range": node.range_ms,
            "rangeExpr": translate_duration(node.range_expr),
            "offset": node.offset_ms,
            "offsetExpr": translate_duration(node.offset_expr),
            "step": node.step_ms,
            "stepExpr": translate_duration(node.step_expr),
            "timestamp": node.timestamp_ms,
            "startOrEnd": node.start_or_end,
        }
    if isinstance(node, DurationExpr):
        return translate_duration(node)
    if isinstance(node, NumberLiteral):
        return {"type": "numberLiteral", "val": _go_f(node.value)}
    if isinstance(node, ParenExpr):
        return {"type": "parenExpr", "expr": translate_ast(node.expr)}
    if isinstance(node, StringLiteral):
        return {"type": "stringLiteral", "val": node.value}
    if isinstance(node, UnaryExpr):
        return {"type": "unaryExpr", "op": node.op, "expr": translate_ast(node.expr)}
    if isinstance(node, VectorSelector):
        return {"type": "vectorSelector", "name": node.name or "", **_selector_fields(node)}
    raise TypeError(f"unsupported node type {type(node).__name__}")


def _selector_fields(vs: VectorSelector) -> dict[str, Any]:
    return {
        "offset": vs.offset_ms,
        "offsetExpr": translate_duration(vs.offset_expr),
        "matchers": [{"name": m.name, "value": m.value, "type": m.type.value} for m in vs.matchers],
        "timestamp": vs.timestamp_ms,
        "startOrEnd": vs.start_or_end,
        "anchored": vs.anchored,
        "smoothed": vs.smoothed,
    }


def _translate_binary(node: BinaryExpr) -> dict[str, Any]:
    matching = None
    m = node.matching
    if m is not None:
        fill = getattr(m, "fill_values", None) or getattr(node, "fill_values", None)
        lhs = getattr(fill, "lhs", None) if fill is not None else None
        rhs = getattr(fill, "rhs", None) if fill is not None else None
        matching = {
            "card": m.card.value,
            "labels": list(m.matching_labels),
            "on": m.on,
            "include": list(m.include),
            "fillValues": {"lhs": lhs, "rhs": rhs},
        }
    return {
        "type": "binaryExpr",
        "op": node.op,
        "lhs": translate_ast(node.lhs),
        "rhs": translate_ast(node.rhs),
        "matching": matching,
        "bool": node.return_bool,
    }


def _translate_call(node: Call) -> dict[str, Any]:
    from udfs.registry import get_function

    spec = get_function(node.func)
    return {
        "type": "call",
        "func": {
            "name": node.func,
            "argTypes": [t.value for t in spec.arg_types] if spec else [],
            "variadic": spec.variadic if spec else 0,
            "returnType": (spec.return_type if spec else node.return_type).value,
        },
        "args": [translate_ast(a) for a in node.args],
    }


def translate_duration(node: Expr | None) -> Any:
    """``translateDurationExpr``: duration arithmetic nodes and their number leaves."""
    if node is None:
        return None
    if isinstance(node, DurationExpr):
        if node.op == "()":
            inner = translate_duration(node.rhs if node.rhs is not None else node.lhs)
            if isinstance(inner, dict) and inner.get("type") == "durationExpr":
                return {**inner, "wrapped": True}
            return inner
        return {
            "type": "durationExpr",
            "op": node.op,
            "lhs": translate_duration(node.lhs),
            "rhs": translate_duration(node.rhs),
            "wrapped": False,
        }
    if isinstance(node, NumberLiteral):
        return {"type": "numberLiteral", "val": _go_f(node.value), "duration": node.duration}
    return translate_ast(node)


def _go_f(f: float) -> str:
    """``strconv.FormatFloat(f, 'f', -1, 64)`` (no exponent form at all)."""
    if f != f:
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(float(f))
    if "e" in r:
        mantissa, exp = r.split("e")
        return _to_positional(mantissa, int(exp))
    return r[:-2] if r.endswith(".0") else r


# ---------------------------------------------------------------------------------------------
# /api/v1/format_query: Prometheus answers with ``Prettify`` (``promql/parser/prettier.go``):
# an expression longer than 100 characters is split over lines, children indented by two
# spaces; anything shorter is its one-line canonical form.

MAX_LINE = 100
_PLACEHOLDER = VectorSelector(
    "tidemark_placeholder", (Matcher(MatchType.EQUAL, "__name__", "tidemark_placeholder"),)
)


def pretty(expr: Expr, level: int = 0, width: int = MAX_LINE) -> str:
    """Prometheus' ``Pretty(level)`` for an expression."""
    import promql

    text = promql.format(expr)
    pad = "  " * level
    fits = len(text) <= width
    if isinstance(expr, SubqueryExpr):
        # Upstream returns an unsplit subquery without the indent.
        if fits:
            return text
        return pretty(expr.expr, level, width) + _subquery_suffix(expr)
    if isinstance(expr, UnaryExpr):
        return f"{pad}{expr.op}{pretty(expr.expr, level, width).strip()}"
    if fits or not isinstance(expr, AggregateExpr | BinaryExpr | Call | ParenExpr):
        return pad + text
    inner = level + 1
    if isinstance(expr, AggregateExpr):
        head = f"{pad}{_aggregate_prefix(expr)}(\n"
        if expr.param is not None:
            head += pretty(expr.param, inner, width) + ",\n"
        return f"{head}{pretty(expr.expr, inner, width)}\n{pad})"
    if isinstance(expr, BinaryExpr):
        lhs, rhs = pretty(expr.lhs, inner, width), pretty(expr.rhs, inner, width)
        return f"{lhs}\n{pad}{_binary_operator(expr)}\n{rhs}"
    if isinstance(expr, Call):
        args = ",\n".join(pretty(a, inner, width) for a in expr.args)
        return f"{pad}{expr.func}(\n{args}\n{pad})"
    assert isinstance(expr, ParenExpr)
    return f"{pad}(\n{pretty(expr.expr, inner, width)}\n{pad})"


def _aggregate_prefix(expr: AggregateExpr) -> str:
    """``sum by (job) `` / ``topk``: the aggregation text before its argument list."""
    import dataclasses

    import promql

    param = NumberLiteral(0.0) if expr.param is not None else None
    text = promql.format(dataclasses.replace(expr, expr=_PLACEHOLDER, param=param))
    tail = "(" + ("0, " if param is not None else "") + "tidemark_placeholder)"
    return text[: -len(tail)]


def _binary_operator(expr: BinaryExpr) -> str:
    """``+``, ``== bool``, ``/ on (job) group_left ()``: the operator with its modifiers."""
    import dataclasses

    import promql

    text = promql.format(dataclasses.replace(expr, lhs=_PLACEHOLDER, rhs=_PLACEHOLDER))
    n = len("tidemark_placeholder")
    return text[n:-n].strip()


def _subquery_suffix(expr: SubqueryExpr) -> str:
    import dataclasses

    import promql

    text = promql.format(dataclasses.replace(expr, expr=_PLACEHOLDER))
    return text[len("tidemark_placeholder") :]
