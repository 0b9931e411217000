"""Server configuration (a frozen dataclass the CLI fills) and the typed application keys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from server.metrics import ServerMetrics
    from storage.db import Storage

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9466
"""Clashes with neither Prometheus (9090), VictoriaMetrics (8428), Pushgateway (9091) nor the
OpenTelemetry Prometheus exporter (9464)."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path("./data")
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest accepted request body as sent (compressed); larger is 413."""
    max_decompressed_bytes: int = 256 * 1024 * 1024
    """Largest accepted body after decompression (decompression-bomb bound); larger is 413."""
    ingest_threads: int = 2
    """Threads that decode and append (storage.append and the wire walker release the GIL)."""
    read_threads: int = 2
    shutdown_timeout_s: float = 10.0
    max_inflight_ingest: int = 64
    """Ingest requests being read, decoded or appended at once; more are refused with 503
    (senders retry 5xx with backoff) instead of buffering unbounded bodies in memory."""
    max_cached_series: int = 262_144
    """Remote-write label-set cache size (raw label bytes -> Labels)."""


CONFIG = web.AppKey("tidemark_config", ServerConfig)
STORAGE = web.AppKey("tidemark_storage", object)
"""The ``storage.db.Storage``; typed as object so this module need not import storage."""
INGEST_POOL = web.AppKey("tidemark_ingest_pool", ThreadPoolExecutor)
READ_POOL = web.AppKey("tidemark_read_pool", ThreadPoolExecutor)
METRICS = web.AppKey("tidemark_metrics", object)
EXTRA_METRICS = web.AppKey("tidemark_extra_metrics", list)
"""Callables ``(app) -> str`` whose Prometheus text is appended to ``/metrics`` (precompute)."""


def storage_of(app: web.Application) -> Storage:
    return app[STORAGE]  # type: ignore[return-value]


def metrics_of(app: web.Application) -> ServerMetrics:
    return app[METRICS]  # type: ignore[return-value]
