"""Prometheus text exposition format (``/api/v1/import/prometheus``) → ``SampleBatch``.

Covers format 0.0.4 as Prometheus' own text parser reads it, plus Prometheus 3's quoted UTF-8
names: ``{"my.metric", "label.x"="v"} 1``. Optional integer millisecond timestamps; samples
without one get ``default_ts_ms`` (the request's arrival time). ``# HELP`` / ``# TYPE`` lines become
metadata; other comments are ignored. Values parse as Go's ``strconv.ParseFloat`` does (``NaN``,
``+Inf``, ``-Inf``, hex floats; no digit separators).

The patterns below are fixed and unambiguous (no nested quantifiers over the same characters), so
Python's backtracking ``re`` stays linear on them; user regexes never go through ``re``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from server.errors import IngestRejected
from server.validate import canonical_labels, make_batch
from storage.model import METRIC_NAME, Labels, MetricMetadata, SampleBatch

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_QUOTED = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_WS = re.compile(r"[ \t]*")
_TAIL = re.compile(r"[ \t]+(\S+)(?:[ \t]+(-?[0-9]+))?[ \t]*$")
_ESCAPES = re.compile(r"\\(.)")
_TYPES = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "untyped": "unknown",
    "unknown": "unknown",
    "gaugehistogram": "gaugehistogram",
    "info": "info",
    "stateset": "stateset",
}


class _LineError(Exception):
    pass


def _unescape(text: str, allowed: str) -> str:
    def repl(m: re.Match[str]) -> str:
        c = m.group(1)
        if c not in allowed:
            raise _LineError(f"invalid escape sequence '\\{c}'")
        return "\n" if c == "n" else c

    return _ESCAPES.sub(repl, text) if "\\" in text else text


def parse_float(token: str) -> float:
    """Go ``strconv.ParseFloat(token, 64)`` for the forms the exposition format uses."""
    if not token.isascii() or "_" in token:
        raise ValueError(token)
    low = token.lower()
    if low.lstrip("+-").startswith("0x"):
        return float.fromhex(token)
    if low in ("+nan", "-nan"):
        raise ValueError(token)
    return float(token)


def _name_at(line: str, pos: int, pattern: re.Pattern[str]) -> tuple[str, bool, int]:
    """(name, was_quoted, new_pos) at ``pos``: a legacy identifier or a quoted UTF-8 string."""
    m = _QUOTED.match(line, pos)
    if m:
        return _unescape(m.group(1), '\\"n'), True, m.end()
    m = pattern.match(line, pos)
    if not m:
        raise _LineError(f"expected a name at column {pos + 1}")
    return m.group(0), False, m.end()


def _labels(line: str, pos: int, name: str | None) -> tuple[list[tuple[str, str]], str | None, int]:
    """Parse ``{...}`` starting after the ``{``; returns (pairs, metric name, pos after ``}``)."""
    pairs: list[tuple[str, str]] = []
    while True:
        pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
        if line.startswith("}", pos):
            return pairs, name, pos + 1
        key, quoted, pos = _name_at(line, pos, _LABEL)
        pos = _WS.match(line, pos).end()  # type: ignore[union-attr]
        if line.startswith("=", pos):
            pos = _WS.match(line, pos + 1).end()  # type: ignore[union-attr]
            m = _QUOTED.match(line, pos)
            if not m:
                raise _LineError(f"expected a quoted label value at column {pos + 1}")
            pairs.append((key, _unescape(m.group(1), '\\"n')))
            pos = _WS.match(line, m.end()).end()  # type: ignore[union-attr]
        elif quoted and name is None:
            name = key
        else:
            raise _LineError(f"expected '=' after label name {key!r}")
        if line.startswith(",", pos):
            pos += 1
        elif not line.startswith("}", pos):
            raise _LineError(f"expected ',' or '}}' at column {pos + 1}")


@dataclass
class _Collector:
    default_ts_ms: int
    index: dict[Labels, int] = field(default_factory=dict)
    sample_series: list[int] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    meta: dict[str, list[str]] = field(default_factory=dict)

    def sample(self, line: str) -> None:
        name: str | None = None
        pos = 0
        if not line.startswith("{"):
            name, _, pos = _name_at(line, 0, _METRIC)
        pairs: list[tuple[str, str]] = []
        if line.startswith("{", pos):
            pairs, name, pos = _labels(line, pos + 1, name)
        if not name:
            raise _LineError("missing metric name")
        m = _TAIL.match(line, pos)
        if not m:
            raise _LineError("expected a value (and optional timestamp) after the series")
        try:
            value = parse_float(m.group(1))
        except ValueError as err:
            raise _LineError(f"invalid value {m.group(1)!r}") from err
        labels = canonical_labels([(METRIC_NAME, name), *pairs])
        self.sample_series.append(self.index.setdefault(labels, len(self.index)))
        self.timestamps.append(int(m.group(2)) if m.group(2) else self.default_ts_ms)
        self.values.append(value)

    def comment(self, line: str) -> None:
        parts = line[1:].lstrip(" \t").split(None, 1)
        if not parts or parts[0] not in ("HELP", "TYPE") or len(parts) < 2:
            return  # an ordinary comment
        name, _, pos = _name_at(parts[1], 0, _METRIC)
        rest = parts[1][pos:].lstrip(" \t")
        entry = self.meta.setdefault(name, ["unknown", ""])
        if parts[0] == "HELP":
            entry[1] = _unescape(rest, "\\n")
        elif rest.strip() in _TYPES:
            entry[0] = _TYPES[rest.strip()]
        else:
            raise _LineError(f"invalid metric type {rest.strip()!r}")


def decode_text(body: bytes, default_ts_ms: int) -> SampleBatch:
    """Decode an exposition-format body; raises ``IngestRejected`` naming the line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IngestRejected(f"invalid UTF-8 at byte {err.start}", "utf8") from err
    col = _Collector(default_ts_ms)
    for no, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").lstrip(" \t")
        if not line:
            continue
        try:
            col.comment(line) if line.startswith("#") else col.sample(line)
        except _LineError as err:
            raise IngestRejected(f"line {no}: {err}: {raw[:200]!r}", "text") from err
        except IngestRejected as err:
            raise IngestRejected(f"line {no}: {err.message}", err.reason) from err
    metadata = [MetricMetadata(n, t, h) for n, (t, h) in col.meta.items()]
    return make_batch(
        list(col.index),
        np.array(col.sample_series, dtype=np.int64),
        np.array(col.timestamps, dtype=np.int64),
        np.array(col.values, dtype=np.float64),
        metadata=metadata,
    )
