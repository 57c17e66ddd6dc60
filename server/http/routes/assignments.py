"""Assignments over HTTP: the cached catalogue for everyone signed in, and changes by admins
and the assessors named on them (rules in server.services.assignments)."""

from __future__ import annotations

import unicodedata
from typing import Any

from aiohttp import web
from aiohttp_apigami import match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from server.domain.fields import TEXT, free_text, printable, require
from server.domain.grading import CODE
from server.domain.pages import CATALOGUE_MAX_OFFSET
from server.http import deps
from server.http.conditional import IF_NONE_MATCH, cacheable_json, cacheable_ok
from server.http.guard import roles
from server.http.openapi import (
    json_response,
    operation,
    page_example,
)
from server.http.ratelimit import alongside
from server.http.responses import answer, no_content
from server.http.schemas import ID, IdPath, page_fields
from server.services import assignments

routes = web.RouteTableDef()


def _title(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip())


class Criterion(Schema):
    code = fields.Str(
        required=True,
        validate=validate.Regexp(CODE, error="A band and a number, such as P1, M2 or D1."),
        metadata={"example": "P1"},
    )
    description = fields.Str(
        required=True,
        validate=[validate.Length(min=1, max=2000), free_text],
        metadata={
            "example": "Explain the principles of object-oriented programming.",
            TEXT: "prose",
        },
    )


def _criteria_rules(criteria: list[dict[str, Any]]) -> None:
    codes = [c["code"] for c in criteria]
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise ValidationError({"criteria": [f"Given more than once: {', '.join(repeated)}."]})
    if not any(c.startswith("P") for c in codes):
        raise ValidationError({"criteria": ["At least one Pass (P) criterion is needed."]})


