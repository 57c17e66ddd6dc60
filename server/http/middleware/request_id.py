"""The request's id: the caller's X-Request-ID when it is safe to echo and log, else a new one;
bound to every log line of the request and to its Sentry events."""

from __future__ import annotations

import itertools
import os
import re

from aiohttp import web
from multidict import istr

from server.observability import sentry
from server.observability.logging import request_id_var

REQUEST_ID_HEADER = istr("X-Request-ID")
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# New ids: a random per-process prefix and a counter; unique, 32 hex digits, and cheap.
_PREFIX = os.urandom(8).hex()
_counter = itertools.count(1)


def request_id_for(header: str | None) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a new one."""
    if header is not None and _VALID.fullmatch(header):
        return header
    return _PREFIX + format(next(_counter), "016x")


def assign(request: web.Request) -> str:
    """Give the request its id: in the log context (each request runs in a task of its own,
    so `request_id_var` is the request's; http.deps.request_id reads it) and the Sentry
    scope."""
    rid = request_id_for(request.headers.get(REQUEST_ID_HEADER))
    request_id_var.set(rid)
    if sentry.enabled():
        sentry.tag_request(rid)
    return rid
