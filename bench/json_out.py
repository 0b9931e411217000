"""Range-query JSON bodies: time to build the whole response body, by stage, and to send it.

    .venv/bin/python bench/json_out.py [--repeat 7] [--no-send]

Data: ``bench/sketch.py``'s 1000-step answer shape, 1,220 series x 1,000 points (1.22 M) of
random floats x1000 and of integer-valued floats, 100 series x 1,000 points (100 k), and
100,000 series x 12 points (per-series costs), on a 20 s grid of epoch-millisecond timestamps.
``body`` is ``result_body(..).close(stats, tail)``: the whole envelope as the server sends it.
The stage columns time ``server.json_matrix``'s parts alone: ``values`` (classification, then
orjson's float writer for the values that are neither whole nor odd), ``timestamps`` (grid and
texts), ``assemble`` (the copy loop, on a buffer already faulted in). ``send``: a local aiohttp
server answering a GET with that body (``_json_response``) and an aiohttp client reading it (no
gzip), vs the same body as ``bytes`` (the old path: aiohttp joins headers and body into one more
copy, and asyncio's transport slices the unsent rest of ``bytes`` once more). Each cell is the
best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner.result import QueryResult, SeriesResult
from promql.types import ValueType
from server import json_matrix
from server.allocator import tune_allocator
from server.format import envelope_tail, result_body
from storage.model import make_labels

STATS = b',"stats":{"timings":{"evalTotalTime":0.074,"execQueueTime":0.00001}}'


def dataset(n_series: int, n_steps: int, whole: bool, seed: int = 1) -> list[SeriesResult]:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000_000 + np.arange(n_steps, dtype=np.int64) * 20_000
    values = rng.random((n_series, n_steps)) * 1000
    if whole:
        values = np.round(values)
    return [
        SeriesResult(make_labels({"__name__": "x", "l": f"l{i % 10}", "instance": f"h{i}"}), ts, v)
        for i, v in enumerate(values)
    ]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def body(rows: list[SeriesResult]) -> memoryview:
    tail = envelope_tail(None, None)
    open_body = result_body(QueryResult(ValueType.MATRIX, rows), room=len(tail) + 1024)
    return open_body.close(STATS, tail)


def stages(rows: list[SeriesResult], repeat: int) -> dict[str, float]:
    ts = np.concatenate([s.timestamps for s in rows])
    vs = np.concatenate([s.values for s in rows])
    captured: dict[str, tuple] = {}
    assemble = json_matrix._assemble

    def capture(*args: object) -> int:
        captured["args"] = args
        return assemble(*args)

    json_matrix._assemble = capture
    try:
        body(rows)
    finally:
        json_matrix._assemble = assemble
    args = captured["args"]
    return {
        "body": best(lambda: body(rows), repeat),
        "values": best(lambda: json_matrix.value_texts(vs), repeat),
        "timestamps": best(lambda: json_matrix.timestamp_texts(ts), repeat),
        "assemble": best(lambda: assemble(*args), repeat),
    }


async def _send(payload: memoryview | bytes, repeat: int) -> float:
    from aiohttp import ClientSession, web

    from server.routes_query import _json_response

    async def handler(request: web.Request) -> web.StreamResponse:
        return _json_response(request, payload)

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/"
    times = []
    async with ClientSession() as http:
        for _ in range(repeat):
            t0 = time.perf_counter()
            async with http.get(url, headers={"Accept-Encoding": "identity"}) as resp:
                got = await resp.read()
            times.append(time.perf_counter() - t0)
            assert len(got) == len(payload)
    await runner.cleanup()
    return min(times) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-send", action="store_true")
    args = ap.parse_args(argv)
    tune_allocator()  # as `tidemark serve` does
    json_matrix.warm_up()
    cases = [
        ("1.22M random floats", dataset(1220, 1000, whole=False)),
        ("1.22M integer floats", dataset(1220, 1000, whole=True)),
        ("100k random floats", dataset(100, 1000, whole=False)),
        ("100k series x 12", dataset(100_000, 12, whole=False)),
    ]
    cols = ["body", "values", "timestamps", "assemble"]
    if not args.no_send:
        cols += ["send view", "send bytes"]
    print(f"{'case':22s} {'MB':>6s} " + " ".join(f"{c:>11s}" for c in cols) + "   (ms)")
    for name, rows in cases:
        row = stages(rows, args.repeat)
        sent = body(rows)
        if not args.no_send:
            row["send view"] = asyncio.run(_send(sent, args.repeat))
            row["send bytes"] = asyncio.run(_send(bytes(sent), args.repeat))
        cells = " ".join(f"{row[c]:11.1f}" for c in cols)
        print(f"{name:22s} {sent.nbytes / 1e6:6.1f} {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
