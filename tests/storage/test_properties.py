"""Property: any arrival order and batching of the same samples stores the same data."""

from __future__ import annotations

import itertools
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promql.types import Matcher, MatchType
from storage.db import Storage, StorageOptions
from storage.index import matcher_matches
from storage.model import STALE_NAN
from tests.storage.helpers import as_dict, batch, everything, lab

SERIES = [lab("m", i=str(k)) for k in range(4)] + [lab("other")]
VALUES = st.one_of(st.floats(allow_nan=False, width=64), st.just(STALE_NAN), st.just(float("nan")))
SAMPLES = st.lists(
    st.tuples(st.sampled_from(SERIES), st.integers(0, 5000), VALUES), min_size=1, max_size=120
)


def expected(rows) -> dict:
    """Reference semantics: last written value per (series, ts), series and times sorted."""
    last: dict = {}
    for labels, t, v in rows:
        last[(labels, t)] = np.float64(v).view(np.uint64).item()
    out: dict = {}
    for labels, t in sorted(last):
        out.setdefault(labels, []).append((t, last[(labels, t)]))
    return out


def store(rows, cuts, tmp: str, reopen: bool) -> dict:
    options = StorageOptions(
        block_duration_ms=700,
        head_freeze_samples=8,
        late_cut_interval_s=0,
        background_maintenance=False,
    )
    db = Storage.open(tmp, options)
    bounds = sorted({0, len(rows), *(c % (len(rows) + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            db.append(batch(rows[lo:hi]))
    if reopen:
        db.close()
        db = Storage.open(tmp, options)
    got = as_dict(everything(db))
    db.close()
    return got


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=SAMPLES,
    data=st.data(),
    cuts=st.lists(st.integers(0, 200), max_size=6),
    reopen=st.booleans(),
)
def test_arrival_order_and_batching_do_not_change_what_is_stored(rows, data, cuts, reopen):
    # Unique (series, ts) keys: with duplicates the arrival order legitimately decides the value.
    unique = list({(r[0], r[1]): r for r in rows}.values())
    shuffled = data.draw(st.permutations(unique))
    with tempfile.TemporaryDirectory() as tmp:
        assert store(shuffled, cuts, tmp, reopen) == expected(unique)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=SAMPLES, cuts=st.lists(st.integers(0, 200), max_size=6), reopen=st.booleans())
def test_duplicates_resolve_to_the_last_written_value_across_head_blocks_and_replay(
    rows, cuts, reopen
):
    with tempfile.TemporaryDirectory() as tmp:
        assert store(rows, cuts, tmp, reopen) == expected(rows)


MATCHERS = st.lists(
    st.builds(
        Matcher,
        st.sampled_from(list(MatchType)),
        st.sampled_from(["__name__", "i", "absent"]),
        st.sampled_from(["m", "other", "", "1", "[02]", ".*", ".+", "1|3", "o.*"]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=SAMPLES,
    matchers=MATCHERS,
    window=st.tuples(st.integers(-100, 5100), st.integers(0, 5000)),
)
def test_select_equals_brute_force_filtering_across_head_and_blocks(rows, matchers, window):
    if all(matcher_matches(m, "") for m in matchers):
        matchers = [*matchers, Matcher(MatchType.REGEX, "__name__", ".+")]
    mint, maxt = window[0], window[0] + window[1]
    want = {
        labels: [(t, b) for t, b in samples if mint <= t <= maxt]
        for labels, samples in expected(rows).items()
        if all(matcher_matches(m, dict(labels).get(m.name, "")) for m in matchers)
    }
    want = {k: v for k, v in want.items() if v}
    with tempfile.TemporaryDirectory() as tmp:
        options = StorageOptions(
            block_duration_ms=700, head_freeze_samples=8, background_maintenance=False
        )
        db = Storage.open(tmp, options)
        for lo in range(0, len(rows), 25):
            db.append(batch(rows[lo : lo + 25]))
        s = db.select(matchers, mint, maxt)
        assert as_dict(s) == want
        assert s.labels == sorted(s.labels)
        # series() judges overlap by per-series bounds (as Prometheus does by chunk), so it may
        # add a series whose samples straddle the window; it never misses one.
        listed = db.series([matchers], mint, maxt)
        assert set(want) <= set(listed)
        matching = {
            k
            for k in expected(rows)
            if all(matcher_matches(m, dict(k).get(m.name, "")) for m in matchers)
        }
        assert set(listed) <= matching and listed == sorted(listed)
        db.close()
