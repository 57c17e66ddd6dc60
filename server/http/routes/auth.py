"""Accounts over HTTP: registration and email verification, signing in and out, refresh,
password reset and change, the signed-in user's profile, and the one bearer check every
protected route makes (including what unverified users may do)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp_apigami import docs, request_schema
from marshmallow import Schema, fields, validate

from server.config.settings import SETTINGS
from server.domain.errors import EmailUnverified, Forbidden, InvalidToken, Unauthorized
from server.domain.fields import MailAddress
from server.http.guard import bearer_claims
from server.http.keys import DENIED, USER_ID
from server.http.openapi import BEARER, LIMITED_PROBLEMS, json_response, problem_responses
from server.http.ratelimit import limited
from server.jobs.queue import JOBS
from server.platform import tokens as token_infra
from server.platform.denylist import DENYLIST
from server.platform.passwords import MAX_LENGTH, PASSWORDS
from server.platform.postgres import connection
from server.platform.tokens import TOKEN_KEYS, AccessClaims
from server.ratelimit.loginguard import LOGIN_GUARD
from server.services import auth, verification
from server.services import passwords as password_service
from server.services.passwords import FORGOT_ANSWER
from server.services.users import create_user

routes = web.RouteTableDef()
H = TypeVar("H", bound=Callable[..., Any])
ROLES_ATTR = "__btec_roles__"
NO_STORE = {"Cache-Control": "no-store"}
SIGNED_IN: list[dict[str, list[str]]] = [{BEARER: []}]
# What a signed-in user whose address is not verified yet may do; every other protected
# route answers 403 email_unverified (checked in signed_in, the one bearer check).
UNVERIFIED_MAY = frozenset(
    {"users_me", "users_me_update", "auth_verify_request", "auth_logout", "auth_logout_all"}
)
REFRESH_EXAMPLE = "q2Xo4l0o1o4-5pY0i3M9g0dT6a8u1bQx2n6Jc0Wk3rE"


def _refresh_field(**options: Any) -> fields.Str:
    return fields.Str(
        validate=validate.Length(min=1, max=200), metadata={"example": REFRESH_EXAMPLE}, **options
    )


class LoginSchema(Schema):
    email = fields.Str(
        required=True, validate=validate.Length(min=1, max=320),
        metadata={"example": "assessor@college.example.ac.uk"},
    )  # fmt: skip
    password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "correct horse battery staple"},
    )  # fmt: skip


class RefreshSchema(Schema):
    refresh_token = _refresh_field(required=True)


class LogoutSchema(Schema):
    refresh_token = _refresh_field(load_default=None)


async def signed_in(request: web.Request) -> tuple[dict[str, Any], AccessClaims]:
    """The signed-in user and the token's claims; 401 with WWW-Authenticate else."""
    claims = bearer_claims(request)
    if claims is None:
        raise Unauthorized("a bearer access token is required")
    if isinstance(claims, token_infra.InvalidToken):
        raise InvalidToken(str(claims))
    user = await auth.authenticate(
        db=lambda: connection(request), claims=claims, denied=request.get(DENIED)
    )
    request[USER_ID] = str(user["id"])
    if user["email_verified_at"] is None and request.match_info.route.name not in UNVERIFIED_MAY:
        raise EmailUnverified("verify your email address first: see /api/v1/auth/verify/request")
    needed = getattr(request.match_info.handler, ROLES_ATTR, None)
    if needed is not None and user["role"] not in needed:
        raise Forbidden(f"this needs the role {' or '.join(sorted(needed))}")
    return user, claims


def roles(*names: str) -> Callable[[H], H]:
    """Declare who may call a route where it is defined: `@roles("admin")`. Checked in
    signed_in, with the account's role as it is now."""

    def mark(handler: H) -> H:
        setattr(handler, ROLES_ATTR, frozenset(names))
        return handler

    return mark


async def current_user(request: web.Request) -> dict[str, Any]:
    return (await signed_in(request))[0]


