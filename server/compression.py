"""Request body decompression with a hard bound on the decompressed size (bomb protection)."""

from __future__ import annotations

import cramjam
import numpy as np

from server.errors import IngestRejected, PayloadTooLargeError, UnsupportedMediaTypeError

DEFAULT_MAX_DECOMPRESSED = 256 * 1024 * 1024


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"decompressed body is over the limit of {limit} bytes")


def _bounded(codec: object, name: str, body: bytes, limit: int) -> bytes:
    """Decompress into a buffer of ``limit + 1`` bytes: filling it means the bound was crossed.

    ``np.empty`` does not touch the pages, so a large limit costs only what is really written.
    """
    out = np.empty(limit + 1, dtype=np.uint8)
    try:
        n = codec.decompress_into(body, out)  # type: ignore[attr-defined]
    except cramjam.DecompressionError as err:
        if "whole buffer" in str(err) or "smaller than required" in str(err):
            raise _too_large(limit) from err
        raise IngestRejected(f"{name}: {err}", "decompress") from err
    if n > limit:
        raise _too_large(limit)
    return out[:n].tobytes()


def decompress(body: bytes, encoding: str, limit: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Decode a ``Content-Encoding``: snappy (block format), zstd, gzip or identity.

    Snappy declares its uncompressed length up front, so a bomb is refused before any work.
    """
    enc = encoding.strip().lower()
    if enc == "snappy":
        try:
            size = cramjam.snappy.decompress_raw_len(body)
            if size > limit:
                raise _too_large(limit)
            return bytes(cramjam.snappy.decompress_raw(body))
        except cramjam.DecompressionError as err:
            raise IngestRejected(f"snappy: {err}", "decompress") from err
    if enc == "zstd":
        return _bounded(cramjam.zstd, "zstd", body, limit)
    if enc in ("gzip", "x-gzip"):
        return _bounded(cramjam.gzip, "gzip", body, limit)
    if enc in ("", "identity"):
        if len(body) > limit:
            raise _too_large(limit)
        return body
    raise UnsupportedMediaTypeError(
        f"unsupported Content-Encoding {encoding!r} (supported: snappy, zstd, gzip, identity)"
    )
