"""What a handler needs, and the one way it gets it: the database, settings, the job queue,
the signed-in user and the app's other resources, each read from the AppKey declared beside
its resource (set in server.app.resources); and the request's input once apigami has
validated it. Handlers never read `request.app[...]` themselves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.cache.core import CACHE, Cache
from server.config.settings import SETTINGS, Settings
from server.http.keys import CLAIMS, REQUEST_ID, USER
from server.jobs.queue import JOBS, Jobs
from server.observability.metrics import METRICS, Metrics
from server.platform.denylist import DENYLIST, Denylist
from server.platform.lifecycle import LIFECYCLE, Lifecycle
from server.platform.passwords import PASSWORDS, Passwords
from server.platform.postgres import DB_POOL, acquire
from server.platform.storage import STORAGE, Storage
from server.platform.tokens import TOKEN_KEYS, AccessClaims, TokenKeys
from server.ratelimit.loginguard import LOGIN_GUARD, LoginGuard
from server.services.health import HEALTH, HealthService
from server.store import Connect


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def db(request: web.Request) -> Connect:
    """The services' way to a pooled connection: `async with db() as conn:`; 503 with
    Retry-After when none is free in BTEC_DB_POOL_ACQUIRE_TIMEOUT or PostgreSQL is down."""
    app = request.app
    wait = app[SETTINGS].db_pool_acquire_timeout
    return lambda: acquire(app[DB_POOL], app[METRICS], wait)


def jobs(request: web.Request) -> Jobs:
    return request.app[JOBS]


def user(request: web.Request) -> dict[str, Any]:
    """The signed-in user the guard admitted to this route."""
    return request[USER]


def claims(request: web.Request) -> AccessClaims:
    """The signed-in user's access token, as the guard checked it."""
    found = request[CLAIMS]
    assert isinstance(found, AccessClaims), "only routes for signed-in users ask"
    return found


def body(request: web.Request) -> dict[str, Any]:
    """The JSON body as its request_schema loaded it."""
    return request["data"]  # type: ignore[no-any-return]


def query(request: web.Request) -> dict[str, Any]:
    """The query string as its querystring_schema loaded it."""
    return request["querystring"]  # type: ignore[no-any-return]


def path(request: web.Request) -> dict[str, Any]:
    """The path's parameters as its match_info_schema loaded them."""
    return request["match_info"]  # type: ignore[no-any-return]


def request_id(request: web.Request) -> str:
    return request[REQUEST_ID]


def cache(request: web.Request) -> Cache:
    return request.app[CACHE]


def storage(request: web.Request) -> Storage:
    return request.app[STORAGE]


def metrics(request: web.Request) -> Metrics:
    return request.app[METRICS]


def passwords(request: web.Request) -> Passwords:
    return request.app[PASSWORDS]


def token_keys(request: web.Request) -> TokenKeys:
    return request.app[TOKEN_KEYS]


def denylist(request: web.Request) -> Denylist:
    return request.app[DENYLIST]


def login_guard(request: web.Request) -> LoginGuard:
    return request.app[LOGIN_GUARD]


def health(request: web.Request) -> HealthService:
    return request.app[HEALTH]


def lifecycle(request: web.Request) -> Lifecycle:
    return request.app[LIFECYCLE]
