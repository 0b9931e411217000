"""Ingest endpoints: remote write, VictoriaMetrics JSON-lines import, text exposition import.

Each request is decoded and appended in the ingest thread pool (never on the event loop), and is
answered only after ``Storage.append`` returned, i.e. after the batch is in the WAL (and fsynced
when configured) and the listeners ran. Any error rejects the whole request and stores nothing:
decoders build the complete batch before ``append``, which validates it fully before writing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from promql.errors import BadDataError, TidemarkError, UnavailableError
from server.body import read_body
from server.compression import decompress
from server.config import CONFIG, INGEST_POOL, metrics_of, storage_of
from server.decode_remote_write import RemoteWriteDecoder
from server.decode_remote_write_v2 import DecodedV2, RemoteWriteV2Decoder
from server.decode_text import decode_text
from server.decode_vm_import import decode_vm_import
from server.errors import REJECT_HOOK, IngestRejected, UnsupportedMediaTypeError, error_response
from server.remote_v2_pb import MESSAGE_NAME as V2_MESSAGE
from server.timeparse import time_param
from storage.model import SampleBatch

_PROTOBUF_TYPES = ("", "application/x-protobuf", "application/octet-stream")
DECODER = web.AppKey("tidemark_rw_decoder", RemoteWriteDecoder)
DECODER_V2 = web.AppKey("tidemark_rw2_decoder", RemoteWriteV2Decoder)
V1_MESSAGE = "prometheus.WriteRequest"
WRITTEN_HEADERS = (
    "X-Prometheus-Remote-Write-Samples-Written",
    "X-Prometheus-Remote-Write-Histograms-Written",
    "X-Prometheus-Remote-Write-Exemplars-Written",
)
INFLIGHT = web.AppKey("tidemark_ingest_inflight", list)
"""One-element list: ingest requests in progress (only touched on the event loop)."""


def _media_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


async def _ingest(request: web.Request, fmt: str, decode: Callable[[bytes], SampleBatch]) -> int:
    """Read the body, then decode + append in the ingest pool; returns the sample count."""
    inflight = request.app[INFLIGHT]
    if inflight[0] >= request.app[CONFIG].max_inflight_ingest:
        raise UnavailableError("too many concurrent ingest requests; retry later")
    inflight[0] += 1
    try:
        return await _ingest_one(request, fmt, decode)
    finally:
        inflight[0] -= 1


async def _ingest_one(
    request: web.Request, fmt: str, decode: Callable[[bytes], SampleBatch]
) -> int:
    config = request.app[CONFIG]
    body = await read_body(request, config.max_body_bytes)
    storage = storage_of(request.app)

    def work() -> int:
        batch = decode(body)
        try:
            storage.append(batch)
        except BadDataError as err:
            if isinstance(err, IngestRejected):
                raise
            raise IngestRejected(err.message, "storage_validation") from err
        return len(batch)

    loop = asyncio.get_running_loop()
    n = await loop.run_in_executor(request.app[INGEST_POOL], work)
    metrics_of(request.app).ingested(fmt, n, len(body))
    return n


def _encoding(request: web.Request, default: str) -> str:
    return request.headers.get("Content-Encoding", default) or default


def _proto_message(request: web.Request) -> str:
    """The remote write message a Content-Type names (RFC 9110 parameters; 1.0 when absent)."""
    media = _media_type(request)
    if media not in _PROTOBUF_TYPES:
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {media!r} for remote write (want application/x-protobuf)"
        )
    for param in request.headers.get("Content-Type", "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "proto":
            proto = value.strip().strip('"')
            if proto not in (V1_MESSAGE, V2_MESSAGE):
                raise UnsupportedMediaTypeError(
                    f"unsupported remote write message {proto!r}: Tidemark accepts "
                    f"{V1_MESSAGE} (remote write 1.0) and {V2_MESSAGE} (remote write 2.0)"
                )
            return proto
    return V1_MESSAGE


async def remote_write(request: web.Request) -> web.StreamResponse:
    """Prometheus remote write 1.0 or 2.0 by Content-Type; snappy (or zstd, as vmagent sends)."""
    message = _proto_message(request)
    encoding = _encoding(request, "snappy")
    limit = request.app[CONFIG].max_decompressed_bytes
    if message == V2_MESSAGE:
        return await _remote_write_v2(request, encoding, limit)
    decoder = request.app[DECODER]
    # No written-count headers for 1.0: Prometheus 3 senders read them even on 1.0 replies and
    # would count the exemplars and histograms 1.0 skips as failed writes (Prometheus' own
    # receiver stopped sending them for 1.0 in 3.8.1 for that reason).
    await _ingest(request, "remote_write", lambda b: decoder.decode(decompress(b, encoding, limit)))
    return web.Response(status=204)


def _show(labels: tuple[tuple[str, str], ...]) -> str:
    return "{" + ", ".join(f"{name}={value!r}" for name, value in labels) + "}"


async def _remote_write_v2(request: web.Request, encoding: str, limit: int) -> web.StreamResponse:
    """Remote write 2.0: 204 with the written counts, or the error with them (spec: always).

    Native histogram samples are not stored: their float samples are, and the request is then
    answered 400 (a partial write in the spec's terms: the sender must not retry it), with
    ``...-Histograms-Written: 0`` and the reason. Exemplars are accepted and discarded.
    """
    decoder = request.app[DECODER_V2]
    decoded: list[DecodedV2] = []

    def decode(body: bytes) -> SampleBatch:
        decoded.append(decoder.decode(decompress(body, encoding, limit)))
        return decoded[0].batch

    written = (0, 0, 0)
    try:
        n = await _ingest(request, "remote_write_v2", decode)
        got = decoded[0]
        decoder.metadata_stored(got)
        written = (n, 0, got.exemplars)
        if got.histograms:
            raise IngestRejected(
                f"{got.histograms} native histogram samples were not written (the first in "
                f"series {_show(got.histogram_series or ())}): Tidemark does not store native "
                f"histograms; {n} float samples were written",
                "native_histograms",
            )
    except TidemarkError as err:
        # Rendered here rather than by the middleware: the spec wants the counts on errors too.
        hook = request.app.get(REJECT_HOOK)
        if hook is not None:
            hook(request, err)  # type: ignore[operator]
        response = error_response(err)
    else:
        response = web.Response(status=204)
    for name, value in zip(WRITTEN_HEADERS, written, strict=True):
        response.headers[name] = str(value)
    return response


async def vm_import(request: web.Request) -> web.Response:
    """VictoriaMetrics ``/api/v1/import``: JSON lines, or a protobuf WriteRequest by Content-Type."""
    limit = request.app[CONFIG].max_decompressed_bytes
    if _media_type(request) == "application/x-protobuf":
        encoding = _encoding(request, "snappy")
        decoder = request.app[DECODER]
        await _ingest(
            request, "import_protobuf", lambda b: decoder.decode(decompress(b, encoding, limit))
        )
    else:
        encoding = _encoding(request, "identity")
        await _ingest(
            request, "import_json", lambda b: decode_vm_import(decompress(b, encoding, limit))
        )
    return web.Response(status=204)


async def text_import(request: web.Request) -> web.Response:
    """Prometheus text exposition; samples without a timestamp get the arrival time."""
    limit = request.app[CONFIG].max_decompressed_bytes
    encoding = _encoding(request, "identity")
    now_ms = time.time_ns() // 1_000_000
    if "timestamp" in request.query:
        now_ms = time_param(request.query["timestamp"], "timestamp", now_ms)
    await _ingest(
        request, "import_text", lambda b: decode_text(decompress(b, encoding, limit), now_ms)
    )
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app[DECODER] = RemoteWriteDecoder(app[CONFIG].max_cached_series)
    app[DECODER_V2] = RemoteWriteV2Decoder(app[CONFIG].max_cached_series)
    app[INFLIGHT] = [0]
    app.router.add_post("/api/v1/write", remote_write)
    app.router.add_post("/api/v1/import", vm_import)
    app.router.add_post("/api/v1/import/prometheus", text_import)
