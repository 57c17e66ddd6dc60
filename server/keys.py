"""Every typed key of the application and of requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncio
    from typing import Any

    import asyncpg
    import redis.asyncio as aioredis

    from server.infra.cache import Cache
    from server.infra.denylist import Denylist
    from server.infra.lifecycle import Lifecycle
    from server.infra.loginguard import LoginGuard
    from server.infra.mail import Mailer
    from server.infra.metrics import Metrics
    from server.infra.passwords import Passwords
    from server.infra.ratelimit import RateLimiter
    from server.infra.storage import Storage
    from server.infra.tasks import Tasks
    from server.infra.tokens import AccessClaims, InvalidToken, TokenKeys
    from server.services.health import HealthService
    from server.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
DB_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("db_pool")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")
HEALTH: web.AppKey[HealthService] = web.AppKey("health")
TASKS: web.AppKey[Tasks] = web.AppKey("tasks")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")

RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
CACHE: web.AppKey[Cache] = web.AppKey("cache")
PASSWORDS: web.AppKey[Passwords] = web.AppKey("passwords")
TOKEN_KEYS: web.AppKey[TokenKeys] = web.AppKey("token_keys")
DENYLIST: web.AppKey[Denylist] = web.AppKey("denylist")
LOGIN_GUARD: web.AppKey[LoginGuard] = web.AppKey("login_guard")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
USER_ID: web.RequestKey[str] = web.RequestKey("user_id")  # set by authentication
# A bearer token's claims or why it is not valid, decoded once per request (None: no token).
CLAIMS: web.RequestKey[AccessClaims | InvalidToken | None] = web.RequestKey("claims")
# The logout (jti denylist) check of a valid bearer token, started with the claims.
DENIED: web.RequestKey[asyncio.Future[Any]] = web.RequestKey("denied")
