"""Access tokens revoked before they expire (logout), by `jti`, in Redis until they would
have expired anyway. Checks go through the ScriptBatcher with the rate limiter's and the
cache's calls."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server.platform.redisbatch import ScriptBatcher

DENYLIST: web.AppKey[Denylist] = web.AppKey("denylist")

PREFIX = "btec:auth:deny:"
DENY_LUA = "redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) return 1"
CHECK_LUA = "return redis.call('EXISTS', KEYS[1])"


class Denylist:
    def __init__(self, batcher: ScriptBatcher) -> None:
        self.batcher = batcher

    async def deny(self, jti: str, seconds: float) -> None:
        await self.batcher.run(DENY_LUA, (PREFIX + jti,), (max(1, round(seconds * 1000)),))

    async def is_denied(self, jti: str) -> bool:
        return bool(await self.batcher.run(CHECK_LUA, (PREFIX + jti,), ()))

    def check_soon(self, jti: str) -> asyncio.Future[Any]:
        """Start the check now, in the current batch; await the future for the answer
        (truthy: denied)."""
        return self.batcher.submit(CHECK_LUA, (PREFIX + jti,), ())
