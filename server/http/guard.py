"""Who may call each route, decided in one place before its handler runs: deny by default.

Every route needs a signed-in user whose address is verified, unless its registration says
otherwise where the route is defined:
- `@public`: anyone;
- `@operator("ops_token")`: the bearer token of that setting (BTEC_OPS_TOKEN; outside
  production, the data dir's own when unset: server.platform.localsecrets). Never the
  caller's address: a same-host proxy makes every caller look local;
- `@roles("admin", ...)`: signed in, with one of these roles as the account is now;
- `@unverified_allowed`: signed in, even before the address is verified.
A handler that declares nothing is for signed-in, verified users: forgetting a check can no
longer make a route public. `Guard.admit` runs in the request frame; `Guard.access` answers
for any route, so a test lists the public ones.

CORS preflights from an allowed origin are public too, though no route says so: they have no
route (server.http.middleware.cors), and the frame answers them before the guard. A browser
sends a preflight without credentials (the Fetch standard), so requiring a user could only
refuse it, and the answer runs no handler and tells only what the allowlist tells anyone. The
request it announces then meets the guard as any other.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from aiohttp import web
from multidict import istr
from pydantic import SecretStr

from server.config.settings import Settings
from server.domain.errors import EmailUnverified, Forbidden, InvalidToken, Unauthorized
from server.http import deps
from server.http.keys import CLAIMS, USER, USER_ID
from server.platform import localsecrets, tokens
from server.platform.tokens import TOKEN_KEYS, AccessClaims
from server.services import auth

AUTHORIZATION = istr("Authorization")
ACCESS_ATTR = "__btec_access__"
DOCUMENTED_ATTR = "__btec_documented__"  # set by server.http.openapi.operation
H = TypeVar("H", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """Who may call a route: `who`, and for signed-in users which roles and whether an
    unverified address will do; for operators the setting that holds their token."""

    who: Literal["user", "public", "operator"] = "user"
    roles: frozenset[str] | None = None
    unverified: bool = False
    token_setting: str | None = None


SIGNED_IN = Access()
PUBLIC = Access(who="public")
GUARD: web.AppKey[Guard] = web.AppKey("guard")


def _mark(handler: H, **changes: Any) -> H:
    if getattr(handler, DOCUMENTED_ATTR, False):
        raise TypeError(
            f"{handler.__qualname__}: put its access marks below @operation, which reads them"
        )
    declared: Access = getattr(handler, ACCESS_ATTR, SIGNED_IN)
    setattr(handler, ACCESS_ATTR, dataclasses.replace(declared, **changes))
    return handler


def public(handler: H) -> H:
    """Anyone may call this route, signed in or not."""
    return _mark(handler, who="public")


def operator(setting: str) -> Callable[[H], H]:
    """Only operators: the bearer token of `setting` (a Settings field such as "ops_token")."""
    return lambda handler: _mark(handler, who="operator", token_setting=setting)


def roles(*names: str) -> Callable[[H], H]:
    """Only signed-in users with one of these roles, as the account is at the request."""
    return lambda handler: _mark(handler, roles=frozenset(names))


def unverified_allowed(handler: H) -> H:
    """Signed-in users whose address is not verified yet may call this route too."""
    return _mark(handler, unverified=True)


class Guard:
    """Admits a request to its route or raises the problem that says why not. A route's
    Access is what its handler declares (the request frame keeps it in the route's plan);
    `public_names` are routes whose handlers are not ours to mark (the API docs)."""

    def __init__(self, settings: Settings, public_names: Iterable[str] = ()) -> None:
        self.settings = settings
        self.public_names = frozenset(public_names)
        self._tokens: dict[str, SecretStr | None] = {}

    def token(self, setting: str) -> SecretStr | None:
        """The operator token of `setting`, read once (it may be the data dir's own)."""
        if setting not in self._tokens:
            self._tokens[setting] = localsecrets.secret(self.settings, setting)
        return self._tokens[setting]

    def holds(self, request: web.Request, *settings: str) -> bool:
        """Whether the request's bearer token is the token of one of `settings`."""
        return any(
            (token := self.token(name)) is not None and bearer_matches(request, token)
            for name in settings
        )

    async def check_routes(self, app: web.Application) -> None:
        """on_startup: read every route's access once, so that a route declaring a
        contradiction (roles on a public route) stops the start, not its first request."""
        for route in app.router.routes():
            self.access(route)

    def access(self, route: web.AbstractRoute) -> Access:
        """What `route` needs; the router's own 404 and 405 need nothing, since they only
        refuse."""
        if route.resource is None or route.name in self.public_names:
            return PUBLIC
        found: Access = getattr(route.handler, ACCESS_ATTR, SIGNED_IN)
        if found.who != "user" and (found.roles is not None or found.unverified):
            raise ValueError(f"route {route.name}: roles are for signed-in users, not {found.who}")
        return PUBLIC if found == PUBLIC else found  # the frame skips PUBLIC by identity

    async def admit(self, request: web.Request, access: Access) -> None:
        """Raise unless this request may call a route that needs `access` (not PUBLIC)."""
        if access.who == "operator":
            setting = access.token_setting or "ops_token"
            require_operator(request, self.token(setting), variable=f"BTEC_{setting.upper()}")
            return
        user = await signed_in(request)
        if user["email_verified_at"] is None and not access.unverified:
            raise EmailUnverified(
                "verify your email address first: see /api/v1/auth/verify/request"
            )
        if access.roles is not None and user["role"] not in access.roles:
            raise Forbidden(f"this needs the role {' or '.join(sorted(access.roles))}")


async def signed_in(request: web.Request) -> dict[str, Any]:
    """The user of the request's bearer token (set as request[USER]); 401 with
    WWW-Authenticate without a valid one."""
    claims = bearer_claims(request)
    if claims is None:
        raise Unauthorized("a bearer access token is required")
    if isinstance(claims, tokens.InvalidToken):
        raise InvalidToken(str(claims))
    user = await auth.authenticate(db=deps.db(request), claims=claims)
    request[USER] = user
    request[USER_ID] = str(user["id"])
    return user


def bearer_claims(request: web.Request) -> AccessClaims | tokens.InvalidToken | None:
    """The claims of the request's bearer token, or why it is not valid; None without one.
    Decoded once per request: the rate limiter keys on the user, the guard then checks the
    account and the sign-in."""
    if CLAIMS in request:
        return request[CLAIMS]
    found: AccessClaims | tokens.InvalidToken | None = None
    header = request.headers.get(AUTHORIZATION)
    if header is None:  # most requests: no token at all
        request[CLAIMS] = None
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        try:
            found = request.app[TOKEN_KEYS].decode(token)
        except tokens.InvalidToken as exc:
            found = exc
    request[CLAIMS] = found
    return found


def bearer_matches(request: web.Request, token: SecretStr) -> bool:
    header = request.headers.get(AUTHORIZATION, "")
    if not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].encode(), token.get_secret_value().encode())


def require_operator(request: web.Request, token: SecretStr | None, *, variable: str) -> None:
    """Pass with the bearer token; with none configured (production), nobody."""
    if token is None:
        raise Forbidden(f"closed: {variable} is not set")
    if not request.headers.get(AUTHORIZATION, "").startswith("Bearer "):
        raise Unauthorized(
            "a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="btec"'}
        )
    if not bearer_matches(request, token):
        raise Forbidden("this token is not accepted here")
