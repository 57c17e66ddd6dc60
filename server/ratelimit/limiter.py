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

from aiohttp import web
from multidict import istr

from server.config.parsers import Policy
from server.platform.redisbatch import ScriptBatcher

RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")

RATELIMIT_POLICY = istr("RateLimit-Policy")
RATELIMIT = istr("RateLimit")

# KEYS[1]: the bucket. ARGV[1]: "T W", the policy's emission interval T and window W (ms).
# Returns {allowed, remaining, reset_ms, retry_after_ms}.
GCRA_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval, window = string.match(ARGV[1], '(%S+) (%S+)')
interval, window = tonumber(interval), tonumber(window)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if allow_at > now then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
"""


@dataclass(slots=True)
class Decision:
    allowed: bool
    remaining: int
    reset: float  # seconds until the bucket is full again
    retry_after: float  # seconds until a request would pass (0 when allowed)
    source: Literal["redis", "local"]

    def headers(self, policy: Policy) -> dict[str, str]:
        return {RATELIMIT_POLICY: policy.policy_header, RATELIMIT: self.state(policy)}

    def state(self, policy: Policy) -> str:
        """The `RateLimit` header's value."""
        return f'"{policy.name}";r={max(self.remaining, 0)};t={math.ceil(self.reset)}'

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

    Decisions go through the shared ScriptBatcher: those asked for in one event-loop turn
    reach Redis in one command with the turn's other calls (logout checks, cache reads),
    which cut the limiter's cost per request by about four under load
    (perf/ratelimit_bench.py)."""

    def __init__(self, batcher: ScriptBatcher, prefix: str = "btec:rl:") -> None:
        self.batcher = batcher
        self.prefix = prefix
        self.local = LocalLimiter()
        self._args: dict[Policy, tuple[str]] = {}  # each policy's script argument

    def submit(self, bucket: str, policy: Policy) -> asyncio.Future[Any]:
        """Send the decision for `bucket` ("policy:principal") with the next batch; the
        future holds Redis's reply (for `decision`)."""
        args = self._args.get(policy)
        if args is None:
            args = self._args[policy] = (f"{policy.interval_ms!r} {policy.window * 1000!r}",)
        return self.batcher.submit(GCRA_LUA, (self.prefix + bucket,), args)

    @staticmethod
    def decision(reply: Any) -> Decision:
        allowed, remaining, reset_ms, retry_ms = reply
        return Decision(
            bool(allowed), int(remaining), int(reset_ms) / 1000, int(retry_ms) / 1000, "redis"
        )
