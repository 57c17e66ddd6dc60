"""The baseline for `GET /api/v1/assignments?unit=...&limit=20`: a bare aiohttp + asyncpg
handler that decodes the same JWT (PyJWT, HS256, the same claims checked as
server.platform.tokens) and runs the same query as btec's catalogue page (server.store.assignments
`page`: the summary columns, each assignment's criterion codes, `count(*) OVER ()`, by
deadline and id), returning the same JSON document, encoded the same compact way.

No cache, no middleware, no access log, no rate limit, no account checks.
`python perf/bare_assignments.py PORT DATABASE_URL KEY ISSUER` (KEY: the signing secret).
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import jwt
from aiohttp import web
from bare_me import main as serve

REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "typ", "ver"]
CRITERIA_ORDER = "array_position(ARRAY['P', 'M', 'D'], c.band), c.number"
PAGE_SQL = (
    "SELECT a.id, a.unit_id, u.code AS unit_code, a.title, a.opens_at, a.deadline, "
    "a.updated_at, ARRAY(SELECT c.code FROM assignment_criteria c WHERE c.assignment_id = a.id "
    f"ORDER BY {CRITERIA_ORDER}) AS criteria, count(*) OVER () AS total FROM assignments a "
    "JOIN units u ON u.id = a.unit_id WHERE ($1::bigint IS NULL OR a.unit_id = $1) "
    "AND ($2::text IS NULL OR a.title ILIKE $2 OR a.brief ILIKE $2) "
    "ORDER BY a.deadline, a.id LIMIT $3 OFFSET $4"
)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def make_app(url: str, key: str, issuer: str) -> web.Application:
    app = web.Application()
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def pool_ctx(app: web.Application) -> Any:
        app[pool_key] = await asyncpg.create_pool(url, min_size=2, max_size=10)
        yield
        await app[pool_key].close()

    async def catalogue(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], audience="btec-api",
                                issuer=issuer, leeway=30,
                                options={"require": REQUIRED})  # fmt: skip
        except jwt.PyJWTError:
            raise web.HTTPUnauthorized() from None
        if claims["typ"] != "access":
            raise web.HTTPUnauthorized()
        try:
            unit = int(request.query["unit"]) if "unit" in request.query else None
            limit = int(request.query.get("limit", "20"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise web.HTTPUnprocessableEntity() from None
        async with request.app[pool_key].acquire() as conn:
            rows = await conn.fetch(PAGE_SQL, unit, None, limit, offset)
        items = [
            {
                "id": r["id"],
                "unit_id": r["unit_id"],
                "unit_code": r["unit_code"],
                "title": r["title"],
                "opens_at": r["opens_at"].isoformat(),
                "deadline": r["deadline"].isoformat(),
                "criteria": list(r["criteria"]),
                "updated_at": r["updated_at"].isoformat(),
            }
            for r in rows
        ]
        total = int(rows[0]["total"]) if rows else 0
        after = offset + limit  # the next page's offset, as btec's pages give it
        body = {"items": items, "total": total, "limit": limit, "offset": offset,
                "next_offset": after if after < total and after <= 100_000 else None}  # fmt: skip
        return web.json_response(body, dumps=dumps)

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/api/v1/assignments", catalogue)
    return app


if __name__ == "__main__":
    serve(make_app)
