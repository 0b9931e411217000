"""The pure-Python XXH64 behind ``limit_ratio`` against the reference test vectors."""

from __future__ import annotations

import pytest

from planner.xxhash64 import labels_hash, xxh64


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", 0xEF46DB3751D8E999),
        (b"a", 0xD24EC4F1A98C6E5B),
        (b"abc", 0x44BC2CF5AD770999),
        (b"Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1),
    ],
)
def test_xxh64_matches_reference_vectors(data, expected):
    assert xxh64(data) == expected


def test_labels_hash_uses_prometheus_separators():
    assert labels_hash((("a", "b"),)) == xxh64(b"a\xffb\xff")
