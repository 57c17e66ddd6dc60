"""The address a request comes from: the peer, or behind trusted proxies the address they
saw. For rate limits, sign-in throttling and the access log; never for access, which no
address decides."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web


def client_ip(request: web.Request, trusted: list[Any]) -> str:
    """The peer, or, behind trusted proxies, the right-most X-Forwarded-For hop they did
    not add themselves."""
    peer = request.remote or ""
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
