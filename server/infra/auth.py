"""The password hasher and the token keys of an app, and their cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server import keys
from server.infra.passwords import Passwords
from server.infra.tokens import TokenKeys


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hashing pool lives as long as the app."""
    settings = app[keys.SETTINGS]
    passwords = Passwords(settings)
    app[keys.PASSWORDS] = passwords
    app[keys.TOKEN_KEYS] = TokenKeys(settings)
    try:
        yield
    finally:
        passwords.close()
