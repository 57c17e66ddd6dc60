"""The signed-in user's own profile: read it, change the name, move to a new address."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema
from marshmallow import Schema, fields, validate

from server.domain.fields import MailAddress
from server.http.openapi import LIMITED_PROBLEMS, json_response, problem_responses
from server.http.ratelimit import limited
from server.http.routes.auth import (
    NO_STORE,
    SIGNED_IN,
    USER_EXAMPLE,
    address_key,
    cooldown,
    current_user,
)
from server.jobs.queue import JOBS
from server.platform.passwords import MAX_LENGTH, PASSWORDS
from server.platform.postgres import connection
from server.services import users

routes = web.RouteTableDef()


@docs(
    tags=["users"],
    summary="The signed-in user's profile",
    security=SIGNED_IN,
    responses={
        200: json_response("The profile", USER_EXAMPLE),
        **problem_responses("unauthorized", "invalid_token", *LIMITED_PROBLEMS),
    },
)
@routes.get("/api/v1/users/me", name="users_me")
async def me(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(users.public(user), headers=NO_STORE)


class MeChanges(Schema):
    full_name = fields.Str(
        validate=validate.Length(min=1, max=200), metadata={"example": "Sam Student-Smith"}
    )
    email = MailAddress(metadata={"example": "sam.smith@college.example.ac.uk"})
    current_password = fields.Str(
        validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "correct horse battery staple",
                  "description": "Required with a new email address."},
    )  # fmt: skip


@docs(
    tags=["users"],
    summary="Change the signed-in user's name or email address",
    description="`full_name` changes at once. A new `email` needs `current_password` and "
    "changes nothing yet: a link goes to the new address (the answer's `pending_email`), and "
    "confirming it (`POST /auth/verify/confirm`) makes it the sign-in address and mails a "
    "notice to the old one. Until then the account signs in with the old address. Allowed "
    "before the address is verified, to fix a mistyped one.",
    security=SIGNED_IN,
    responses={
        200: json_response(
            "The profile and the address waiting for confirmation",
            USER_EXAMPLE | {"pending_email": "sam.smith@college.example.ac.uk"},
        ),
        **problem_responses(
            "unauthorized",
            "invalid_token",
            "wrong_password",
            "email_taken",
            "validation_failed",
            "malformed_body",
            "queue_unavailable",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(MeChanges)
@limited("users_me_update", "10/3600:closed")
@routes.patch("/api/v1/users/me", name="users_me_update")
async def update_me(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = request["data"]
    profile, pending = await users.update_me(
        db=lambda: connection(request), passwords=request.app[PASSWORDS], user=user,
        full_name=body.get("full_name"), email=body.get("email"),
        current_password=body.get("current_password"),
    )  # fmt: skip
    if pending is not None:
        await request.app[JOBS].enqueue(
            "send_email_change", key=f"email-change:{user['id']}:{address_key(pending)}:"
            f"{cooldown()}", user_id=user["id"], email=pending,
        )  # fmt: skip
    return web.json_response(profile | {"pending_email": pending}, headers=NO_STORE)
