"""Parser for Prometheus' ``promqltest`` DSL (the ``*.test`` files of the conformance corpus).

Follows ``promql/promqltest/test.go`` of Prometheus 3 (commit named in the corpus' NOTICE.md):
lines are trimmed, ``#`` lines are blank, a command's block ends at the first blank line. Only
the file format lives here; loading and evaluation are in ``runner.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storage.model import STALE_NAN, Labels, make_labels
from tests.conformance.lexing import go_unquote, parse_duration_ms, parse_go_number

# Upstream's command patterns (test.go: patLoad, patEvalInstant, patEvalRange, patExpect...).
_PAT_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
_PAT_EVAL_INSTANT = re.compile(
    r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$"
)
_PAT_EVAL_RANGE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_PAT_EXPECT = re.compile(
    r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$"
)
_PAT_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_EXPECT_STRING = "expect string"

# No hex here: in series descriptions ``0x10`` is ``0`` repeated (upstream lexes ``x`` as TIMES).
_UNUM = r"(?:[iI][nN][fF]|[nN][aA][nN]|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
_NUM = rf"[+-]?{_UNUM}"
_PAT_ITEM = re.compile(rf"^({_NUM})(?:([+-])({_UNUM}))?(?:x(\d+))?$")
_PAT_BLANKS = re.compile(r"^_(?:x(\d+))?$")
_PAT_STALE = re.compile(r"^stale(?:x(\d+))?$")
_PAT_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PAT_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PAT_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


class DslError(ValueError):
    """A malformed test file line (the runner reports the whole file as failed)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


Value = float | None
"""One step of a series description: a float (stale markers bit-exact) or None for ``_``."""


@dataclass(frozen=True)
class SeriesDesc:
    """``metric{labels} values``; ``histogram`` when values use native histogram ``{{...}}``."""

    labels: Labels
    values: tuple[Value, ...]
    histogram: bool = False
    start_timestamps: bool = False  # a preceding ``metric@st`` line (experimental)


@dataclass(frozen=True)
class LoadCmd:
    line: int
    interval_ms: int
    series: tuple[SeriesDesc, ...]
    with_nhcb: bool = False
    start_timestamps: bool = False  # any ``@st`` line in the block


@dataclass(frozen=True)
class ClearCmd:
    line: int


@dataclass(frozen=True)
class Expectation:
    """``expect <kind> [msg: <exact> | regex: <re>]``; neither set means "any message"."""

    kind: str  # ordered fail warn no_warn info no_info
    message: str | None = None
    regex: str | None = None

    def matches(self, text: str) -> bool:
        if self.message is not None:
            return text == self.message
        if self.regex is not None:
            return re.search(self.regex, text) is not None
        return True


@dataclass(frozen=True)
class ExpectedSeries:
    labels: Labels
    values: tuple[Value, ...]
    pos: int  # 1-based position among result lines (for ``ordered``)


@dataclass(frozen=True)
class EvalCmd:
    """One ``eval`` with everything its block says about the expected outcome."""

    line: int
    expr: str
    is_range: bool
    start_ms: int
    end_ms: int
    step_ms: int
    eval_ms: int
    legacy: str = ""  # eval_fail / eval_warn / eval_ordered / eval_info suffix
    expects: tuple[Expectation, ...] = ()
    fail_message: str | None = None  # old ``expected_fail_message``
    fail_regexp: str | None = None  # old ``expected_fail_regexp``
    scalar: float | None = None
    series: tuple[ExpectedSeries, ...] = ()
    string: str | None = None
    range_vector: bool = False
    exclude_from_range: bool = False
    histogram_values: bool = False  # the expected output contains native histograms

    def of_kind(self, kind: str) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expects if e.kind == kind)

    @property
    def ordered(self) -> bool:
        return self.legacy == "ordered" or bool(self.of_kind("ordered"))

    @property
    def fail(self) -> bool:
        return self.legacy == "fail" or bool(self.of_kind("fail"))


Command = LoadCmd | ClearCmd | EvalCmd


@dataclass
class _EvalBuilder:
    expects: list[Expectation] = field(default_factory=list)
    series: list[ExpectedSeries] = field(default_factory=list)


def parse_file(text: str) -> list[Command]:
    """Parse a whole ``.test`` file into commands (raises ``DslError``)."""
    lines = [_clean(raw) for raw in text.split("\n")]
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        word = re.split(r"[\t ]+", line, maxsplit=1)[0].lower()
        if word == "clear":
            commands.append(ClearCmd(i + 1))
            i += 1
        elif word.startswith("load"):
            i, cmd = _parse_load(lines, i)
            commands.append(cmd)
        elif word.startswith("eval"):
            i, cmd = _parse_eval(lines, i)
            commands.append(cmd)
        else:
            raise DslError(i + 1, f"invalid command {line!r}")
    return commands


