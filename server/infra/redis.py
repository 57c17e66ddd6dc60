"""The Redis client and its cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web

from server import keys
from server.infra.ratelimit import RateLimiter
from server.settings import Settings


def create_client(settings: Settings) -> aioredis.Redis:
    assert settings.redis_url is not None, "resolve embedded servers before create_client"
    return aioredis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        client_name=f"{settings.service_id}-{settings.env}",
    )


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the client connects lazily, so startup does not need Redis to be up."""
    client = create_client(app[keys.SETTINGS])
    app[keys.REDIS] = client
    app[keys.RATE_LIMITER] = RateLimiter(client)
    try:
        yield
    finally:
        await client.aclose()
