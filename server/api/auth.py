"""Signing in over HTTP, the signed-in user's profile, and the bearer check every protected
route makes."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, request_schema
from marshmallow import Schema, fields, validate

from server import keys
from server.api.limits import limited
from server.api.openapi import BEARER, LIMITED_PROBLEMS, json_response, problem_responses
from server.errors import Unauthorized
from server.infra.passwords import MAX_LENGTH
from server.infra.postgres import connection
from server.services import auth
from server.services.users import public

routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}
SIGNED_IN: list[dict[str, list[str]]] = [{BEARER: []}]


class LoginSchema(Schema):
    email = fields.Str(
        required=True, validate=validate.Length(min=1, max=320),
        metadata={"example": "assessor@college.example.ac.uk"},
    )  # fmt: skip
    password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "correct horse battery staple"},
    )  # fmt: skip


async def current_user(request: web.Request) -> dict[str, Any]:
    """The signed-in user, from the bearer access token; 401 with WWW-Authenticate else."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer access token is required")
    user = await auth.authenticate(
        db=lambda: connection(request), keys=request.app[keys.TOKEN_KEYS], token=token.strip()
    )
    request[keys.USER_ID] = str(user["id"])
    return user


SESSION_EXAMPLE = {"access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImswIn0.eyJzdWIiOiI3In0.c2ln",
                   "token_type": "Bearer", "expires_in": 900}  # fmt: skip
USER_EXAMPLE = {
    "id": 7,
    "email": "assessor@college.example.ac.uk",
    "full_name": "Sam Assessor",
    "role": "assessor",
    "is_active": True,
    "email_verified_at": "2026-09-01T08:05:00+00:00",
    "created_at": "2026-09-01T08:00:00+00:00",
    "updated_at": "2026-09-01T08:05:00+00:00",
}


@docs(
    tags=["auth"],
    summary="Sign in with email and password",
    description="Answers an access token (a JWT, `Authorization: Bearer ...`) valid for "
    "`expires_in` seconds. An unknown email, a wrong password and a deactivated account get "
    "the same 401 `invalid_credentials` after the same work. Limited per client IP.",
    security=[{}],
    responses={
        200: json_response("Signed in", SESSION_EXAMPLE),
        **problem_responses(
            "invalid_credentials", "validation_failed", "malformed_body", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(LoginSchema, example={"email": "assessor@college.example.ac.uk",
                                      "password": "correct horse battery staple"})  # fmt: skip
@limited("auth_login", "10/60:closed")
@routes.post("/api/v1/auth/login", name="auth_login")
async def login(request: web.Request) -> web.Response:
    body = request["data"]
    app = request.app
    session = await auth.login(
        db=lambda: connection(request), passwords=app[keys.PASSWORDS],
        keys=app[keys.TOKEN_KEYS], email=body["email"], password=body["password"],
    )  # fmt: skip
    return web.json_response(session.as_dict(), headers=NO_STORE)


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
    return web.json_response(public(user), headers=NO_STORE)
