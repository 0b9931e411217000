"""``label_replace`` and ``label_join`` on one label set (``storage.model.Labels``).

Semantics of ``evalLabelReplace`` / ``evalLabelJoin`` in Prometheus ``promql/functions.go``
(main 2026): the regex is RE2, fully anchored as ``^(?s:re)$``; the replacement is expanded as
Go's ``Regexp.ExpandString`` (``$1``, ``${1}``, ``$name``, ``$$``; ``$1x`` names group ``1x``);
an empty result removes the destination label; label names are valid when non-empty UTF-8.
Errors use upstream's wording. Callers cache compiled regexes with ``compile_label_regex``
(one compile per query, not per series); merging series that end up with equal label sets is
the planner's job.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import re2

from promql.errors import ExecutionError
from storage.model import Labels

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors are reported to the user, not to stderr


def is_valid_label_name(name: str) -> bool:
    """``model.UTF8Validation.IsValidLabelName``: non-empty, valid UTF-8."""
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates stand for invalid bytes
        return False
    return True


@lru_cache(maxsize=256)
def compile_label_regex(regex: str) -> re2._Regexp:
    try:
        return re2.compile("^(?s:" + regex + ")$", _OPTIONS)
    except re2.error as err:
        raise ExecutionError(f"invalid regular expression in label_replace(): {regex}") from err


def _set(labels: Labels, name: str, value: str) -> Labels:
    kept = [(k, v) for k, v in labels if k != name]
    if value != "":
        kept.append((name, value))
    return tuple(sorted(kept))


def _get(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def _is_name_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat.startswith("L") or cat == "Nd" or ch == "_"


def _extract(template: str) -> tuple[str, int, str] | None:
    """Go's ``regexp.extract``: ``(name, num, rest)``; ``num`` -1 for a non-numeric name."""
    brace = template.startswith("{")
    s = template[1:] if brace else template
    i = 0
    while i < len(s) and _is_name_char(s[i]):
        i += 1
    if i == 0:
        return None
    name = s[:i]
    if brace:
        if i >= len(s) or s[i] != "}":
            return None
        i += 1
    num = int(name) if name.isascii() and name.isdigit() and len(name) <= 8 else -1
    if len(name) > 1 and name[0] == "0":
        num = -1
    return name, num, s[i:]


def expand(template: str, src: str, match: re2._Match, regex: re2._Regexp) -> str:
    """Go ``Regexp.ExpandString`` for one match."""
    out: list[str] = []
    while template:
        before, sep, after = template.partition("$")
        if not sep:
            break
        out.append(before)
        template = after
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        parsed = _extract(template)
        if parsed is None:
            out.append("$")  # malformed reference: the dollar is literal text
            continue
        name, num, template = parsed
        group = num if num >= 0 else regex.groupindex.get(name, -1)
        if 0 <= group <= regex.groups:
            start, end = match.span(group)
            if start >= 0:
                out.append(src[start:end])
    out.append(template)
    return "".join(out)


def label_replace(labels: Labels, dst: str, replacement: str, src: str, regex: str) -> Labels:
    compiled = compile_label_regex(regex)
    if not is_valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_replace(): {dst}")
    value = _get(labels, src)
    match = compiled.search(value)
    if match is None:  # only replace when the regex matches
        return labels
    return _set(labels, dst, expand(replacement, value, match, compiled))


def label_join(labels: Labels, dst: str, sep: str, *srcs: str) -> Labels:
    for s in srcs:
        if not is_valid_label_name(s):
            raise ExecutionError(f"invalid source label name in label_join(): {s}")
    if not is_valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_join(): {dst}")
    return _set(labels, dst, sep.join(_get(labels, s) for s in srcs))
