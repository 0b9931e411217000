"""A small seeded run of the PromQL fuzzer (``fuzz.py``): generated queries, Tidemark vs 2.42.

The full campaign is ``python -m tests.compat.fuzz --n 2000 --seed S``; this keeps a few hundred
fixed expressions in the suite so a regression in any corner they reach shows up here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.conftest import Peers
from tests.compat.fuzz import known_difference, run, running_peers
from tests.compat.fuzz_gen import Generator
from tests.compat.fuzz_vocab import shrink_candidates
from tests.compat.peer import missing_reason

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def fuzz_peers() -> Iterator[Peers]:
    """Both engines on the compat data set plus ``odd_values`` (NaN, Inf, extremes)."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with running_peers() as peers:
        yield peers


def test_generated_queries_agree_with_prometheus(fuzz_peers: Peers) -> None:
    peers = fuzz_peers
    stats, findings = run(peers, n=300, seed=20261122, do_shrink=True)
    report = "\n".join(f"{f.shrunk}\n  {f.query}\n  {f.problem}" for f in findings)
    assert not findings, report
    # Guards against a generator that drifted into comparing errors or empty results only.
    assert stats["ok"] >= stats["expressions"], stats


def test_the_generator_is_deterministic_per_seed() -> None:
    gen_a, gen_b = Generator(5), Generator(5)
    a = [gen_a.expression().render() for _ in range(50)]
    b = [gen_b.expression().render() for _ in range(50)]
    assert a == b
    assert len(set(a)) > 40


def test_shrink_candidates_are_smaller_and_of_the_same_type() -> None:
    gen = Generator(11)
    for _ in range(50):
        node = gen.expression()
        for cand in shrink_candidates(node):
            assert cand.typ == node.typ
            assert cand.size() < node.size()


def test_known_differences_are_recognized_narrowly() -> None:
    many = (
        "we failed: execution: multiple matches for labels: many-to-one matching must be explicit"
    )
    assert known_difference("(a > on() b)", many) == "filter-cardinality"
    assert known_difference("(a > bool on() b)", many) is None
    assert known_difference("(a + on() b)", many) is None
    assert known_difference("((1 > bool a) > on() b)", many) == "filter-cardinality"
    assert known_difference("avg(x) / 0", "{} at 1.25: ours nan theirs -inf") == "cancellation"
    residue = "{'job': 'x'} at 1.25: ours 0.0 theirs -1.1102230246251565e-16"
    assert known_difference("avg_over_time(x[1m])", residue) == "cancellation"
    assert known_difference("sum_over_time(x[1m])", residue) is None
    assert known_difference("avg(x)", "{} at 1.25: ours 0.0 theirs 0.5") is None
    dup = "Prometheus failed (vector cannot contain metrics with the same labelset), we answered"
    assert known_difference("-(a or ignoring() b offset 30s)", dup) == "negation-merge"
    assert known_difference("abs(a - b)", dup) is None
    assert known_difference('label_replace(a, "x", "$1", "y", "a-z")', dup) is None
    assert known_difference("-(a or b)", "Prometheus failed (other), we answered") is None
    ours = "we failed: execution: vector cannot contain metrics with the same labelset"
    assert known_difference('sum(1 atan2 {__name__=~"a|b"})', ours) == "atan2-name"
    assert known_difference('sum(1 + {__name__=~"a|b"})', ours) is None
    assert known_difference('sum(a{x=" atan2 "} + b)', ours) is None