SESSION_EXAMPLE = {
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImswIn0.eyJzdWIiOiI3In0.c2ln",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": REFRESH_EXAMPLE,
    "refresh_expires_in": 2592000,
}
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
    description="Answers an access token (a JWT for `Authorization: Bearer ...`, valid for "
    "`expires_in` seconds) and a refresh token for `/auth/refresh`. An unknown email, a wrong "
    "password and a deactivated account get the same 401 `invalid_credentials` after the "
    "same work. Limited per client IP, and per account: after BTEC_LOGIN_BACKOFF_AFTER "
    "failures in a row an address must wait (429 `login_throttled` with `Retry-After`), "
    "twice as long after each further failure, up to BTEC_LOGIN_BACKOFF_MAX_SECONDS.",
    security=[{}],
    responses={
        200: json_response("Signed in", SESSION_EXAMPLE),
        **problem_responses(
            "invalid_credentials",
            "login_throttled",
            "validation_failed",
            "malformed_body",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(LoginSchema, example={"email": "assessor@college.example.ac.uk",
                                      "password": "correct horse battery staple"})  # fmt: skip
@limited("auth_login", "10/60:closed")
@routes.post("/api/v1/auth/login", name="auth_login")
async def login(request: web.Request) -> web.Response:
    body, app = request["data"], request.app
    session = await auth.login(
        db=lambda: connection(request), passwords=app[PASSWORDS],
        keys=app[TOKEN_KEYS], guard=app[LOGIN_GUARD], email=body["email"],
        password=body["password"],
        refresh_days=app[SETTINGS].refresh_token_days,
    )  # fmt: skip
    return web.json_response(session.as_dict(), headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Trade a refresh token for a new access and refresh token",
    description="Each refresh token works once. Presenting one that was already used revokes "
    "every token of that sign-in (it was stolen or replayed): sign in again.",
    security=[{}],
    responses={
        200: json_response("A new pair", SESSION_EXAMPLE),
        **problem_responses(
            "invalid_token", "validation_failed", "malformed_body", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(RefreshSchema, example={"refresh_token": REFRESH_EXAMPLE})
@limited("auth_refresh", "30/60:closed")
@routes.post("/api/v1/auth/refresh", name="auth_refresh")
async def refresh(request: web.Request) -> web.Response:
    app = request.app
    session = await auth.refresh(
        db=lambda: connection(request), keys=app[TOKEN_KEYS],
        refresh_token=request["data"]["refresh_token"],
        refresh_days=app[SETTINGS].refresh_token_days,
    )  # fmt: skip
    return web.json_response(session.as_dict(), headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Sign out this session",
    description="The access token is refused from now on; the refresh token, if sent, and "
    "every token of its sign-in are revoked. 204 with no body.",
    security=SIGNED_IN,
    responses={
        204: {"description": "Signed out"},
        **problem_responses(
            "unauthorized", "invalid_token", "validation_failed", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(LogoutSchema, example={"refresh_token": REFRESH_EXAMPLE})
@routes.post("/api/v1/auth/logout", name="auth_logout")
async def logout(request: web.Request) -> web.Response:
    user, claims = await signed_in(request)
    await auth.logout(
        db=lambda: connection(request), denylist=request.app[DENYLIST],
        user_id=user["id"], claims=claims, refresh_token=request["data"]["refresh_token"],
    )  # fmt: skip
    return web.Response(status=204, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Sign out everywhere",
    description="Every access and refresh token of the user, on every device, stops working.",
    security=SIGNED_IN,
    responses={
        204: {"description": "Signed out everywhere"},
        **problem_responses("unauthorized", "invalid_token", *LIMITED_PROBLEMS),
    },
)
@routes.post("/api/v1/auth/logout-all", name="auth_logout_all")
async def logout_all(request: web.Request) -> web.Response:
    user = await current_user(request)
    await auth.logout_all(db=lambda: connection(request), user_id=user["id"])
    return web.Response(status=204, headers=NO_STORE)


class ForgotSchema(Schema):
    email = MailAddress(required=True, metadata={"example": "student@college.example.ac.uk"})


class ResetSchema(Schema):
    token = fields.Str(
        required=True, validate=validate.Length(min=1, max=200),
        metadata={"example": "Jx0bq3f0kq9vU1yB7N3mR5tW2cL8dE4aH6pS9zK1oQ"},
    )  # fmt: skip
    password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "a new long passphrase"},
    )  # fmt: skip


class ChangeSchema(Schema):
    current_password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "correct horse battery staple"},
    )  # fmt: skip
    new_password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "a new long passphrase"},
    )  # fmt: skip


async def _tell_password_changed(request: web.Request, user: dict[str, Any]) -> None:
    settings = request.app[SETTINGS]
    await request.app[JOBS].enqueue(
        "send_email", key=f"password-changed:{user['id']}:{user['token_version']}",
        template="password-changed", to=user["email"],
        context={"name": user["full_name"], "service": settings.service_id},
    )  # fmt: skip


@docs(
    tags=["auth"],
    summary="Ask for a password-reset link by mail",
    description="Always 202 with the same body, whether or not an account uses the address; "
    "the link (valid BTEC_RESET_TOKEN_MINUTES, once) goes by mail through the job queue. At "
    "most one message per address every 2 minutes; limited per client IP.",
    security=[{}],
    responses={
        202: json_response("Accepted", FORGOT_ANSWER),
        **problem_responses(
            "validation_failed", "malformed_body", "queue_unavailable", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(ForgotSchema)
@limited("auth_forgot", "5/300:closed")
@routes.post("/api/v1/auth/password/forgot", name="auth_password_forgot")
async def forgot(request: web.Request) -> web.Response:
    email = request["data"]["email"]
    await request.app[JOBS].enqueue(
        "send_password_reset", key=f"password-reset:{address_key(email)}:{cooldown()}", email=email
    )
    return web.json_response(FORGOT_ANSWER, status=202, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Set a new password with a reset link's token",
    description="The token works once, within BTEC_RESET_TOKEN_MINUTES, and only while the "
    "password is the one it was issued under. Every session of the account ends and a "
    "notice is mailed; sign in again with the new password.",
    security=[{}],
    responses={
        200: json_response("Changed", {"status": "password_changed"}),
        **problem_responses(
            "invalid_reset_token", "validation_failed", "malformed_body", *LIMITED_PROBLEMS
        ),
    },
)
@request_schema(ResetSchema)
@limited("auth_reset", "10/300:closed")
@routes.post("/api/v1/auth/password/reset", name="auth_password_reset")
async def reset(request: web.Request) -> web.Response:
    body = request["data"]
    user = await password_service.reset_password(
        db=lambda: connection(request), passwords=request.app[PASSWORDS],
        token=body["token"], password=body["password"],
    )  # fmt: skip
    await _tell_password_changed(request, user)
    return web.json_response({"status": "password_changed"}, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Change the password (knowing the current one)",
    description="Every session of the account ends, on every device, and a notice is "
    "mailed; the answer is a new session for this device.",
    security=SIGNED_IN,
    responses={
        200: json_response("Changed; a new session", SESSION_EXAMPLE),
        **problem_responses(
            "wrong_password",
            "unauthorized",
            "invalid_token",
            "validation_failed",
            "malformed_body",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(ChangeSchema)
@limited("auth_change", "10/300:closed")
@routes.post("/api/v1/auth/password/change", name="auth_password_change")
async def change(request: web.Request) -> web.Response:
    user = await current_user(request)
    body, app = request["data"], request.app
    changed = await password_service.change_password(
        db=lambda: connection(request), passwords=app[PASSWORDS], user=user,
        current=body["current_password"], new=body["new_password"],
    )  # fmt: skip
    await _tell_password_changed(request, changed)
    session = await auth.open_session(
        db=lambda: connection(request), keys=app[TOKEN_KEYS], user=changed,
        refresh_days=app[SETTINGS].refresh_token_days,
    )  # fmt: skip
    return web.json_response(session.as_dict(), headers=NO_STORE)


class RegisterSchema(Schema):
    email = MailAddress(required=True, metadata={"example": "student@college.example.ac.uk"})
    full_name = fields.Str(
        required=True, validate=validate.Length(min=1, max=200), metadata={"example": "Sam Student"}
    )
    password = fields.Str(
        required=True, validate=validate.Length(min=1, max=MAX_LENGTH),
        metadata={"example": "correct horse battery staple"},
    )  # fmt: skip


class VerifySchema(Schema):
    token = fields.Str(
        required=True, validate=validate.Length(min=1, max=200),
        metadata={"example": "Jx0bq3f0kq9vU1yB7N3mR5tW2cL8dE4aH6pS9zK1oQ"},
    )  # fmt: skip


async def _send_verification(request: web.Request, user_id: int) -> None:
    await request.app[JOBS].enqueue(
        "send_verification", key=f"verify:{user_id}:{cooldown()}", user_id=user_id
    )


def cooldown() -> int:
    """The 2-minute window a link mail is keyed on: repeats within it send nothing more."""
    return int(time.time() // 120)


def address_key(email: str) -> str:
    """An address in a job key, without the address itself (job keys show in saq's UI)."""
    return hashlib.sha256(email.lower().encode()).hexdigest()[:16]


@docs(
    tags=["auth"],
    summary="Create a student account",
    description="The account starts unverified: a verification link goes by mail through the "
    "job queue. Until it is confirmed, signing in works but only the profile, resending the "
    "link and signing out are allowed. 409 `email_taken` if an account uses the address.",
    security=[{}],
    responses={
        201: json_response(
            "Created", USER_EXAMPLE | {"role": "student", "email_verified_at": None}
        ),
        **problem_responses(
            "email_taken",
            "validation_failed",
            "malformed_body",
            "queue_unavailable",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(RegisterSchema)
@limited("auth_register", "5/3600:closed")
@routes.post("/api/v1/auth/register", name="auth_register")
async def register(request: web.Request) -> web.Response:
    body = request["data"]
    user = await create_user(
        db=lambda: connection(request), passwords=request.app[PASSWORDS],
        email=body["email"], full_name=body["full_name"], role="student",
        password=body["password"], verified=False,
    )  # fmt: skip
    await _send_verification(request, user["id"])
    return web.json_response(user, status=201, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Send the verification link again",
    description="Always 202 with the same body. At most one message every 2 minutes, and 5 "
    "requests a day per user.",
    security=SIGNED_IN,
    responses={
        202: json_response("Accepted", verification.RESEND_ANSWER),
        **problem_responses(
            "unauthorized", "invalid_token", "queue_unavailable", *LIMITED_PROBLEMS
        ),
    },
)
@limited("auth_verify_request", "5/86400:closed")
@routes.post("/api/v1/auth/verify/request", name="auth_verify_request")
async def verify_request(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user["email_verified_at"] is None:
        await _send_verification(request, user["id"])
    return web.json_response(verification.RESEND_ANSWER, status=202, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="What confirming this verification link would do",
    description="Changes nothing (link scanners only GET): the page shows the address and "
    "asks the user to confirm, which POSTs the token.",
    security=[{}],
    parameters=[{"in": "query", "name": "token", "required": True, "schema": {"type": "string"}}],
    responses={
        200: json_response(
            "The address to confirm",
            {
                "email": "student@college.example.ac.uk",
                "confirm": "POST this token to confirm the address",
            },
        ),
        **problem_responses("invalid_verify_token", *LIMITED_PROBLEMS),
    },
)
@routes.get("/api/v1/auth/verify/confirm", name="auth_verify_preview")
async def verify_preview(request: web.Request) -> web.Response:
    token = request.query.get("token", "")[:200]
    found = await verification.preview(db=lambda: connection(request), token=token)
    return web.json_response(found, headers=NO_STORE)


@docs(
    tags=["auth"],
    summary="Confirm the email address",
    description="Once, within 24 hours, and only for the address the link was sent to. A "
    "link for a new address (from `PATCH /users/me`) makes it the account's address and mails "
    "a notice to the old one; 409 `email_taken` if another account took it meanwhile.",
    security=[{}],
    responses={
        200: json_response(
            "Verified", {"status": "verified", "email": "student@college.example.ac.uk"}
        ),
        **problem_responses(
            "invalid_verify_token",
            "email_taken",
            "validation_failed",
            "malformed_body",
            "queue_unavailable",
            *LIMITED_PROBLEMS,
        ),
    },
)
@request_schema(VerifySchema)
@limited("auth_verify_confirm", "20/300:closed")
@routes.post("/api/v1/auth/verify/confirm", name="auth_verify_confirm")
async def verify_confirm(request: web.Request) -> web.Response:
    user, replaced = await verification.confirm(
        db=lambda: connection(request), token=request["data"]["token"]
    )
    if replaced is not None:  # tell the old address where the account went
        await request.app[JOBS].enqueue(
            "send_email", key=f"email-changed:{user['id']}:{address_key(user['email'])}",
            template="email-changed", to=replaced,
            context={"name": user["full_name"], "new_email": user["email"],
                     "service": request.app[SETTINGS].service_id},
        )  # fmt: skip
    return web.json_response({"status": "verified", "email": user["email"]}, headers=NO_STORE)
