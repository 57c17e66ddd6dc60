"""The unit catalogue over HTTP: a cached, paginated list and single units, with ETags."""

from __future__ import annotations

import unicodedata
from typing import Any

from aiohttp import web
from aiohttp_apigami import match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from server.domain.fields import TEXT, printable, require
from server.domain.pages import CATALOGUE_MAX_OFFSET
from server.domain.units import UnitSchema
from server.http import deps
from server.http.conditional import IF_NONE_MATCH, cacheable_json, cacheable_ok
from server.http.guard import public, roles
from server.http.openapi import (
    json_response,
    operation,
    page_example,
)
from server.http.ratelimit import alongside
from server.http.responses import answer, no_content
from server.http.schemas import IdPath, page_fields
from server.services import units

routes = web.RouteTableDef()


class UnitChanges(UnitSchema):
    """Any of a unit's fields; at least one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        require(self, list(self.fields), False)

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of code, title, level, credits.")


class CatalogueQuery(Schema):
    level = fields.Int(validate=validate.Range(1, 8), metadata={"example": 3})
    q = fields.Str(
        validate=[validate.Length(min=1, max=100), printable],
        metadata={
            "description": "Words in the code or title (case-insensitive).",
            "example": "prog",
            TEXT: "printable",
        },
    )
    limit, offset = page_fields(50, CATALOGUE_MAX_OFFSET)

    @post_load
    def _tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        q = unicodedata.normalize("NFC", data.get("q", "")).strip().lower()
        data["q"] = q or None  # one cache entry whatever the case or spacing
        return data


UNIT_EXAMPLE = {
    "id": 7,
    "code": "K/615/1544",
    "title": "Programming",
    "level": 3,
    "credits": 60,
    "created_at": "2026-09-01T08:00:00+00:00",
    "updated_at": "2026-09-01T08:00:00+00:00",
}


@operation(
    "units",
    ok=cacheable_ok("One page of units", page_example(UNIT_EXAMPLE, 50)),
    problems="db_unavailable",
    parameters=[IF_NONE_MATCH],
)
@querystring_schema(CatalogueQuery)
@alongside
@public
@routes.get("/api/v1/units", name="units")
async def catalogue(request: web.Request) -> web.Response:
    """List the unit catalogue

    Units ordered by code, filtered by level and by words in the code or title. Answers come from
    the Redis cache (shared by every server process) and are invalidated the moment the catalogue
    changes. Each answer carries an ETag; send it back in If-None-Match to get 304 with no body
    while the page is unchanged.
    """
    q = deps.query(request)
    page = await units.catalogue(
        db=deps.db(request), cache=deps.cache(request), level=q.get("level"), q=q["q"],
        limit=q["limit"], offset=q["offset"],
    )  # fmt: skip
    return cacheable_json(request, page)


@operation(
    "units",
    ok=cacheable_ok("The unit", UNIT_EXAMPLE),
    problems="not_found db_unavailable",
    parameters=[IF_NONE_MATCH],
)
@match_info_schema(IdPath)
@alongside
@public
@routes.get("/api/v1/units/{id}", name="unit")
async def one(request: web.Request) -> web.Response:
    """Get one unit

    From the cache like the list, with an ETag and 304 on If-None-Match.
    """
    found = await units.unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"]
    )
    return cacheable_json(request, found)


@operation("units", ok={201: json_response("Created", UNIT_EXAMPLE)}, problems="unit_code_taken")
@request_schema(UnitSchema)
@roles("admin", "assessor")
@routes.post("/api/v1/units", name="units_create")
async def create(request: web.Request) -> web.Response:
    """Add a unit (admins and assessors)

    409 `unit_code_taken` if a unit has the code already (codes ignore case). The cached catalogue
    shows it at once.
    """
    made = await units.create_unit(
        db=deps.db(request), cache=deps.cache(request), unit=deps.body(request)
    )
    return answer(made, 201, location=f"/api/v1/units/{made['id']}")


@operation(
    "units",
    ok={200: json_response("The unit", UNIT_EXAMPLE | {"title": "Programming (2026)"})},
    problems="not_found unit_code_taken",
)
@match_info_schema(IdPath)
@request_schema(UnitChanges)
@roles("admin", "assessor")
@routes.patch("/api/v1/units/{id}", name="units_update")
async def update(request: web.Request) -> web.Response:
    """Change a unit (admins and assessors)

    Any of code, title, level and credits. Assignments of the unit show the change at once.
    """
    changed = await units.update_unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"],
        changes=dict(deps.body(request)),
    )  # fmt: skip
    return answer(changed)


@operation("units", ok={204: {"description": "Deleted"}}, problems="not_found unit_in_use")
@match_info_schema(IdPath)
@roles("admin", "assessor")
@routes.delete("/api/v1/units/{id}", name="units_delete")
async def delete(request: web.Request) -> web.Response:
    """Delete a unit (admins and assessors)

    Only a unit with no assignments: 409 `unit_in_use` otherwise.
    """
    await units.delete_unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"]
    )
    return no_content()
