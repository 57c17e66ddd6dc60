"""Rate-limit policies per route, the principal a request counts against, and the check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from server.config.parsers import Policy
from server.config.settings import Settings
from server.domain.errors import RateLimited, RateLimitUnavailable
from server.http.clientaddr import client_ip
from server.http.guard import bearer_claims
from server.observability.logging import get_logger
from server.observability.metrics import Metrics
from server.platform.tokens import AccessClaims
from server.ratelimit.limiter import RATE_LIMITER, Decision, RateLimiter

log = get_logger("btec.ratelimit")
POLICY_ATTR = "__btec_rate_policy__"
ALONGSIDE_ATTR = "__btec_rate_alongside__"
SPECULATE_FROM = 2  # a client's last known remaining budget from which a GET may run early
MAX_REMEMBERED = 100_000  # buckets whose last remaining budget is kept
EXEMPT_PREFIXES = ("/api/v1/health", "/metrics")
H = TypeVar("H", bound=Callable[..., Any])


def limited(name: str, spec: str) -> Callable[[H], H]:
    """Declare a route's policy where the route is defined: `@limited("ops_mail", "5/60")`.
    BTEC_RATELIMIT_POLICIES can override it by name."""
    policy = Policy.parse(name, spec)

    def mark(handler: H) -> H:
        setattr(handler, POLICY_ATTR, policy)
        return handler

    return mark


def alongside(handler: H) -> H:
    """Let the rate-limit decision run alongside this GET handler instead of before it, for
    a client with budget to spare (its last decision left SPECULATE_FROM or more): the
    handler's Redis calls (a cache read) then share the decision's round trip. Only for
    handlers that change nothing and return a whole response (never a streamed one): a
    request the decision refuses still gets its 429 and nothing else."""
    setattr(handler, ALONGSIDE_ATTR, True)
    return handler


class RateLimits:
    """Which policy a request falls under, and whether it may pass. Per request: `begin`
    sends the decision, `settle` waits for it (at once, or after the handler of an
    `alongside` route)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.enabled = settings.ratelimit_enabled
        self.default = Policy.parse("default", settings.ratelimit_default)
        self.overrides = _overrides(settings.ratelimit_policies)
        self.trusted = settings.trusted_networks
        self.metrics = metrics
        self._unmatched = Limit(self.default, alongside=False)
        self._room: dict[str, int] = {}  # each bucket's remaining budget at its last decision

    def limit_of(self, request: web.Request) -> Limit | None:
        """The policy of the request's route (None: exempt), for the request frame to keep
        per route (the router's 404/405, made anew for each request, go by the path)."""
        if not self.enabled:
            return None
        route = request.match_info.route
        if route.resource is None:
            return None if request.path.startswith(EXEMPT_PREFIXES) else self._unmatched
        if route.resource.canonical.startswith(EXEMPT_PREFIXES):
            return None
        declared: Policy = getattr(route.handler, POLICY_ATTR, self.default)
        early = route.method in ("GET", "HEAD") and getattr(route.handler, ALONGSIDE_ATTR, False)
        return Limit(self.overrides.get(declared.name, declared), alongside=early)

    def principal(self, request: web.Request) -> str:
        """The user of a valid bearer token (checked for revocation later, by the handler),
        else the client IP."""
        claims = bearer_claims(request)
        if isinstance(claims, AccessClaims):
            return f"user:{claims.user_id}"
        return f"ip:{client_ip(request, self.trusted)}"

    def begin(self, request: web.Request, found: Limit) -> Pending:
        """Send the request's decision under its route's policy with this loop turn's Redis
        batch, without waiting for it. `early`: the handler may run while the decision is on
        its way (see `alongside`)."""
        policy = found.policy
        bucket = f"{policy.name}:{self.principal(request)}"
        reply = request.app[RATE_LIMITER].submit(bucket, policy)
        early = found.alongside and self._room.get(bucket, 0) >= SPECULATE_FROM
        return Pending(policy, bucket, reply, early)

    async def settle(self, request: web.Request, pending: Pending) -> Decision:
        """The decision `begin` sent: a decision that allows, else RateLimited or
        RateLimitUnavailable."""
        policy = pending.policy
        try:
            decision = RateLimiter.decision(await pending.reply)
            result = "allowed" if decision.allowed else "limited"
        except Exception as exc:  # any Redis failure: the policy decides
            self.metrics.ratelimit_errors.labels(policy.name).inc()
            log.warning("ratelimit_redis_error", policy=policy.name, error=type(exc).__name__)
            if policy.failure == "closed":
                self.metrics.ratelimit.count(policy.name, "unavailable")
                raise RateLimitUnavailable("rate limiting is unavailable", retry_after=5) from None
            decision = request.app[RATE_LIMITER].local.hit(pending.bucket, policy)
            result = "fallback_allowed" if decision.allowed else "fallback_limited"
        self.metrics.ratelimit.count(policy.name, result)
        self._remember(pending.bucket, decision.remaining)
        if not decision.allowed:
            raise RateLimited(
                f"too many requests; retry in {decision.retry_after_header} s",
                headers={**decision.headers(policy), "Retry-After": decision.retry_after_header},
            )
        return decision

    def _remember(self, bucket: str, remaining: int) -> None:
        if bucket not in self._room and len(self._room) >= MAX_REMEMBERED:
            del self._room[next(iter(self._room))]  # the oldest first
        self._room[bucket] = remaining


@dataclass(slots=True, frozen=True)
class Limit:
    """A route's policy, and whether its decision may run alongside the handler."""

    policy: Policy
    alongside: bool


@dataclass(slots=True)
class Pending:
    """A decision on its way: its policy, its bucket (policy and principal), Redis's reply,
    and whether the handler runs before the reply is in."""

    policy: Policy
    bucket: str
    reply: asyncio.Future[Any]
    early: bool


def _overrides(spec: str) -> dict[str, Policy]:
    found = {}
    for item in filter(None, (v.strip() for v in spec.split(","))):
        name, _, rate = item.partition("=")
        found[name.strip()] = Policy.parse(name.strip(), rate)
    return found
