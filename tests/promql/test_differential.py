"""Differential test: Tidemark's parser against the Rust ``promql-parser`` (test oracle only).

For every ``eval`` expression of the shared promqltest files that needs no experimental syntax
and for Tidemark's own corpus, both parsers must agree on valid/invalid and, when valid, on the
AST (which fixes the printed form). Disagreements must be listed, with their reason, in
``data/known_differences.txt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from promql import ParseError, format, parse
from tests.promql.rust_oracle import OracleError, rust_parse

DATA = Path(__file__).parent / "data"
TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "promql-testdata"
_EVAL = re.compile(
    r"^\s*eval(?:_\w+)?\s+(?:instant\s+at\s+\S+|range\s+from\s+\S+\s+to\s+\S+\s+step\s+\S+)"
    r"\s+(?P<expr>.*?)\s*$"
)
_EXPERIMENTAL_MARKERS = ("not enabled", "is experimental")


@dataclass(frozen=True)
class Outcome:
    agreed: int
    experimental: int
    disagreements: dict[str, str]


@dataclass(frozen=True)
class KnownDifferences:
    exact: dict[str, str]
    patterns: dict[re.Pattern[str], str]

    def explains(self, query: str) -> bool:
        return query in self.exact or any(p.search(query) for p in self.patterns)


def _known_differences() -> KnownDifferences:
    exact: dict[str, str] = {}
    patterns: dict[re.Pattern[str], str] = {}
    for line in (DATA / "known_differences.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        query, _, reason = line.partition("\t")
        assert reason, f"known difference without a reason: {query!r}"
        if query.startswith("re:"):
            patterns[re.compile(query[3:])] = reason
        else:
            exact[query] = reason
    return KnownDifferences(exact, patterns)


def _eval_expressions() -> list[str]:
    queries = []
    for path in sorted(TESTDATA.glob("*.test")):
        for line in path.read_text().splitlines():
            match = _EVAL.match(line)
            if match:
                queries.append(match.group("expr"))
    return queries


def _corpus() -> list[str]:
    lines = (DATA / "corpus.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("# ")]


def _compare(queries: list[str]) -> Outcome:
    agreed = experimental = 0
    disagreements: dict[str, str] = {}
    for query in queries:
        try:
            mine, mine_error = parse(query), None
        except ParseError as exc:
            mine, mine_error = None, str(exc)
            if any(marker in exc.detail for marker in _EXPERIMENTAL_MARKERS):
                experimental += 1
                continue
        try:
            theirs, their_error = rust_parse(query), None
        except OracleError as exc:
            theirs, their_error = None, str(exc)
        if (mine is None and theirs is None) or (mine is not None and mine == theirs):
            agreed += 1
            continue
        ours = mine_error or format(mine)
        other = their_error or format(theirs)
        disagreements[query] = f"tidemark: {ours} | rust: {other}"
    return Outcome(agreed, experimental, disagreements)


def _assert_documented(outcome: Outcome, queries: list[str]) -> None:
    known = _known_differences()
    undocumented = {q: d for q, d in outcome.disagreements.items() if not known.explains(q)}
    assert not undocumented, "undocumented disagreements:\n" + "\n".join(
        f"{q!r}: {d}" for q, d in undocumented.items()
    )
    asked = set(queries)
    stale = [q for q in known.exact if q in asked and q not in outcome.disagreements]
    assert not stale, f"known differences that no longer disagree: {stale}"


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="shared promqltest data not present")
def test_parsers_agree_on_every_stable_promqltest_eval_expression() -> None:
    queries = _eval_expressions()
    assert len(queries) > 1000  # the shared data really was read
    outcome = _compare(queries)
    _assert_documented(outcome, queries)
    assert outcome.agreed > 1500


def test_parsers_agree_on_the_tidemark_corpus() -> None:
    queries = _corpus()
    assert len(queries) >= 300
    outcome = _compare(queries)
    _assert_documented(outcome, queries)


def test_corpus_holds_both_valid_and_invalid_queries() -> None:
    valid = invalid = 0
    for query in _corpus():
        try:
            parse(query)
            valid += 1
        except ParseError:
            invalid += 1
    assert valid >= 150
    assert invalid >= 150
