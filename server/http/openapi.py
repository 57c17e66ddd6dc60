"""OpenAPI helpers: the problem+json schema, documented error responses and security schemes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args

from aiohttp_apigami import docs
from aiohttp_apigami.constants import SCHEMAS_ATTR
from marshmallow import Schema, fields, validate

from server.domain import errors
from server.domain.errors import FieldCode, FieldError, Location, field_error
from server.domain.pages import page
from server.http.guard import ACCESS_ATTR, DOCUMENTED_ATTR, Access
from server.http.guard import SIGNED_IN as SIGNED_IN_ACCESS
from server.http.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE, problem_body

BEARER = "bearerAuth"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A bearer token. For /api/v1/health details: BTEC_HEALTH_TOKEN; "
            "for /metrics: BTEC_METRICS_TOKEN."
        ),
    }
}
Security = list[dict[str, list[str]]]
# The security requirement each kind of route documents (see server.http.guard).
SIGNED_IN: Security = [{BEARER: []}]
OPERATOR: Security = [{BEARER: []}]
PUBLIC: Security = [{}]
OPTIONAL_BEARER: Security = [{}, {BEARER: []}]


class FieldErrorSchema(Schema):
    """One entry of a problem's `errors`: where the error is (a `pointer` into the body, or a
    `parameter` and `in`), what kind it is (`code`) and what is wrong (`detail`)."""

    pointer = fields.Str(
        metadata={"description": "A field of the request body as a JSON Pointer (RFC 6901) in "
                  "its URI fragment form, as in RFC 9457: `#/criteria/0/code`; `#` is the whole "
                  "body. Absent for parameters.", "example": "#/opens_at"}
    )  # fmt: skip
    parameter = fields.Str(
        metadata={"description": "A query, path or header parameter's name; absent for body "
                  "fields.", "example": "level"}
    )  # fmt: skip
    in_ = fields.Str(
        data_key="in",
        validate=validate.OneOf([w for w in get_args(Location) if w != "body"]),
        metadata={"description": "Where the `parameter` is.", "example": "query"},
    )
    code = fields.Str(
        required=True,
        validate=validate.OneOf(get_args(FieldCode)),
        metadata={"description": "`required`: missing; `unknown_field`: not a field this "
                  "request takes; `not_found`: an id that names nothing; `invalid`: any other "
                  "value that is not valid.", "example": "invalid"},
    )  # fmt: skip
    detail = fields.Str(required=True, metadata={"example": "Not a valid datetime."})


class ProblemSchema(Schema):
    """application/problem+json (RFC 9457) with btec's stable `code` and the request id."""

    type = fields.Str(required=True, metadata={"example": PROBLEM_TYPE_BASE + "not_found"})
    title = fields.Str(required=True, metadata={"example": "Not found"})
    status = fields.Int(required=True, strict=True, metadata={"example": 404})
    detail = fields.Str(required=True, metadata={"example": "Not Found"})
    code = fields.Str(required=True, metadata={"example": "not_found"})
    request_id = fields.Str(
        required=True, allow_none=True, metadata={"example": "6f1c2a0e9b7d4f0a8c3e5d2b1a0f9e8d"}
    )
    errors = fields.List(
        fields.Nested(FieldErrorSchema),
        required=False,
        metadata={"description": "What is wrong with each field, on validation failures "
                  "(RFC 9457 section 3): every 422 of a request that is not valid has it."},
    )  # fmt: skip


