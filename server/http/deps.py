"""What a handler needs, and the one way it gets it: the database, settings, the job queue,
the signed-in user and the app's other resources, each read from the AppKey declared beside
its resource (set in server.app.resources); and the request's input once apigami has
validated it. Handlers never read `request.app[...]` themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from server.cache.core import CACHE
from server.config.settings import SETTINGS
from server.http import clientaddr
from server.http.keys import CLAIMS, USER
from server.jobs.queue import JOBS
from server.observability.logging import request_id_var
from server.observability.metrics import METRICS
from server.platform.lifecycle import LIFECYCLE
from server.platform.passwords import PASSWORDS
from server.platform.postgres import DB_POOL, acquire
from server.platform.storage import STORAGE
from server.platform.tokens import TOKEN_KEYS, AccessClaims
from server.ratelimit.loginguard import LOGIN_GUARD
from server.services.health import HEALTH
from server.store import Connect

T = TypeVar("T")


def db(request: web.Request) -> Connect:
    """The services' way to a pooled connection: `async with db() as conn:`; 503 with
    Retry-After when none is free in BTEC_DB_POOL_ACQUIRE_TIMEOUT or PostgreSQL is down."""
    app = request.app
    wait = app[SETTINGS].db_pool_acquire_timeout
    return lambda: acquire(app[DB_POOL], app[METRICS], wait)


def user(request: web.Request) -> dict[str, Any]:
    """The signed-in user the guard admitted to this route."""
    return request[USER]


def claims(request: web.Request) -> AccessClaims:
    """The signed-in user's access token, as the guard checked it."""
    found = request[CLAIMS]
    if not isinstance(found, AccessClaims):
        raise RuntimeError("only routes for signed-in users ask")
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


def client_ip(request: web.Request) -> str:
    """The client's address: the peer, or behind BTEC_TRUSTED_PROXIES the address they saw."""
    return clientaddr.client_ip(request, request.app[SETTINGS].trusted_networks)


def request_id(request: web.Request) -> str:
    rid = request_id_var.get()
    if rid is None:
        raise RuntimeError("the request frame gives every request an id")
    return rid


def _from_app(key: web.AppKey[T]) -> Callable[[web.Request], T]:
    """The accessor of one of the app's resources, typed by its key."""

    def read(request: web.Request) -> T:
        return request.app[key]

    return read


settings = _from_app(SETTINGS)
jobs = _from_app(JOBS)
cache = _from_app(CACHE)
storage = _from_app(STORAGE)
metrics = _from_app(METRICS)
passwords = _from_app(PASSWORDS)
token_keys = _from_app(TOKEN_KEYS)
login_guard = _from_app(LOGIN_GUARD)
health = _from_app(HEALTH)
lifecycle = _from_app(LIFECYCLE)
