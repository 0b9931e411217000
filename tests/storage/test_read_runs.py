"""Reads as runs: blocks split into many chunks, head segments and the tail, merged by
``merge_runs``, must equal a brute-force "last write wins" over everything appended."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from promql.types import Matcher, MatchType
from storage import block as block_module
from storage import db as db_module
from storage.db import Storage, StorageOptions
from tests.storage.helpers import as_dict, batch, everything, lab

SERIES = [lab("m", i=str(i)) for i in range(7)]
WRITES = st.lists(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3000), st.integers(-3, 3)), max_size=9),
    min_size=1,
    max_size=25,
)


def reference(writes, mint: int, maxt: int) -> dict:
    last: dict = {}
    for request in writes:
        for s, t, v in request:
            if mint <= t <= maxt:
                last.setdefault(SERIES[s], {})[t] = np.float64(v).view(np.uint64).item()
    return {k: sorted(v.items()) for k, v in sorted(last.items())}


@settings(max_examples=40, deadline=None)
@given(
    WRITES, st.integers(-100, 3000), st.integers(0, 3200), st.sets(st.integers(0, 6)), st.booleans()
)
def test_select_over_many_chunk_blocks_head_and_tail_keeps_the_last_write(
    tmp_path_factory, writes, mint, width, wanted, search_tail
):
    # Tiny chunks, segments and blocks: every read crosses chunk, block and segment borders.
    opts = StorageOptions(
        block_duration_ms=500,
        head_freeze_samples=5,
        late_cut_interval_s=0.0,
        background_maintenance=False,
        compaction_levels=1,
    )
    chunk_rows, few_ids = block_module.CHUNK_ROWS, db_module._FEW_IDS
    block_module.CHUNK_ROWS = 3
    db_module._FEW_IDS = 0 if search_tail else few_ids  # both ways of filtering the tail
    db = Storage.open(tmp_path_factory.mktemp("db"), opts)
    try:
        for request in writes:
            db.append(batch([(SERIES[s], t, float(v)) for s, t, v in request]))
        maxt = mint + width
        assert as_dict(everything(db, mint, maxt)) == reference(writes, mint, maxt)
        some = Matcher(MatchType.REGEX, "i", "|".join(str(i) for i in sorted(wanted)) or "x")
        expected = reference(writes, mint, maxt)
        expected = {k: v for k, v in expected.items() if int(dict(k)["i"]) in wanted}
        assert as_dict(db.select([some], mint, maxt)) == expected
        times = [t for request in writes for _, t, _ in request]
        if times and max(times) - min(times) >= 750:  # the head spanned 1.5 blocks: cut
            assert db.stats()["blocks"] > 0
    finally:
        db.close()
        block_module.CHUNK_ROWS, db_module._FEW_IDS = chunk_rows, few_ids
