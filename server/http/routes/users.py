"""Accounts for admins: list, read, create (assessors and admins), update and deactivate."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from server.domain.fields import MailAddress
from server.http.openapi import LIMITED_PROBLEMS, json_response, problem_responses
from server.http.routes.auth import NO_STORE, SIGNED_IN, USER_EXAMPLE, current_user, roles
from server.platform.passwords import MAX_LENGTH, PASSWORDS
from server.platform.postgres import connection
from server.services import users
from server.services.units import Connect

routes = web.RouteTableDef()
ROLE = validate.OneOf(users.ROLES)
ADMIN_PROBLEMS = ("unauthorized", "invalid_token", "forbidden", "email_unverified")


class ListQuery(Schema):
    role = fields.Str(validate=ROLE, metadata={"example": "assessor"})
    active = fields.Bool(metadata={"example": True})
    limit = fields.Int(load_default=50, validate=validate.Range(1, 100))
    offset = fields.Int(load_default=0, validate=validate.Range(0, 1_000_000))


class UserPath(Schema):
    id = fields.Int(required=True, validate=validate.Range(1, 2**63 - 1))


class NewUser(Schema):
    email = MailAddress(required=True, metadata={"example": "assessor@college.example.ac.uk"})
    full_name = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"example": "Sam Assessor"},
    )
    role = fields.Str(required=True, validate=ROLE, metadata={"example": "assessor"})
    password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "a first long passphrase"},
    )  # fmt: skip


class UserChanges(Schema):
    full_name = fields.Str(validate=validate.Length(min=1, max=200), metadata={"example": "Sam A."})
    role = fields.Str(validate=ROLE, metadata={"example": "admin"})
    is_active = fields.Bool(metadata={"example": False})


def _db(request: web.Request) -> Connect:
    return lambda: connection(request)


@docs(
    tags=["users"],
    summary="List accounts (admins)",
    description="In the order they were made, a page at a time; filter by role and active.",
    security=SIGNED_IN,
    responses={
        200: json_response(
            "A page of accounts", {"items": [USER_EXAMPLE], "total": 1, "limit": 50, "offset": 0}
        ),
        **problem_responses(*ADMIN_PROBLEMS, "validation_failed", *LIMITED_PROBLEMS),
    },
)
@querystring_schema(ListQuery)
@roles("admin")
@routes.get("/api/v1/users", name="users_list")
async def list_users(request: web.Request) -> web.Response:
    await current_user(request)
    q = request["querystring"]
    items, total = await users.list_users(
        db=_db(request), role=q.get("role"), active=q.get("active"), limit=q["limit"],
        offset=q["offset"],
    )  # fmt: skip
    body = {"items": items, "total": total, "limit": q["limit"], "offset": q["offset"]}
    return web.json_response(body, headers=NO_STORE)


@docs(
    tags=["users"],
    summary="Create an account (admins)",
    description="Usually an assessor or another admin; created verified, since an admin "
    "vouches for it. 409 `email_taken` if an account uses the address.",
    security=SIGNED_IN,
    responses={
        201: json_response("Created", USER_EXAMPLE),
        **problem_responses(
            *ADMIN_PROBLEMS, "email_taken", "validation_failed", "malformed_body", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(NewUser)
@roles("admin")
@routes.post("/api/v1/users", name="users_create")
async def create(request: web.Request) -> web.Response:
    await current_user(request)
    body = request["data"]
    made = await users.create_user(
        db=_db(request), passwords=request.app[PASSWORDS], email=body["email"],
        full_name=body["full_name"], role=body["role"], password=body["password"], verified=True,
    )  # fmt: skip
    return web.json_response(made, status=201, headers=NO_STORE)


@docs(
    tags=["users"],
    summary="Read an account (admins)",
    security=SIGNED_IN,
    responses={
        200: json_response("The account", USER_EXAMPLE),
        **problem_responses(*ADMIN_PROBLEMS, "not_found", "validation_failed", *LIMITED_PROBLEMS),
    },
)
@match_info_schema(UserPath)
@roles("admin")
@routes.get("/api/v1/users/{id:\\d+}", name="users_get")
async def get(request: web.Request) -> web.Response:
    await current_user(request)
    found = await users.get_user(db=_db(request), user_id=request["match_info"]["id"])
    return web.json_response(found, headers=NO_STORE)


@docs(
    tags=["users"],
    summary="Change an account's name, role or active flag (admins)",
    description="`is_active: false` deactivates: the account can no longer sign in and every "
    "session it has ends. A new role applies from the user's next request.",
    security=SIGNED_IN,
    responses={
        200: json_response("The account", USER_EXAMPLE),
        **problem_responses(
            *ADMIN_PROBLEMS, "not_found", "validation_failed", "malformed_body", *LIMITED_PROBLEMS
        ),
    },
)
@match_info_schema(UserPath)
@request_schema(UserChanges)
@roles("admin")
@routes.patch("/api/v1/users/{id:\\d+}", name="users_update")
async def update(request: web.Request) -> web.Response:
    await current_user(request)
    changed = await users.update_user(
        db=_db(request), user_id=request["match_info"]["id"], changes=dict(request["data"])
    )
    return web.json_response(changed, headers=NO_STORE)


@docs(
    tags=["users"],
    summary="Deactivate an account (admins)",
    description="The account can no longer sign in, and every session it has ends.",
    security=SIGNED_IN,
    responses={
        200: json_response("The account", USER_EXAMPLE | {"is_active": False}),
        **problem_responses(*ADMIN_PROBLEMS, "not_found", "validation_failed", *LIMITED_PROBLEMS),
    },
)
@match_info_schema(UserPath)
@roles("admin")
@routes.post("/api/v1/users/{id:\\d+}/deactivate", name="users_deactivate")
async def deactivate(request: web.Request) -> web.Response:
    await current_user(request)
    changed = await users.update_user(
        db=_db(request), user_id=request["match_info"]["id"], changes={"is_active": False}
    )
    return web.json_response(changed, headers=NO_STORE)