class AssignmentChanges(Schema):
    """Any fields of an assignment; criteria and assessor_ids replace the whole list."""

    unit_id = fields.Int(strict=True, validate=ID, metadata={"example": 7})
    title = fields.Str(
        validate=[validate.Length(min=1, max=200), printable],
        metadata={"example": "Assignment 1: OOP principles", TEXT: "name"},
    )
    brief = fields.Str(
        validate=[validate.Length(min=1, max=20000), free_text],
        metadata={"example": "Write a report that explains...", TEXT: "prose"},
    )
    opens_at = fields.AwareDateTime(format="iso", metadata={"example": "2026-09-07T08:00:00+00:00"})
    deadline = fields.AwareDateTime(format="iso", metadata={"example": "2026-10-16T17:00:00+01:00"})
    criteria = fields.List(fields.Nested(Criterion), validate=validate.Length(min=1, max=60))
    assessor_ids = fields.List(
        fields.Int(strict=True, validate=ID),
        validate=validate.Length(max=20),
        metadata={"description": "Who assesses it (assessors or admins); replaces the list."},
    )

    @validates_schema
    def _rules(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")
        if "opens_at" in data and "deadline" in data and data["deadline"] <= data["opens_at"]:
            raise ValidationError({"deadline": ["Must be after opens_at."]})
        if "criteria" in data:
            _criteria_rules(data["criteria"])

    @post_load
    def _tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "title" in data:
            data["title"] = _title(data["title"])
            if not data["title"]:
                raise ValidationError({"title": ["Must not be blank."]})
        if "assessor_ids" in data:
            data["assessor_ids"] = list(dict.fromkeys(data["assessor_ids"]))
        return data


class NewAssignment(AssignmentChanges):
    """A whole assignment: the fields of a change, all required but assessor_ids."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        require(self, ("unit_id", "title", "brief", "opens_at", "deadline", "criteria"), True)


class CatalogueQuery(Schema):
    unit = fields.Int(validate=ID, metadata={"example": 7, "description": "A unit's id."})
    q = fields.Str(
        validate=[validate.Length(min=1, max=100), printable],
        metadata={"description": "Words in the title or brief (case-insensitive).",
                  "example": "report", TEXT: "printable"},
    )  # fmt: skip
    limit, offset = page_fields(20, CATALOGUE_MAX_OFFSET)

    @post_load
    def _tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        q = unicodedata.normalize("NFC", data.get("q", "")).strip().lower()
        data["q"] = q or None
        return data


CRITERIA_EXAMPLE = [
    {"code": "P1", "band": "P", "description": "Explain the principles of OOP."},
    {"code": "P2", "band": "P", "description": "Write a program that uses classes."},
    {"code": "M1", "band": "M", "description": "Analyse how the design supports change."},
    {"code": "D1", "band": "D", "description": "Evaluate the design against alternatives."},
]
ASSIGNMENT_EXAMPLE = {
    "id": 12,
    "unit": {"id": 7, "code": "K/615/1544", "title": "Programming"},
    "title": "Assignment 1: OOP principles",
    "brief": "Write a report that explains the principles of object-oriented programming...",
    "opens_at": "2026-09-07T08:00:00+00:00",
    "deadline": "2026-10-16T16:00:00+00:00",
    "criteria": CRITERIA_EXAMPLE,
    "assessor_ids": [5],
    "created_by": 5,
    "created_at": "2026-09-01T08:00:00+00:00",
    "updated_at": "2026-09-01T08:00:00+00:00",
}
SUMMARY_EXAMPLE = {
    "id": 12,
    "unit_id": 7,
    "unit_code": "K/615/1544",
    "title": "Assignment 1: OOP principles",
    "opens_at": "2026-09-07T08:00:00+00:00",
    "deadline": "2026-10-16T16:00:00+00:00",
    "criteria": ["P1", "P2", "M1", "D1"],
    "updated_at": "2026-09-01T08:00:00+00:00",
}


@operation(
    "assignments",
    ok=cacheable_ok("A page of assignments", page_example(SUMMARY_EXAMPLE, 20)),
    parameters=[IF_NONE_MATCH],
)
@querystring_schema(CatalogueQuery)
@alongside
@routes.get("/api/v1/assignments", name="assignments")
async def catalogue(request: web.Request) -> web.Response:
    """List assignments (anyone signed in)

    Soonest deadline first; filter by unit and by words in the title or brief. Answers come from the
    shared Redis cache and change the moment an assignment or its unit does. Each carries an ETag:
    send it in If-None-Match for 304 while unchanged.
    """
    q = deps.query(request)
    page = await assignments.catalogue(
        db=deps.db(request), cache=deps.cache(request), unit_id=q.get("unit"), q=q["q"],
        limit=q["limit"], offset=q["offset"],
    )  # fmt: skip
    return cacheable_json(request, page)


@operation(
    "assignments",
    ok=cacheable_ok("The assignment", ASSIGNMENT_EXAMPLE),
    problems="not_found",
    parameters=[IF_NONE_MATCH],
)
@match_info_schema(IdPath)
@alongside
@routes.get("/api/v1/assignments/{id}", name="assignment")
async def one(request: web.Request) -> web.Response:
    """Get an assignment with its brief and criteria (anyone signed in)

    From the cache like the list, with an ETag and 304 on If-None-Match.
    """
    found = await assignments.assignment(
        db=deps.db(request), cache=deps.cache(request), assignment_id=deps.path(request)["id"]
    )
    return cacheable_json(request, found)


@operation(
    "assignments",
    ok={201: json_response("Created", ASSIGNMENT_EXAMPLE)},
    problems="assessor_required",
)
@request_schema(NewAssignment)
@roles("admin", "assessor")
@routes.post("/api/v1/assignments", name="assignments_create")
async def create(request: web.Request) -> web.Response:
    """Set an assignment (admins and assessors)

    With its criteria (codes such as P1, M1, D1: at least one P) and the assessors who grade it. An
    assessor who leaves out `assessor_ids` is its assessor; an admin must name at least one (422
    `assessor_required`: nobody could grade it).
    """
    made = await assignments.create(
        db=deps.db(request), cache=deps.cache(request), user=deps.user(request),
        data=deps.body(request),
    )  # fmt: skip
    return answer(made, 201, location=f"/api/v1/assignments/{made['id']}")


@operation(
    "assignments",
    ok={200: json_response("The assignment", ASSIGNMENT_EXAMPLE)},
    problems="not_assessor not_found criteria_locked assessor_required",
)
@match_info_schema(IdPath)
@request_schema(AssignmentChanges)
@roles("admin", "assessor")
@routes.patch("/api/v1/assignments/{id}", name="assignments_update")
async def update(request: web.Request) -> web.Response:
    """Change an assignment (admins and its assessors)

    Any fields; `criteria` and `assessor_ids` replace their lists. The criteria are fixed once a
    submission is graded (409 `criteria_locked`). A new deadline re-flags each submission as late or
    not. Assessors not named on it get 403 `not_assessor`; an empty `assessor_ids` is 422
    `assessor_required`.
    """
    changed = await assignments.update(
        db=deps.db(request), cache=deps.cache(request), user=deps.user(request),
        assignment_id=deps.path(request)["id"], changes=dict(deps.body(request)),
    )  # fmt: skip
    return answer(changed)


@operation(
    "assignments",
    ok={204: {"description": "Deleted"}},
    problems="not_assessor not_found assignment_in_use",
)
@match_info_schema(IdPath)
@roles("admin", "assessor")
@routes.delete("/api/v1/assignments/{id}", name="assignments_delete")
async def delete(request: web.Request) -> web.Response:
    """Delete an assignment (admins and its assessors)

    Only while nobody has submitted to it: 409 `assignment_in_use` after.
    """
    await assignments.delete(
        db=deps.db(request), cache=deps.cache(request), user=deps.user(request),
        assignment_id=deps.path(request)["id"],
    )  # fmt: skip
    return no_content()
