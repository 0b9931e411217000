"""Bounded request body reading: a body over the limit is refused with 413 before it is buffered."""

from __future__ import annotations

from aiohttp import web

from server.errors import PayloadTooLargeError


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or ``PayloadTooLargeError`` as soon as it exceeds ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
