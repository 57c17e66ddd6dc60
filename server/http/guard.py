"""The password hasher and the token keys of an app, their cleanup_ctx, and a request's bearer
token decoded once."""

from __future__ import annotations

from aiohttp import web
from multidict import istr

from server.http.keys import CLAIMS, DENIED
from server.platform.denylist import DENYLIST
from server.platform.tokens import TOKEN_KEYS, AccessClaims, InvalidToken

AUTHORIZATION = istr("Authorization")


def bearer_claims(request: web.Request) -> AccessClaims | InvalidToken | None:
    """The claims of the request's bearer token, or why it is not valid; None without one.
    Decoded once per request: the rate limiter keys on the user, the handler then checks
    revocation and the account. The logout check starts here (DENIED), so it joins the
    rate limiter's Redis round trip."""
    if CLAIMS in request:
        return request[CLAIMS]
    found: AccessClaims | InvalidToken | None = None
    header = request.headers.get(AUTHORIZATION)
    if header is None:  # most requests: no token at all
        request[CLAIMS] = None
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        try:
            found = request.app[TOKEN_KEYS].decode(token)
        except InvalidToken as exc:
            found = exc
        else:  # the logout check rides in the rate-limit decision's Redis batch
            request[DENIED] = request.app[DENYLIST].check_soon(found.jti)
    request[CLAIMS] = found
    return found