def _clean(raw: str) -> str:
    line = raw.strip()
    return "" if line.startswith("#") else line


def _block(lines: list[str], i: int) -> tuple[int, list[tuple[int, str]]]:
    """The non-blank lines after line ``i``; returns the index after the block."""
    out: list[tuple[int, str]] = []
    j = i + 1
    while j < len(lines) and lines[j]:
        out.append((j + 1, lines[j]))
        j += 1
    return j, out


def _parse_load(lines: list[str], i: int) -> tuple[int, LoadCmd]:
    m = _PAT_LOAD.match(lines[i])
    if m is None:
        raise DslError(i + 1, "invalid load command")
    interval = parse_duration_ms(m.group(2))
    end, block = _block(lines, i)
    series: dict[Labels, SeriesDesc] = {}
    st_pending: Labels | None = None
    any_st = False
    for lineno, text in block:
        head = re.split(r"[ \t]", text, maxsplit=1)[0]
        if head.endswith("@st"):
            # Start timestamps (experimental): remember which series gets them; offsets unused.
            any_st = True
            metric = head[: -len("@st")]
            st_pending = parse_series_desc(metric + " _", lineno).labels if metric else None
            continue
        desc = parse_series_desc(text, lineno)
        if st_pending is not None and st_pending == desc.labels:
            desc = SeriesDesc(desc.labels, desc.values, desc.histogram, start_timestamps=True)
        st_pending = None
        # Upstream keys definitions by label hash: a later line for the same series replaces it.
        series[desc.labels] = desc
    return end, LoadCmd(i + 1, interval, tuple(series.values()), m.group(1) is not None, any_st)


def _parse_eval(lines: list[str], i: int) -> tuple[int, EvalCmd]:
    head = lines[i]
    mi = _PAT_EVAL_INSTANT.match(head)
    mr = _PAT_EVAL_RANGE.match(head)
    if mi is None and mr is None:
        raise DslError(i + 1, f"invalid evaluation command {head!r}")
    if mi is not None:
        at = parse_duration_ms(mi.group(2)) if mi.group(2) else 0
        legacy, expr = mi.group(1) or "", mi.group(3)
        start = end = at
        step = 0
        evaluation = at
    else:
        assert mr is not None
        legacy, expr = mr.group(1) or "", mr.group(5)
        start, end = parse_duration_ms(mr.group(2)), parse_duration_ms(mr.group(3))
        step = parse_duration_ms(mr.group(4))
        if end < start:
            raise DslError(i + 1, "end timestamp is before start timestamp")
        evaluation = start
    fields: dict[str, object] = {}
    builder = _EvalBuilder()
    block_end, block = _block(lines, i)
    for lineno, text in block:
        if legacy == "fail" and text.startswith("expected_fail_message"):
            fields["fail_message"] = text[len("expected_fail_message") :].strip()
            break
        if legacy == "fail" and text.startswith("expected_fail_regexp"):
            fields["fail_regexp"] = text[len("expected_fail_regexp") :].strip()
            break
        if text.startswith("expect range vector"):
            m = _PAT_EXPECT_RANGE.match(text)
            if m is None:
                raise DslError(lineno, f"invalid range vector definition {text!r}")
            start, end = parse_duration_ms(m.group(1)), parse_duration_ms(m.group(2))
            step = parse_duration_ms(m.group(3))
            evaluation = end
            fields.update(range_vector=True, exclude_from_range=True)
            continue
        if text.startswith(_EXPECT_STRING):
            literal = text[len(_EXPECT_STRING) :].strip()
            if not literal:
                raise DslError(lineno, "expected string literal not valid")
            fields.update(string=go_unquote(literal), exclude_from_range=True)
            continue
        if text.split(" ")[0] == "expect":
            builder.expects.append(_parse_expect(text, lineno))
            continue
        number = parse_go_number(text)
        if number is not None:
            fields["scalar"] = number
            break
        desc = parse_series_desc(text, lineno)
        if desc.histogram:
            fields["histogram_values"] = True
        elif len(desc.values) > 1 and mi is not None and not fields.get("range_vector"):
            raise DslError(lineno, "expecting multiple values in instant evaluation not allowed")
        builder.series.append(ExpectedSeries(desc.labels, desc.values, len(builder.series) + 1))
    cmd = EvalCmd(
        line=i + 1,
        expr=expr,
        is_range=mr is not None,
        start_ms=start,
        end_ms=end,
        step_ms=step,
        eval_ms=evaluation,
        legacy=legacy,
        expects=tuple(builder.expects),
        series=tuple(builder.series),
        **fields,  # type: ignore[arg-type]
    )
    return block_end, cmd


