"""The Redis client and its cleanup_ctx."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

from server.config.settings import Settings
from server.observability.probes import Check, Observation, timed

REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")


class _HiredisPacking:
    """Commands packed by hiredis, in C, as redis-py's synchronous client does: the asyncio
    client packs in Python, re-joining a growing buffer per argument, which cost a batch of
    rate-limit decisions (~100 arguments) more CPU than the rest of the decisions together."""

    # redis-py types this class in some releases and not in others: the call goes through Any.
    _packer: Any = cast(Any, HiredisRespSerializer)()

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._packer.pack(*args)  # type: ignore[no-any-return]


def create_client(settings: Settings) -> aioredis.Redis:
    if settings.redis_url is None:
        raise RuntimeError("resolve embedded servers before create_client")
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


def health_check(client: aioredis.Redis) -> Check:
    """How fast Redis answers a PING."""

    async def response_time() -> Observation:
        return Observation(await timed(client.ping), "ms")

    return Check("redis:responseTime", "datastore", response_time)


NO_PERSISTENCE = (
    "neither an append-only file nor RDB snapshots: queued jobs and revocations are lost when "
    "Redis restarts (runbooks/jobs.md, Redis persistence)"
)


def persistence_check(client: aioredis.Redis) -> Check:
    """Whether Redis keeps its data across a restart: `aof`, `rdb`, both, or `none` (a warning;
    never failing readiness). A Redis that refuses CONFIG (some managed ones) says `unknown`."""

    async def persistence() -> Observation:
        aof = bool((await client.info("persistence")).get("aof_enabled"))
        try:
            rdb = bool((await client.config_get("save")).get("save"))
        except aioredis.ResponseError:
            if aof:
                return Observation("aof")
            return Observation("unknown", output="CONFIG refused: see the provider's settings")
        kinds = [name for name, on in (("aof", aof), ("rdb", rdb)) if on]
        if not kinds:
            return Observation("none", status="warn", output=NO_PERSISTENCE)
        return Observation("+".join(kinds))

    return Check("redis:persistence", "datastore", persistence, critical=False)
