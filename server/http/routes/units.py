"""The unit catalogue over HTTP: a cached, paginated list and single units, with ETags."""

from __future__ import annotations

import unicodedata
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from server.domain.fields import printable, require
from server.domain.units import UnitSchema
from server.http import deps
from server.http.conditional import ETAG_HEADERS, IF_NONE_MATCH, cacheable_json
from server.http.guard import public, roles
from server.http.openapi import (
    LIMITED_PROBLEMS,
    PUBLIC,
    SIGNED_IN,
    json_response,
    problem_responses,
)
from server.http.ratelimit import alongside
from server.http.responses import answer, no_content
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
        },
    )
    limit = fields.Int(load_default=50, validate=validate.Range(1, 100))
    offset = fields.Int(load_default=0, validate=validate.Range(0, 100_000))

    @post_load
    def _tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        q = unicodedata.normalize("NFC", data.get("q", "")).strip().lower()
        data["q"] = q or None  # one cache entry whatever the case or spacing
        return data


class UnitPath(Schema):
    id = fields.Int(required=True, validate=validate.Range(1, 2**63 - 1))


UNIT_EXAMPLE = {
    "id": 7,
    "code": "K/615/1544",
    "title": "Programming",
    "level": 3,
    "credits": 60,
    "created_at": "2026-09-01T08:00:00+00:00",
    "updated_at": "2026-09-01T08:00:00+00:00",
}


@docs(
    tags=["units"],
    summary="List the unit catalogue",
    description="Units ordered by code, filtered by level and by words in the code or title. "
    "Answers come from the Redis cache (shared by every server process) and are invalidated "
    "the moment the catalogue changes. Each answer carries an ETag; send it back in "
    "If-None-Match to get 304 with no body while the page is unchanged.",
    security=PUBLIC,
    parameters=[IF_NONE_MATCH],
    responses={
        200: json_response(
            "One page of units", {"items": [UNIT_EXAMPLE], "total": 1, "limit": 50, "offset": 0}
        )
        | {"headers": ETAG_HEADERS},
        304: {"description": "Not modified: the If-None-Match ETag is current."},
        **problem_responses("validation_failed", "db_unavailable", *LIMITED_PROBLEMS),
    },
)
@querystring_schema(CatalogueQuery)
@alongside
@public
@routes.get("/api/v1/units", name="units")
async def catalogue(request: web.Request) -> web.Response:
    q = deps.query(request)
    page = await units.catalogue(
        db=deps.db(request), cache=deps.cache(request), level=q.get("level"), q=q["q"],
        limit=q["limit"], offset=q["offset"],
    )  # fmt: skip
    return cacheable_json(request, page)


@docs(
    tags=["units"],
    summary="Get one unit",
    description="From the cache like the list, with an ETag and 304 on If-None-Match.",
    security=PUBLIC,
    parameters=[IF_NONE_MATCH],
    responses={
        200: json_response("The unit", UNIT_EXAMPLE) | {"headers": ETAG_HEADERS},
        304: {"description": "Not modified: the If-None-Match ETag is current."},
        **problem_responses("not_found", "validation_failed", "db_unavailable", *LIMITED_PROBLEMS),
    },
)
@match_info_schema(UnitPath)
@alongside
@public
@routes.get("/api/v1/units/{id}", name="unit")
async def one(request: web.Request) -> web.Response:
    found = await units.unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"]
    )
    return cacheable_json(request, found)


STAFF_PROBLEMS = ("unauthorized", "invalid_token", "forbidden", "email_unverified")


@docs(
    tags=["units"],
    summary="Add a unit (admins and assessors)",
    description="409 `unit_code_taken` if a unit has the code already (codes ignore case). "
    "The cached catalogue shows it at once.",
    security=SIGNED_IN,
    responses={
        201: json_response("Created", UNIT_EXAMPLE),
        **problem_responses(
            *STAFF_PROBLEMS,
            "unit_code_taken",
            "validation_failed",
            "malformed_body",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(UnitSchema)
@roles("admin", "assessor")
@routes.post("/api/v1/units", name="units_create")
async def create(request: web.Request) -> web.Response:
    made = await units.create_unit(
        db=deps.db(request), cache=deps.cache(request), unit=deps.body(request)
    )
    return answer(made, 201, location=f"/api/v1/units/{made['id']}")


@docs(
    tags=["units"],
    summary="Change a unit (admins and assessors)",
    description="Any of code, title, level and credits. Assignments of the unit show the "
    "change at once.",
    security=SIGNED_IN,
    responses={
        200: json_response("The unit", UNIT_EXAMPLE | {"title": "Programming (2026)"}),
        **problem_responses(
            *STAFF_PROBLEMS,
            "not_found",
            "unit_code_taken",
            "validation_failed",
            "malformed_body",
            *LIMITED_PROBLEMS,
        ),
    },
)
@match_info_schema(UnitPath)
@request_schema(UnitChanges)
@roles("admin", "assessor")
@routes.patch("/api/v1/units/{id}", name="units_update")
async def update(request: web.Request) -> web.Response:
    changed = await units.update_unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"],
        changes=dict(deps.body(request)),
    )  # fmt: skip
    return answer(changed)


@docs(
    tags=["units"],
    summary="Delete a unit (admins and assessors)",
    description="Only a unit with no assignments: 409 `unit_in_use` otherwise.",
    security=SIGNED_IN,
    responses={
        204: {"description": "Deleted"},
        **problem_responses(
            *STAFF_PROBLEMS, "not_found", "unit_in_use", "validation_failed", *LIMITED_PROBLEMS
        ),
    },
)
@match_info_schema(UnitPath)
@roles("admin", "assessor")
@routes.delete("/api/v1/units/{id}", name="units_delete")
async def delete(request: web.Request) -> web.Response:
    await units.delete_unit(
        db=deps.db(request), cache=deps.cache(request), unit_id=deps.path(request)["id"]
    )
    return no_content()
