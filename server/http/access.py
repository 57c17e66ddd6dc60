"""Who may call operator endpoints: a bearer token from settings, or direct loopback callers."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from pydantic import SecretStr

from server.domain.errors import Forbidden, Unauthorized

FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def is_loopback(address: str | None) -> bool:
    """True when `address` is a loopback IP (or a unix socket peer, given as '')."""
    if address is None:
        return False
    if address == "":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def direct_loopback(request: web.Request) -> bool:
    """A loopback peer that is not a reverse proxy forwarding someone else."""
    return is_loopback(request.remote) and not any(h in request.headers for h in FORWARDING_HEADERS)


def bearer_matches(request: web.Request, token: SecretStr) -> bool:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return False
    return hmac.compare_digest(auth[7:].encode(), token.get_secret_value().encode())


def require_operator(request: web.Request, token: SecretStr | None, *, variable: str) -> None:
    """Pass with the bearer token; with no token configured, only direct loopback callers."""
    if token is None:
        if direct_loopback(request):
            return
        raise Forbidden(f"only loopback callers are served while {variable} is unset")
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        raise Unauthorized(
            "a bearer token is required", headers={"WWW-Authenticate": 'Bearer realm="btec"'}
        )
    if not bearer_matches(request, token):
        raise Forbidden("this token is not accepted here")