def _parse_expect(text: str, lineno: int) -> Expectation:
    m = _PAT_EXPECT.match(text.strip())
    if m is None:
        raise DslError(lineno, f"invalid expect statement {text!r}")
    kind, how, what = m.group(1), m.group(2), m.group(3)
    if how == "msg":
        return Expectation(kind, message=what.strip())
    if how == "regex":
        pattern = what.strip()
        try:
            re.compile(pattern)
        except re.error as exc:
            raise DslError(lineno, f"invalid regex {pattern} for {kind}") from exc
        return Expectation(kind, regex=pattern)
    return Expectation(kind)


# ---------------------------------------------------------------------------------------------
# Series descriptions: ``name{label="value", ...} v1 v2 ...``


def parse_series_desc(text: str, lineno: int = 0) -> SeriesDesc:
    """Parse one series description line (load data or expected result)."""
    pos = 0
    pairs: list[tuple[str, str]] = []
    m = _PAT_IDENT.match(text, pos)
    if m is not None:
        pairs.append(("__name__", m.group(0)))
        pos = m.end()
    if pos < len(text) and text[pos] == "{":
        pos = _parse_label_set(text, pos + 1, pairs, lineno)
    if pos == 0:
        raise DslError(lineno, f"invalid series description {text!r}")
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise DslError(lineno, f"duplicate label name in {text!r}")
    labels = make_labels(pairs)
    rest = text[pos:].strip()
    if "{{" in rest:
        return SeriesDesc(labels, (), histogram=True)
    return SeriesDesc(labels, parse_values(rest, lineno))


def _parse_label_set(text: str, pos: int, pairs: list[tuple[str, str]], lineno: int) -> int:
    """Parse ``label="value", ... }`` starting after ``{``; returns the index after ``}``."""
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            raise DslError(lineno, "unterminated label set")
        if text[pos] == "}":
            return pos + 1
        if text[pos] in "\"'`":
            s = _PAT_STRING.match(text, pos)
            if s is None:
                raise DslError(lineno, "unterminated string")
            name = go_unquote(s.group(0))
            pos = _skip_space(text, s.end())
            if pos < len(text) and text[pos] in ",}":
                # A lone quoted string inside braces is the metric name (Prometheus 3 UTF-8).
                pairs.append(("__name__", name))
                pos = pos + 1 if text[pos] == "," else pos
                continue
        else:
            n = _PAT_LABEL_NAME.match(text, pos)
            if n is None:
                raise DslError(lineno, f"invalid label name at {text[pos:]!r}")
            name = n.group(0)
            pos = _skip_space(text, n.end())
        if not text.startswith("=", pos):
            raise DslError(lineno, f"expected '=' at {text[pos:]!r}")
        pos = _skip_space(text, pos + 1)
        s = _PAT_STRING.match(text, pos)
        if s is None:
            raise DslError(lineno, f"expected label value at {text[pos:]!r}")
        pairs.append((name, go_unquote(s.group(0))))
        pos = _skip_space(text, s.end())
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def parse_values(text: str, lineno: int = 0) -> tuple[Value, ...]:
    """Expand a value sequence: ``a``, ``a+bxN``, ``a-bxN``, ``axN``, ``_``, ``_xN``, ``stale``."""
    out: list[Value] = []
    for item in text.split():
        blanks = _PAT_BLANKS.match(item)
        if blanks is not None:
            out.extend([None] * (int(blanks.group(1)) if blanks.group(1) else 1))
            continue
        stale = _PAT_STALE.match(item)
        if stale is not None:
            out.extend([STALE_NAN] * (int(stale.group(1)) + 1 if stale.group(1) else 1))
            continue
        m = _PAT_ITEM.match(item)
        if m is None:
            raise DslError(lineno, f"invalid sequence value {item!r}")
        base = _number(m.group(1))
        if m.group(4) is None:
            if m.group(2) is not None:
                raise DslError(lineno, f"missing repetition in {item!r}")
            out.append(base)
            continue
        times = int(m.group(4))
        delta = 0.0
        if m.group(2) is not None:
            delta = _number(m.group(3)) * (-1.0 if m.group(2) == "-" else 1.0)
        # Upstream adds the delta cumulatively (``$1 += $2``): keep the same rounding.
        value = base
        for _ in range(times + 1):
            out.append(value)
            value += delta
    return tuple(out)


def _number(token: str) -> float:
    return float(token)
