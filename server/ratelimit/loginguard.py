"""Sign-in throttling that never locks the owner out (OWASP's authentication guidance; the
account-plus-address keying of Django-axes, with Keycloak's growing delays):

1. **Account and address.** After BTEC_LOGIN_BACKOFF_AFTER failed attempts in a row for one
   email address from one client address, each further attempt from that client must wait
   an exponentially growing delay (base, 2 x base, ... up to BTEC_LOGIN_BACKOFF_MAX_SECONDS).
   The attacker's address is slowed; the owner, from any other address, is not.
2. **Address.** The route's own rate-limit policy, `auth_login` (10 a minute per client
   address), which caps guessing across accounts.
3. **Global cap per account.** Once an account has had BTEC_LOGIN_ACCOUNT_CAP failures from
   all addresses together (a guess spread over many addresses), only addresses that have
   signed in to it before (in the last 30 days) may try, until the failures are forgotten.
   A distributed attack then slows new devices of that account, never known ones.

Counts are per email address (known or not, so a delay reveals nothing about accounts), shared
by every server process, forgotten BTEC_LOGIN_BACKOFF_RESET_SECONDS after the last attempt,
and a right password clears its address's count. An attempt is counted when it starts, in the
same atomic script that checks the delays, so parallel guesses cannot slip in before a delay
is set. Client addresses are kept as digests.
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

PREFIX = "btec:auth:login:"  # a hash per account: total, f:<address>, u:<address>
KNOWN_PREFIX = "btec:auth:known:"  # a set per account: the addresses that signed in
KNOWN_MS = 30 * 86400 * 1000

# KEYS[1]: the account's hash, KEYS[2]: its known addresses. ARGV: threshold, base delay (ms),
# max delay (ms), forget after (ms), the account cap, the client address's digest. Returns the
# milliseconds to wait, or 0 when the attempt may go ahead (counted).
ATTEMPT_LUA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local addr = ARGV[6]
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'u:' .. addr) or '0')
if wait_until > now then return wait_until - now end
local keep = tonumber(ARGV[4])
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
if total >= tonumber(ARGV[5]) and redis.call('SISMEMBER', KEYS[2], addr) == 0 then
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then left = keep end
  return left
end
local fails = redis.call('HINCRBY', KEYS[1], 'f:' .. addr, 1)
redis.call('HINCRBY', KEYS[1], 'total', 1)
local after = tonumber(ARGV[1])
if fails >= after then
  local delay = math.min(tonumber(ARGV[2]) * 2 ^ math.min(fails - after, 40), tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'u:' .. addr, now + delay)
  if delay > keep then keep = delay end
end
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], math.ceil(keep)) end
return 0
"""
# The right password from this address: its count goes, the account's total loses this
# attempt, and the address is known to the account from now on.
SUCCEEDED_LUA = """
redis.call('HDEL', KEYS[1], 'f:' .. ARGV[1], 'u:' .. ARGV[1])
if redis.call('HINCRBY', KEYS[1], 'total', -1) <= 0 then redis.call('HDEL', KEYS[1], 'total') end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""


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
        self.cap = settings.login_account_cap

    @staticmethod
    def key(email: str) -> str:
        return PREFIX + _digest(email.strip().lower())

    @staticmethod
    def known_key(email: str) -> str:
        return KNOWN_PREFIX + _digest(email.strip().lower())

    async def attempt(self, email: str, address: str) -> Throttle | None:
        """Count an attempt for `email` from the client `address`; a Throttle if it must
        wait instead. With Redis unreachable the attempt goes ahead (logged and counted): the
        per-address login policy, which fails closed, then stands in the way of guessing."""
        keys = (self.key(email), self.known_key(email))
        args = (self.after, self.base_ms, self.max_ms, self.forget_ms, self.cap, _digest(address))
        try:
            wait_ms = int(await self.batcher.run(ATTEMPT_LUA, keys, args))
        except Exception as exc:
            log.warning("login_backoff_unavailable", error=type(exc).__name__)
            self.metrics.ratelimit_errors.labels(POLICY).inc()
            self.metrics.ratelimit.count(POLICY, "fallback_allowed")
            return None
        result = "limited" if wait_ms > 0 else "allowed"
        self.metrics.ratelimit.count(POLICY, result)
        return Throttle(wait_ms / 1000) if wait_ms > 0 else None

    async def succeeded(self, email: str, address: str) -> None:
        """A right password from `address`: its count starts again, and it is known."""
        keys = (self.key(email), self.known_key(email))
        try:
            await self.batcher.run(SUCCEEDED_LUA, keys, (_digest(address), KNOWN_MS))
        except Exception as exc:  # the count expires by itself
            log.warning("login_backoff_unavailable", error=type(exc).__name__)


def _digest(text: str) -> str:
    return digest(text).hex()[:32]
