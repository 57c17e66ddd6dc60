"""How handlers answer: JSON that no cache keeps (`Cache-Control: no-store`), with the
`Location` of what a create made."""

from __future__ import annotations

from typing import Any

from aiohttp import web

NO_STORE = {"Cache-Control": "no-store"}


def answer(
    data: Any, status: int = 200, *, location: str | None = None, **headers: str
) -> web.Response:
    """`data` as JSON, never stored by caches; `location` for a 201's Location header."""
    extra = {**NO_STORE, **headers}
    if location is not None:
        extra["Location"] = location
    return web.json_response(data, status=status, headers=extra)


def no_content() -> web.Response:
    return web.Response(status=204, headers=NO_STORE)


async def start_stream(request: web.Request, response: web.StreamResponse) -> bool:
    """Send `response`'s headers; False when the body must not follow. A HEAD is answered
    with the headers a GET would have, and nothing after them (RFC 9110 9.3.2): a body there
    would be read by a proxy as the start of the next response."""
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return False
    return True
