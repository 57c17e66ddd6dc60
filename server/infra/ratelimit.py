"""Distributed rate limiting: GCRA in one atomic Redis script, with a local fallback.

Written here rather than taken from the `limits` library: its async Redis storage implements
fixed and sliding windows, not GCRA, and it has no notion of a policy that fails open onto an
in-process limiter or closed with 503 when Redis is down, which this module needs. The
algorithm is the one redis-cell uses (generic cell rate algorithm): one timestamp per key, the
"theoretical arrival time", read and written by a single Lua script against Redis's own clock,
so any number of server processes share one exact limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from server.infra.ratepolicy import Policy

# KEYS[1]: the bucket. ARGV: emission interval T (ms), window W (ms), cost.
# Returns {allowed, remaining, reset_ms, retry_after_ms}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * tonumber(ARGV[3])
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    reset: float  # seconds until the bucket is full again
    retry_after: float  # seconds until a request would pass (0 when allowed)
    source: Literal["redis", "local"]

    def headers(self, policy: Policy) -> dict[str, str]:
        reset = math.ceil(self.reset)
        return {
            "RateLimit-Policy": policy.policy_header,
            "RateLimit": f'"{policy.name}";r={max(self.remaining, 0)};t={reset}',
        }

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class LocalLimiter:
    """The same algorithm in this process's memory: the fallback of fail-open policies."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._tat: OrderedDict[str, float] = OrderedDict()

    def hit(self, key: str, policy: Policy, cost: int = 1) -> Decision:
        now = time.monotonic() * 1000
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + policy.interval_ms * cost
        window = policy.window * 1000
        allow_at = new_tat - window
        if allow_at > now:
            return Decision(False, 0, (tat - now) / 1000, (allow_at - now) / 1000, "local")
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self.max_keys:
            self._tat.popitem(last=False)
        remaining = math.floor((window - (new_tat - now)) / policy.interval_ms)
        return Decision(True, remaining, (new_tat - now) / 1000, 0.0, "local")


class RateLimiter:
    """GCRA decisions in Redis; Redis errors raise (the caller applies the policy's failure).

    Decisions asked for in the same event-loop turn go to Redis in one pipeline: one round
    trip and one client call for the lot, which cuts the limiter's cost per request by about
    four under load (perf/ratelimit_bench.py)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "btec:rl:") -> None:
        self.client = client
        self.prefix = prefix
        self.local = LocalLimiter()
        self._sha: str | None = None
        self._pending: list[tuple[str, tuple[float, float, int], asyncio.Future[Any]]] = []

    async def hit(self, key: str, policy: Policy, cost: int = 1) -> Decision:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        args = (policy.interval_ms, policy.window * 1000, cost)
        self._pending.append((f"{self.prefix}{policy.name}:{key}", args, future))
        allowed, remaining, reset_ms, retry_ms = await future
        return Decision(
            bool(allowed), int(remaining), int(reset_ms) / 1000, int(retry_ms) / 1000, "redis"
        )

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(_consume)

    async def _send(
        self, batch: list[tuple[str, tuple[float, float, int], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._run(batch)
            if any(_noscript(r) for r in results):  # Redis restarted: its script cache is empty
                self._sha = None
                results = await self._run(batch)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _run(
        self, batch: list[tuple[str, tuple[float, float, int], asyncio.Future[Any]]]
    ) -> list[Any]:
        if self._sha is None:
            self._sha = str(await self.client.script_load(GCRA_LUA))
        async with self.client.pipeline(transaction=False) as pipe:
            for key, args, _ in batch:
                pipe.evalsha(self._sha, 1, key, *args)
            return list(await pipe.execute(raise_on_error=False))


def _noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError)


def _consume(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # errors were handed to the waiting requests already