# Every problem code a route can answer, with its status and title, from the error classes.
PROBLEMS: dict[str, tuple[int, str]] = {
    cls.code: (cls.status, cls.title)
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.DomainError)
}
# What each problem's example says in `detail`.
EXAMPLE_DETAILS: dict[str, str] = {
    "malformed_body": "Expecting value: line 1",
    "unauthorized": "a valid bearer token is required",
    "invalid_credentials": "the email or password is wrong",
    "invalid_token": "the token has expired",  # nosec B105 # example error detail, not a secret
    "forbidden": "this token may not read metrics",
    "email_unverified": "verify it first",
    "invalid_verify_token": "not valid or used",  # nosec B105 # example error detail, not a secret
    "invalid_reset_token": "the reset link is not valid",  # nosec B105 # example error detail, not a secret
    "wrong_password": "the current password is wrong",  # nosec B105 # example error detail, not a secret
    "not_found": "Not Found",
    "method_not_allowed": "Method Not Allowed",
    "email_taken": "an account uses this email address",
    "payload_too_large": "Maximum request body size",
    "malformed_upload": "send multipart/form-data with one part named file",
    "file_too_large": "files may be at most 104857600 bytes",
    "quota_exceeded": "you keep 1073000000 of 1073741824 bytes; this file needs 2000000",
    "unsupported_type": "the content is not PDF (it looks like EXE)",
    "unsafe_archive": "unpacks to more than 536870912 bytes",
    "file_not_available": "the file is pending a virus scan",
    "validation_failed": "2 fields are not valid: opens_at, criteria.0.code",
    "unit_code_taken": "unit K/615/1544 exists (id 7)",
    "unit_in_use": "unit 7 has 3 assignments",
    "assignment_in_use": "assignment 12 has 14 submissions; it cannot be deleted",
    "criteria_locked": "assignment 12 has graded submissions",
    "assignment_not_open": "assignment 12 opens at 2026-09-01T08:00:00+00:00",
    "submission_graded": "submission 88 has been graded; ask the assessor about a resubmission",
    "file_in_use": "submission 88 uses this file",
    "grade_changed": 'the grade is at version 3, not "2"; read it again',
    "invalid_criteria": "2 fields are not valid: criteria.P9, criteria.M1; the assignment's "
    "criteria are P1, P2, M1",
    "wrong_assignment": "submission 88 is for assignment 12, not 13",
    "invalid_files": "1 field is not valid: file_ids.0",
    "not_assessor": "you do not assess assignment 12",
    "rate_limited": "too many requests; retry in 12 s",
    "login_throttled": "too many failed sign-ins for this account; retry in 4 s",
    "internal_error": "an unexpected error occurred",
    "db_pool_timeout": "no database connection became free",
    "db_unavailable": "the database cannot be reached",
    "storage_unavailable": "S3 put: EndpointConnectionError",
    "queue_unavailable": "the job queue cannot be reached",
    "ratelimit_unavailable": "rate limiting is unavailable",
    "assessor_required": "name its assessors in assessor_ids: nobody could grade it",
    "unsupported_media_type": "send the body as application/json, not text/plain",
    "body_too_complex": "the body nests deeper than 32 levels",
    "request_timeout": "the body did not arrive in time",
    "shutting_down": "this server is stopping; send the request again (another one answers)",
}


def _example(code: str) -> dict[str, Any]:
    status, title = PROBLEMS[code]
    return problem_body(
        status=status,
        code=code,
        title=title,
        detail=EXAMPLE_DETAILS[code],
        request_id="6f1c2a0e9b7d4f0a8c3e5d2b1a0f9e8d",
        errors=ERROR_EXAMPLES.get(code),
    )


ERROR_EXAMPLES: dict[str, list[FieldError]] = {
    "validation_failed": [
        field_error("opens_at", "Not a valid datetime."),
        field_error(("criteria", 0, "code"), "Missing data for required field.", "required"),
    ],
    "invalid_criteria": [
        field_error(("criteria", "P9"), "No such criterion in this assignment.", "unknown_field"),
        field_error(("criteria", "M1"), "Not marked.", "required"),
    ],
    "invalid_files": [
        field_error(("file_ids", 0), "No file of yours has this id.", "not_found"),
    ],
}


def problem_responses(*codes: str) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` entries for these problem codes, grouped by status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(PROBLEMS[code][0], []).append(code)
    responses: dict[int, dict[str, Any]] = {}
    for status, group in by_status.items():
        responses[status] = {
            "description": "Problem: " + ", ".join(f"`{c}`" for c in group),
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {c: {"value": _example(c)} for c in group},
                }
            },
        }
        if status == 401:
            responses[status]["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`."}
            }
        if status in (429, 503):
            responses[status]["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
            }
        if status == 429:
            responses[status]["headers"].update(RATELIMIT_HEADERS)
    return responses


