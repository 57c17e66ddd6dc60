"""The password hasher and the token keys of an app, their cleanup_ctx, and a request's bearer
token decoded once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from multidict import istr

from server import keys
from server.infra.passwords import Passwords
from server.infra.tokens import AccessClaims, InvalidToken, TokenKeys

AUTHORIZATION = istr("Authorization")


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the hashing pool lives as long as the app."""
    settings = app[keys.SETTINGS]
    passwords = Passwords(settings)
    app[keys.PASSWORDS] = passwords
    app[keys.TOKEN_KEYS] = TokenKeys(settings)
    try:
        yield
    finally:
        passwords.close()


def bearer_claims(request: web.Request) -> AccessClaims | InvalidToken | None:
    """The claims of the request's bearer token, or why it is not valid; None without one.
    Decoded once per request: the rate limiter keys on the user, the handler then checks
    revocation and the account. The logout check starts here (keys.DENIED), so it joins the
    rate limiter's Redis round trip."""
    if keys.CLAIMS in request:
        return request[keys.CLAIMS]
    found: AccessClaims | InvalidToken | None = None
    header = request.headers.get(AUTHORIZATION)
    if header is None:  # most requests: no token at all
        request[keys.CLAIMS] = None
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        try:
            found = request.app[keys.TOKEN_KEYS].decode(token)
        except InvalidToken as exc:
            found = exc
        else:  # the logout check rides in the rate-limit decision's Redis batch
            request[keys.DENIED] = request.app[keys.DENYLIST].check_soon(found.jti)
    request[keys.CLAIMS] = found
    return found
