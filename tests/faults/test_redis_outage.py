"""Sign-out while Redis is down: revocations live in PostgreSQL, so the sign-out answers 204
and revokes for real. The access token it ended is refused at once, though the rate limiter
cannot reach Redis; its refresh token is refused once refreshing is possible again (its limit
fails closed while Redis is down); another sign-in of the same account keeps working."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.platform.embedded import EmbeddedRedis
from tests.support.accounts import CHEAP, bearer, make_admin, signed_in, use_refresh


async def test_sign_out_during_a_redis_outage_revokes_for_real(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any], own_redis: EmbeddedRedis,
) -> None:  # fmt: skip
    settings = make_settings(redis_url=SecretStr(own_redis.url()), **CHEAP)
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ops@example.org")
    session = await signed_in(http, "ops@example.org")
    other = await signed_in(http, "ops@example.org")  # a second sign-in: not signed out
    assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 200

    await asyncio.to_thread(own_redis.stop)
    out = await http.post("/api/v1/auth/logout", headers=bearer(session),
                          json={"refresh_token": session["refresh_token"]})  # fmt: skip
    assert out.status == 204, await out.text()
    refused = await http.get("/api/v1/users/me", headers=bearer(session))
    assert refused.status == 401
    assert (await refused.json())["code"] == "invalid_token"
    assert (await http.get("/api/v1/users/me", headers=bearer(other))).status == 200
    # Refreshing is limited by a policy that fails closed: refused while Redis is down.
    assert (await use_refresh(http, session["refresh_token"])).status == 503

    await asyncio.to_thread(own_redis.start)
    assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 401
    assert (await use_refresh(http, session["refresh_token"])).status == 401
    assert (await http.get("/api/v1/users/me", headers=bearer(other))).status == 200
