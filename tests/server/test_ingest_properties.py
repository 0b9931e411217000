"""Any arrival order, batching and ingest format of the same samples stores the same data."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.payloads import RW_HEADERS, snappy, write_request

_ids = itertools.count()

samples_strategy = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 50)),  # (series, ts seconds)
    st.floats(allow_nan=False, allow_infinity=True, width=64),
    min_size=1,
    max_size=40,
)


def _send(client, fmt: str, name: str, chunk: list[tuple[tuple[str, int], float]]) -> None:
    if fmt == "remote_write":
        series = [([("__name__", name), ("s", s)], [(t * 1000, v)]) for (s, t), v in chunk]
        reply = client.post("/api/v1/write", snappy(write_request(series)), RW_HEADERS)
    elif fmt == "json":
        lines = [
            orjson.dumps(
                {
                    "metric": {"__name__": name, "s": s},
                    "values": [v if v == v and abs(v) != float("inf") else str(v)],
                    "timestamps": [t * 1000],
                }
            )
            .replace(b'"inf"', b'"Infinity"')
            .replace(b'"-inf"', b'"-Infinity"')
            for (s, t), v in chunk
        ]
        reply = client.post("/api/v1/import", b"\n".join(lines))
    else:
        text = "".join(f'{name}{{s="{s}"}} {v!r} {t * 1000}\n' for (s, t), v in chunk)
        text = text.replace(" inf ", " +Inf ").replace(" -inf ", " -Inf ")
        reply = client.post("/api/v1/import/prometheus", text.encode())
    assert reply.status == 204, reply.body


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(samples=samples_strategy, data=st.data())
def test_order_batching_and_format_do_not_change_what_is_stored(server, samples, data):
    client, _ = server
    name = f"prop_{next(_ids)}"
    items = data.draw(st.permutations(list(samples.items())))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=4)))
    bounds = [0, *cuts, len(items)]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            fmt = data.draw(st.sampled_from(["remote_write", "json", "text"]))
            _send(client, fmt, name, items[lo:hi])
    exported = client.get("/api/v1/export", [("match[]", name)]).body
    got = {}
    for line in exported.splitlines():
        doc = orjson.loads(line)
        for t, v in zip(doc["timestamps"], doc["values"], strict=True):
            value = {"Infinity": float("inf"), "-Infinity": float("-inf")}.get(v, v)
            got[(doc["metric"]["s"], t // 1000)] = value
    assert got == samples
