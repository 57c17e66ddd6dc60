"""The Redis client and its cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from server import keys
from server.infra.cache import Cache
from server.infra.denylist import Denylist
from server.infra.loginguard import LoginGuard
from server.infra.ratelimit import RateLimiter
from server.infra.redisbatch import ScriptBatcher
from server.settings import Settings


class _HiredisPacking:
    """Commands packed by hiredis, in C, as redis-py's synchronous client does: the asyncio
    client packs in Python, re-joining a growing buffer per argument, which cost a batch of
    rate-limit decisions (~100 arguments) more CPU than the rest of the decisions together."""

    # redis-py types this class in some releases and not in others: the call goes through Any.
    _packer: Any = cast(Any, HiredisRespSerializer)()

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._packer.pack(*args)  # type: ignore[no-any-return]


def create_client(settings: Settings) -> aioredis.Redis:
    assert settings.redis_url is not None, "resolve embedded servers before create_client"
    client = aioredis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
        client_name=f"{settings.service_id}-{settings.env}",
    )
    pool = client.connection_pool
    if HIREDIS_AVAILABLE:  # keep the URL's own class (TCP, TLS or unix socket), faster packing
        base = pool.connection_class
        pool.connection_class = type(base.__name__, (_HiredisPacking, base), {})
    return client


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the client connects lazily, so startup does not need Redis to be up."""
    client = create_client(app[keys.SETTINGS])
    app[keys.REDIS] = client
    # Rate-limit decisions, logout checks and cache reads go in batches, one at a time, each
    # batch with one deadline.
    batcher = ScriptBatcher(client, timeout=app[keys.SETTINGS].cache_timeout)
    app[keys.RATE_LIMITER] = RateLimiter(batcher)
    app[keys.CACHE] = Cache(client, app[keys.SETTINGS], app[keys.METRICS], batcher)
    app[keys.DENYLIST] = Denylist(batcher)
    app[keys.LOGIN_GUARD] = LoginGuard(batcher, app[keys.SETTINGS], app[keys.METRICS])
    try:
        yield
    finally:
        await client.aclose()
