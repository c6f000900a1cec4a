"""Reading a member's image from Discord's CDN with a cap on its size, checked before and while
reading: the size Discord declared can be wrong, and an attachment URL from an embed declares
nothing at all."""

from __future__ import annotations

import aiohttp

from bot.reference import check_declared_size

CHUNK = 64 * 1024
# The CDN answers in well under this; a download that takes longer is given up.
READ_SECONDS = 60.0


class AttachmentUnavailable(Exception):
    """Discord's CDN did not hand the file over (deleted message, expired link, outage)."""


async def read_capped(session: aiohttp.ClientSession, url: str, limit: int) -> bytes:
    """The file at `url`, or `ReferenceRejected` ("too large") as soon as it is known to be
    larger than `limit` bytes: from its Content-Length, or from what has arrived so far."""
    timeout = aiohttp.ClientTimeout(total=READ_SECONDS)
    try:
        async with session.get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise AttachmentUnavailable(f"HTTP {response.status}")
            if response.content_length is not None:
                check_declared_size(max(1, response.content_length), limit)
            body = bytearray()
            async for chunk in response.content.iter_chunked(CHUNK):
                body += chunk
                if len(body) > limit:
                    check_declared_size(len(body), limit)  # raises: too large
            check_declared_size(len(body), limit)  # an empty file is refused too
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AttachmentUnavailable(type(exc).__name__) from None
