"""Login throttling per account: after BTEC_LOGIN_BACKOFF_AFTER failed attempts in a row, each
further attempt must wait an exponentially growing delay (base, 2 x base, 4 x base ... up to
BTEC_LOGIN_BACKOFF_MAX_SECONDS). Never a lockout: every delay expires, the count is forgotten
BTEC_LOGIN_BACKOFF_RESET_SECONDS after the last attempt, and a right password clears it.

The count is per email address (known or not, so a delay reveals nothing about accounts) and
shared by every client IP and server process: an attacker who moves to other addresses does not
reset it. An attempt is counted when it starts, in the same atomic script that checks the delay,
so parallel guesses cannot slip in before the delay is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web

from server.config.settings import Settings
from server.observability.logging import get_logger
from server.observability.metrics import Metrics
from server.platform.redisbatch import ScriptBatcher
from server.platform.tokens import digest

LOGIN_GUARD: web.AppKey[LoginGuard] = web.AppKey("login_guard")

log = get_logger("btec.auth")
POLICY = "auth_login_account"  # its decisions in btec_ratelimit_decisions_total

PREFIX = "btec:auth:login:"

# KEYS[1]: the account's counter. ARGV: threshold, base delay (ms), max delay (ms), forget
# after (ms). Returns the milliseconds to wait, or 0 when the attempt may go ahead (counted).
ATTEMPT_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until > now then return wait_until - now end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local after = tonumber(ARGV[1])
local keep = tonumber(ARGV[4])
if fails >= after then
  local delay = math.min(tonumber(ARGV[2]) * 2 ^ math.min(fails - after, 40), tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'until', now + delay)
  if delay > keep then keep = delay end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(keep))
return 0
"""
CLEAR_LUA = "return redis.call('DEL', KEYS[1])"


@dataclass(frozen=True)
class Throttle:
    """An attempt that must wait."""

    retry_after: float  # seconds

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after)))


class LoginGuard:
    def __init__(self, batcher: ScriptBatcher, settings: Settings, metrics: Metrics) -> None:
        self.batcher = batcher
        self.metrics = metrics
        self.after = settings.login_backoff_after
        self.base_ms = round(settings.login_backoff_base_seconds * 1000)
        self.max_ms = round(settings.login_backoff_max_seconds * 1000)
        self.forget_ms = round(settings.login_backoff_reset_seconds * 1000)

    @staticmethod
    def key(email: str) -> str:
        return PREFIX + digest(email.strip().lower()).hex()

    async def attempt(self, email: str) -> Throttle | None:
        """Count an attempt for `email`; a Throttle if it must wait instead. With Redis
        unreachable the attempt goes ahead (logged and counted): the per-IP login policy,
        which fails closed, is then what stands in the way of guessing."""
        args = (self.after, self.base_ms, self.max_ms, self.forget_ms)
        try:
            wait_ms = int(await self.batcher.run(ATTEMPT_LUA, (self.key(email),), args))
        except Exception as exc:
            log.warning("login_backoff_unavailable", error=type(exc).__name__)
            self.metrics.ratelimit_errors.labels(POLICY).inc()
            self.metrics.ratelimit.count(POLICY, "fallback_allowed")
            return None
        result = "limited" if wait_ms > 0 else "allowed"
        self.metrics.ratelimit.count(POLICY, result)
        return Throttle(wait_ms / 1000) if wait_ms > 0 else None

    async def succeeded(self, email: str) -> None:
        """A right password: the account's count starts again."""
        try:
            await self.batcher.run(CLEAR_LUA, (self.key(email),), ())
        except Exception as exc:  # the count expires by itself
            log.warning("login_backoff_unavailable", error=type(exc).__name__)
