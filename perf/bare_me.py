"""The baseline for `GET /api/v1/users/me`: a bare aiohttp + asyncpg handler that decodes the
same JWT (PyJWT, HS256, same claims checked) and reads the same row by primary key.

No middleware, no access log, no rate limit. `python perf/bare_me.py PORT DATABASE_URL KEY
ISSUER` (KEY: the signing secret).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import jwt
from aiohttp import web

COLUMNS = "id, email, full_name, role, is_active, email_verified_at, created_at, updated_at"


def make_app(url: str, key: str, issuer: str) -> web.Application:
    app = web.Application()
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def pool_ctx(app: web.Application) -> Any:
        app[pool_key] = await asyncpg.create_pool(url, min_size=2, max_size=10)
        yield
        await app[pool_key].close()

    async def me(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], audience="btec-api",
                                issuer=issuer, leeway=30)  # fmt: skip
        except jwt.PyJWTError:
            raise web.HTTPUnauthorized() from None
        async with request.app[pool_key].acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM users WHERE id = $1",
                int(claims["sub"]),
            )
        if row is None:
            raise web.HTTPUnauthorized()
        user = dict(row)
        for field in ("email_verified_at", "created_at", "updated_at"):
            user[field] = user[field].isoformat() if user[field] else None
        return web.json_response(user)

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/api/v1/users/me", me)
    return app


def main(make: Callable[[str, str, str], web.Application] = make_app) -> None:
    """Serve `make(DATABASE_URL, KEY, ISSUER)` on PORT, from the command line, on uvloop."""
    port, url, key, issuer = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    import uvloop

    web.run_app(make(url, key, issuer), host="127.0.0.1", port=int(port),
                access_log=None, print=None, loop=uvloop.new_event_loop())  # fmt: skip


if __name__ == "__main__":
    main()
