"""The typed keys of a request: its user and its bearer token's claims (its id is in the
log context: server.observability.logging.request_id_var)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.platform.tokens import AccessClaims, InvalidToken

USER_ID: web.RequestKey[str] = web.RequestKey("user_id")  # set by authentication, for the log
# The signed-in user the guard admitted (a users row), for http.deps.user.
USER: web.RequestKey[dict[str, Any]] = web.RequestKey("user")
# A bearer token's claims or why it is not valid, decoded once per request (None: no token).
CLAIMS: web.RequestKey[AccessClaims | InvalidToken | None] = web.RequestKey("claims")
