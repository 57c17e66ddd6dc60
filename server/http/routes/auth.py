"""Accounts over HTTP: registration and email verification, signing in and out, refresh,
and password reset and change (rules in server.services: auth, users, verification,
passwords)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import request_schema
from marshmallow import Schema, fields, validate

from server.domain.fields import TEXT, MailAddress
from server.http import deps, schemas
from server.http.examples import REFRESH_EXAMPLE, SESSION_EXAMPLE, USER_EXAMPLE
from server.http.guard import public, unverified_allowed
from server.http.openapi import (
    json_response,
    operation,
)
from server.http.ratelimit import limited
from server.http.responses import answer, no_content
from server.services import auth, users, verification
from server.services import passwords as password_service
from server.services.passwords import FORGOT_ANSWER

routes = web.RouteTableDef()


class LoginSchema(Schema):
    email = fields.Str(
        required=True, validate=validate.Length(min=1, max=320),
        metadata={"example": "assessor@college.example.ac.uk"},
    )  # fmt: skip
    password = schemas.password("correct horse battery staple")


class RefreshSchema(Schema):
    refresh_token = schemas.token(REFRESH_EXAMPLE, required=True)


class LogoutSchema(Schema):
    refresh_token = schemas.token(REFRESH_EXAMPLE, load_default=None)


@operation(
    "auth",
    ok={200: json_response("Signed in", SESSION_EXAMPLE)},
    problems="invalid_credentials login_throttled",
)
@request_schema(LoginSchema, example={"email": "assessor@college.example.ac.uk",
                                      "password": "correct horse battery staple"})  # fmt: skip  # nosec B105 # OpenAPI example body, no account has it
@limited("auth_login", "10/60:closed")
@public
@routes.post("/api/v1/auth/login", name="auth_login")
async def login(request: web.Request) -> web.Response:
    """Sign in with email and password

    Answers an access token (a JWT for `Authorization: Bearer ...`, valid for `expires_in` seconds)
    and a refresh token for `/auth/refresh`. An unknown email, a wrong password and a deactivated
    account get the same 401 `invalid_credentials` after the same work. Limited per client IP, and
    per account: after BTEC_LOGIN_BACKOFF_AFTER failures in a row an address must wait (429
    `login_throttled` with `Retry-After`), twice as long after each further failure, up to
    BTEC_LOGIN_BACKOFF_MAX_SECONDS.
    """
    body = deps.body(request)
    session = await auth.login(
        db=deps.db(request), passwords=deps.passwords(request), keys=deps.token_keys(request),
        guard=deps.login_guard(request), email=body["email"], password=body["password"],
        refresh_days=deps.settings(request).refresh_token_days, client=deps.client_ip(request),
    )  # fmt: skip
    return answer(session.as_dict())


@operation("auth", ok={200: json_response("A new pair", SESSION_EXAMPLE)}, problems="invalid_token")
@request_schema(RefreshSchema, example={"refresh_token": REFRESH_EXAMPLE})
@limited("auth_refresh", "30/60:closed")
@public
@routes.post("/api/v1/auth/refresh", name="auth_refresh")
async def refresh(request: web.Request) -> web.Response:
    """Trade a refresh token for a new access and refresh token

    Each refresh token works once. Presenting one that was already used revokes every token of that
    sign-in (it was stolen or replayed): sign in again.
    """
    session = await auth.refresh(
        db=deps.db(request), keys=deps.token_keys(request),
        refresh_token=deps.body(request)["refresh_token"],
        refresh_days=deps.settings(request).refresh_token_days,
    )  # fmt: skip
    return answer(session.as_dict())


@operation("auth", ok={204: {"description": "Signed out"}}, problems="db_unavailable")
@request_schema(LogoutSchema, example={"refresh_token": REFRESH_EXAMPLE})
@unverified_allowed
@routes.post("/api/v1/auth/logout", name="auth_logout")
async def logout(request: web.Request) -> web.Response:
    """Sign out this session

    Every access token of this sign-in (the one sent, and any issued before or after a refresh) and
    its refresh tokens are refused from the next request on; so is the sign-in of the refresh token,
    if one is sent. 204 with no body, only once the revocation is stored: 503 when it cannot be.
    """
    await auth.logout(
        db=deps.db(request), user_id=deps.user(request)["id"],
        claims=deps.claims(request), refresh_token=deps.body(request)["refresh_token"],
    )  # fmt: skip
    return no_content()


@operation("auth", ok={204: {"description": "Signed out everywhere"}})
@unverified_allowed
@routes.post("/api/v1/auth/logout-all", name="auth_logout_all")
async def logout_all(request: web.Request) -> web.Response:
    """Sign out everywhere

    Every access and refresh token of the user, on every device, stops working.
    """
    await auth.logout_all(db=deps.db(request), user_id=deps.user(request)["id"])
    return no_content()


class ForgotSchema(Schema):
    email = MailAddress(required=True, metadata={"example": "student@college.example.ac.uk"})


class ResetSchema(Schema):
    token = schemas.token("Jx0bq3f0kq9vU1yB7N3mR5tW2cL8dE4aH6pS9zK1oQ", required=True)
    password = schemas.new_password("a new long passphrase")


class ChangeSchema(Schema):
    current_password = schemas.password("correct horse battery staple")
    new_password = schemas.new_password("a new long passphrase")


@operation("auth", ok={202: json_response("Accepted", FORGOT_ANSWER)}, problems="queue_unavailable")
@request_schema(ForgotSchema)
@limited("auth_forgot", "5/300:closed")
@public
@routes.post("/api/v1/auth/password/forgot", name="auth_password_forgot")
async def forgot(request: web.Request) -> web.Response:
    """Ask for a password-reset link by mail

    Always 202 with the same body, whether or not an account uses the address; the link (valid
    BTEC_RESET_TOKEN_MINUTES, once) goes by mail through the job queue. At most one message per
    address every 2 minutes; limited per client IP.
    """
    said = await password_service.request_reset(
        jobs=deps.jobs(request), email=deps.body(request)["email"]
    )
    return answer(said, 202)


@operation(
    "auth",
    ok={200: json_response("Changed", {"status": "password_changed"})},
    problems="invalid_reset_token",
)
@request_schema(ResetSchema)
@limited("auth_reset", "10/300:closed")
@public
@routes.post("/api/v1/auth/password/reset", name="auth_password_reset")
async def reset(request: web.Request) -> web.Response:
    """Set a new password with a reset link's token

    The token works once, within BTEC_RESET_TOKEN_MINUTES, and only while the password is the one it
    was issued under. Every session of the account ends and a notice is mailed; sign in again with
    the new password.
    """
    body = deps.body(request)
    await password_service.reset_password(
        db=deps.db(request), passwords=deps.passwords(request), jobs=deps.jobs(request),
        token=body["token"], password=body["password"],
    )  # fmt: skip
    return answer({"status": "password_changed"})


@operation(
    "auth",
    ok={200: json_response("Changed; a new session", SESSION_EXAMPLE)},
    problems="wrong_password",
)
@request_schema(ChangeSchema)
@limited("auth_change", "10/300:closed")
@routes.post("/api/v1/auth/password/change", name="auth_password_change")
async def change(request: web.Request) -> web.Response:
    """Change the password (knowing the current one)

    Every session of the account ends, on every device, and a notice is mailed; the answer is a new
    session for this device.
    """
    body = deps.body(request)
    session = await password_service.change_password(
        db=deps.db(request), passwords=deps.passwords(request), jobs=deps.jobs(request),
        keys=deps.token_keys(request), refresh_days=deps.settings(request).refresh_token_days,
        user=deps.user(request), current=body["current_password"], new=body["new_password"],
    )  # fmt: skip
    return answer(session.as_dict())


class RegisterSchema(Schema):
    email = MailAddress(required=True, metadata={"example": "student@college.example.ac.uk"})
    full_name = fields.Str(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"example": "Sam Student", TEXT: "name"},
    )
    password = schemas.new_password("correct horse battery staple")


class VerifySchema(Schema):
    token = schemas.token("Jx0bq3f0kq9vU1yB7N3mR5tW2cL8dE4aH6pS9zK1oQ", required=True)


@operation(
    "auth",
    ok={
        201: json_response("Created", USER_EXAMPLE | {"role": "student", "email_verified_at": None})
    },
    problems="email_taken queue_unavailable",
)
@request_schema(RegisterSchema)
@limited("auth_register", "5/3600:closed")
@public
@routes.post("/api/v1/auth/register", name="auth_register")
async def register(request: web.Request) -> web.Response:
    """Create a student account

    The account starts unverified: a verification link goes by mail through the job queue. Until it
    is confirmed, signing in works but only the profile, resending the link and signing out are
    allowed. 409 `email_taken` if an account uses the address.
    """
    body = deps.body(request)
    user = await users.register(
        db=deps.db(request), passwords=deps.passwords(request), jobs=deps.jobs(request),
        email=body["email"], full_name=body["full_name"], password=body["password"],
    )  # fmt: skip
    return answer(user, 201, location="/api/v1/users/me")


@operation(
    "auth",
    ok={202: json_response("Accepted", verification.RESEND_ANSWER)},
    problems="queue_unavailable",
)
@limited("auth_verify_request", "5/86400:closed")
@unverified_allowed
@routes.post("/api/v1/auth/verify/request", name="auth_verify_request")
async def verify_request(request: web.Request) -> web.Response:
    """Send the verification link again

    Always 202 with the same body. At most one message every 2 minutes, and 5 requests a day per
    user.
    """
    said = await verification.resend(jobs=deps.jobs(request), user=deps.user(request))
    return answer(said, 202)


@operation(
    "auth",
    ok={
        200: json_response(
            "The address to confirm",
            {
                "email": "student@college.example.ac.uk",
                "confirm": "POST this token to confirm the address",
            },
        )
    },
    problems="invalid_verify_token",
    parameters=[{"in": "query", "name": "token", "required": True, "schema": {"type": "string"}}],
)
@public
@routes.get("/api/v1/auth/verify/confirm", name="auth_verify_preview")
async def verify_preview(request: web.Request) -> web.Response:
    """What confirming this verification link would do

    Changes nothing (link scanners only GET): the page shows the address and asks the user to
    confirm, which POSTs the token.
    """
    token = request.query.get("token", "")[:200]
    return answer(await verification.preview(db=deps.db(request), token=token))


@operation(
    "auth",
    ok={
        200: json_response(
            "Verified", {"status": "verified", "email": "student@college.example.ac.uk"}
        )
    },
    problems="invalid_verify_token email_taken queue_unavailable",
)
@request_schema(VerifySchema)
@limited("auth_verify_confirm", "20/300:closed")
@public
@routes.post("/api/v1/auth/verify/confirm", name="auth_verify_confirm")
async def verify_confirm(request: web.Request) -> web.Response:
    """Confirm the email address

    Once, within 24 hours, and only for the address the link was sent to. A link for a new address
    (from `PATCH /users/me`) makes it the account's address and mails a notice to the old one; 409
    `email_taken` if another account took it meanwhile.
    """
    user = await verification.confirm(
        db=deps.db(request), jobs=deps.jobs(request), token=deps.body(request)["token"]
    )
    return answer({"status": "verified", "email": user["email"]})
