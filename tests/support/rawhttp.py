"""HTTP as bytes on a socket, for what a client library will not send or will hide: pipelined
requests, header bytes that are not UTF-8, bodies cut short, headers trickled slowly."""

from __future__ import annotations

import asyncio
from typing import Any


async def exchange(server: Any, data: bytes, *, timeout: float = 10) -> bytes:
    """Send `data` to the test server and read until it closes the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def request(method: str, path: str, *headers: str, body: bytes = b"", close: bool = True) -> bytes:
    """One HTTP/1.1 request's bytes; `headers` as "Name: value" lines."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
