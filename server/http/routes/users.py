"""Accounts over HTTP: the signed-in user's own profile (read it, change the name, move to a
new address), and for admins: list, read, create, update and deactivate accounts (rules in
server.services.users)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from server.domain.fields import TEXT, MailAddress, StrictBool
from server.domain.pages import page
from server.http import deps, schemas
from server.http.examples import USER_EXAMPLE
from server.http.guard import roles, unverified_allowed
from server.http.openapi import (
    json_response,
    operation,
    page_example,
)
from server.http.ratelimit import limited
from server.http.responses import answer
from server.http.schemas import IdPath, page_fields
from server.services import users

routes = web.RouteTableDef()
ROLE = validate.OneOf(users.ROLES)


@operation("users", ok={200: json_response("The profile", USER_EXAMPLE)})
@unverified_allowed
@routes.get("/api/v1/users/me", name="users_me")
async def me(request: web.Request) -> web.Response:
    """The signed-in user's profile

    The account the access token belongs to: id, address, name, role, when its address was verified
    (null: not yet) and whether it is active. A user whose address is not verified yet may call it.
    """
    return answer(users.public(deps.user(request)))


class MeChanges(Schema):
    full_name = fields.Str(
        validate=validate.Length(min=1, max=200),
        metadata={"example": "Sam Student-Smith", TEXT: "name"},
    )
    email = MailAddress(metadata={"example": "sam.smith@college.example.ac.uk"})
    current_password = schemas.password(
        "correct horse battery staple", "Required with a new email address.", required=False
    )


@operation(
    "users",
    ok={
        200: json_response(
            "The profile and the address waiting for confirmation",
            USER_EXAMPLE | {"pending_email": "sam.smith@college.example.ac.uk"},
        )
    },
    problems="wrong_password email_taken queue_unavailable",
)
@request_schema(MeChanges)
@limited("users_me_update", "10/3600:closed")
@unverified_allowed
@routes.patch("/api/v1/users/me", name="users_me_update")
async def update_me(request: web.Request) -> web.Response:
    """Change the signed-in user's name or email address

    `full_name` changes at once. A new `email` needs `current_password` and changes nothing yet: a
    link goes to the new address (the answer's `pending_email`), and confirming it (`POST
    /auth/verify/confirm`) makes it the sign-in address and mails a notice to the old one. Until
    then the account signs in with the old address. Allowed before the address is verified, to fix a
    mistyped one.
    """
    body = deps.body(request)
    profile = await users.update_me(
        db=deps.db(request), passwords=deps.passwords(request), jobs=deps.jobs(request),
        user=deps.user(request), full_name=body.get("full_name"), email=body.get("email"),
        current_password=body.get("current_password"),
    )  # fmt: skip
    return answer(profile)


class ListQuery(Schema):
    role = fields.Str(validate=ROLE, metadata={"example": "assessor"})
    active = fields.Bool(metadata={"example": True})
    limit, offset = page_fields(50)


class NewUser(Schema):
    email = MailAddress(required=True, metadata={"example": "assessor@college.example.ac.uk"})
    full_name = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"example": "Sam Assessor", TEXT: "name"},
    )
    role = fields.Str(required=True, validate=ROLE, metadata={"example": "assessor"})
    password = schemas.new_password("a first long passphrase")


class UserChanges(Schema):
    full_name = fields.Str(
        validate=validate.Length(min=1, max=200), metadata={"example": "Sam A.", TEXT: "name"}
    )
    role = fields.Str(validate=ROLE, metadata={"example": "admin"})
    is_active = StrictBool(metadata={"example": False})


@operation("users", ok={200: json_response("A page of accounts", page_example(USER_EXAMPLE, 50))})
@querystring_schema(ListQuery)
@roles("admin")
@routes.get("/api/v1/users", name="users_list")
async def list_users(request: web.Request) -> web.Response:
    """List accounts (admins)

    In the order they were made, a page at a time; filter by role and active.
    """
    q = deps.query(request)
    items, total = await users.list_users(
        db=deps.db(request), role=q.get("role"), active=q.get("active"), limit=q["limit"],
        offset=q["offset"],
    )  # fmt: skip
    return answer(page(items, total=total, limit=q["limit"], offset=q["offset"]))


@operation("users", ok={201: json_response("Created", USER_EXAMPLE)}, problems="email_taken")
@request_schema(NewUser)
@roles("admin")
@routes.post("/api/v1/users", name="users_create")
async def create(request: web.Request) -> web.Response:
    """Create an account (admins)

    Usually an assessor or another admin; created verified, since an admin vouches for it. 409
    `email_taken` if an account uses the address.
    """
    body = deps.body(request)
    made = await users.create_user(
        db=deps.db(request), passwords=deps.passwords(request), email=body["email"],
        full_name=body["full_name"], role=body["role"], password=body["password"], verified=True,
    )  # fmt: skip
    return answer(made, 201, location=f"/api/v1/users/{made['id']}")


@operation("users", ok={200: json_response("The account", USER_EXAMPLE)}, problems="not_found")
@match_info_schema(IdPath)
@roles("admin")
@routes.get("/api/v1/users/{id:\\d+}", name="users_get")
async def get(request: web.Request) -> web.Response:
    """Read an account (admins)

    Any account by its id, active or not, as the list shows it.
    """
    return answer(await users.get_user(db=deps.db(request), user_id=deps.path(request)["id"]))


@operation("users", ok={200: json_response("The account", USER_EXAMPLE)}, problems="not_found")
@match_info_schema(IdPath)
@request_schema(UserChanges)
@roles("admin")
@routes.patch("/api/v1/users/{id:\\d+}", name="users_update")
async def update(request: web.Request) -> web.Response:
    """Change an account's name, role or active flag (admins)

    `is_active: false` deactivates: the account can no longer sign in and every session it has ends.
    A new role applies from the user's next request.
    """
    changed = await users.update_user(
        db=deps.db(request), user_id=deps.path(request)["id"], changes=dict(deps.body(request))
    )
    return answer(changed)


@operation(
    "users",
    ok={200: json_response("The account", USER_EXAMPLE | {"is_active": False})},
    problems="not_found",
)
@match_info_schema(IdPath)
@roles("admin")
@routes.post("/api/v1/users/{id:\\d+}/deactivate", name="users_deactivate")
async def deactivate(request: web.Request) -> web.Response:
    """Deactivate an account (admins)

    The account can no longer sign in, and every session it has ends.
    """
    changed = await users.update_user(
        db=deps.db(request), user_id=deps.path(request)["id"], changes={"is_active": False}
    )
    return answer(changed)
