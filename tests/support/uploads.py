"""Uploading files as a browser does (multipart bodies made by hand, so a test controls every
byte), and an app with an admin signed in to upload with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.app import create_app
from server.config.settings import Settings
from tests.support.accounts import make_admin, session_of

ADMIN = "ada@example.org"
BOUNDARY = "btec-test-boundary-7d3f"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def part(filename: str, data: bytes, name: str = "file") -> bytes:
    """One multipart part, its name as browsers send it: raw UTF-8 in quotes."""
    quoted = filename.replace('"', "%22")
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{quoted}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    return head.encode() + data + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def upload(http: Any, who: dict[str, str], filename: str, data: bytes) -> Any:
    return await http.post(
        "/api/v1/files",
        data=multipart(part(filename, data)),
        headers={**who, "Content-Type": MULTIPART},
    )


async def admin_app(
    aiohttp_client: Callable[..., Any],
    acli: Callable[..., Any],
    settings: Settings,
    *,
    worker: bool = False,
) -> tuple[Any, dict[str, str]]:
    """The app on `settings`, and the headers of an admin signed in to it."""
    http = await aiohttp_client(create_app(settings, worker=worker))
    await make_admin(acli, settings, ADMIN)
    return http, await session_of(http, ADMIN)