COMMON_PROBLEMS = ("internal_error", "shutting_down")
LIMITED_PROBLEMS = ("rate_limited", *COMMON_PROBLEMS)
RATELIMIT_HEADERS = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'The policy, e.g. `"default";q=600;w=60` (IETF httpapi-ratelimit-headers).',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What is left, e.g. `"default";r=0;t=12`: r requests, full again in t s.',
    },
}


def json_response(
    description: str, example: Any, content_type: str = "application/json", **extra: Any
) -> dict[str, Any]:
    return {
        "description": description,
        "content": {content_type: {"example": example, **extra}},
    }


def page_example(item: Any, limit: int) -> dict[str, Any]:
    """The example of a page of a list: one item."""
    return page([item], total=1, limit=limit, offset=0)


H = TypeVar("H", bound=Callable[..., Any])


def operation(
    tag: str,
    *,
    ok: Mapping[int, Any] | None = None,
    problems: str = "",
    security: Security | None = None,
    limited: bool = True,
    responses: Mapping[int, Any] | None = None,
    **extra: Any,
) -> Callable[[H], H]:
    """A route's OpenAPI operation (apigami's @docs), written from what the route declares
    already; it goes above every other decorator of the route, as it reads them:
    - its summary and description: the handler's docstring, the first paragraph and the rest;
    - its security: who the guard admits (server.http.guard), unless `security` says more;
    - its answers: `ok`, and the problems its guard and schemas can answer (unauthorized,
      invalid_token, email_unverified, forbidden; validation_failed, malformed_body), the
      route's own codes in `problems` (space-separated), and on every route internal_error,
      shutting_down (a request that reaches a server after it stopped listening) and, when
      rate limited, rate_limited. `responses` replaces ok and problems whole."""

    def document(handler: H) -> H:
        access: Access = getattr(handler, ACCESS_ATTR, SIGNED_IN_ACCESS)
        summary, _, description = _paragraphs(handler.__doc__ or "").partition("\n\n")
        if not summary:
            raise TypeError(f"{handler.__qualname__}: its docstring is the operation's summary")
        common = LIMITED_PROBLEMS if limited else COMMON_PROBLEMS
        codes = dict.fromkeys(  # each once, in this order
            (*_access_problems(access), *problems.split(), *_schema_problems(handler), *common)
        )
        fields_: dict[str, Any] = {
            "tags": [tag],
            "summary": summary,
            "security": security or ACCESS_SECURITY[access.who],
            "responses": responses or {**(ok or {}), **problem_responses(*codes)},
        }
        if description:
            fields_["description"] = description
        setattr(handler, DOCUMENTED_ATTR, True)
        return docs(**fields_, **extra)(handler)

    return document


ACCESS_SECURITY: dict[str, Security] = {"public": PUBLIC, "user": SIGNED_IN, "operator": OPERATOR}


def _access_problems(access: Access) -> tuple[str, ...]:
    """The problems of the guard (server.http.guard) for a route of this access."""
    if access.who == "operator":
        return ("unauthorized", "forbidden")
    if access.who == "public":
        return ()
    verified = () if access.unverified else ("email_unverified",)
    return ("unauthorized", "invalid_token", *verified, *(("forbidden",) if access.roles else ()))


def _schema_problems(handler: Callable[..., Any]) -> tuple[str, ...]:
    """The problems of a handler's request schemas: any can fail validation; a JSON body can
    also fail to parse."""
    locations = {schema.location for schema in getattr(handler, SCHEMAS_ATTR, ())}
    return ("validation_failed",) * bool(locations) + ("malformed_body",) * ("json" in locations)


def _paragraphs(docstring: str) -> str:
    """A docstring's paragraphs, each on one line: its lines wrap only for the source."""
    blocks = inspect.cleandoc(docstring).split("\n\n")
    return "\n\n".join(" ".join(block.split("\n")) for block in blocks)
