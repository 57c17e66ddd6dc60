"""OpenAPI helpers: the problem+json schema, documented error responses and security schemes."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

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
    errors = fields.Dict(
        required=False, metadata={"description": "Field errors, on validation failures."}
    )


PROBLEMS: dict[str, tuple[int, str, str]] = {
    "malformed_body": (400, "The request body is not valid JSON", "Expecting value: line 1"),
    "unauthorized": (401, "Authentication required", "a valid bearer token is required"),
    "invalid_credentials": (
        401,
        "The email or password is wrong",
        "the email or password is wrong",
    ),
    "invalid_token": (401, "The access token is not valid", "the token has expired"),
    "forbidden": (403, "Forbidden", "this token may not read metrics"),
    "email_unverified": (403, "The email address is not verified yet", "verify it first"),
    "invalid_verify_token": (400, "The verification link is not valid", "not valid or used"),
    "invalid_reset_token": (400, "The reset link is not valid", "the reset link is not valid"),
    "wrong_password": (400, "The current password is wrong", "the current password is wrong"),
    "not_found": (404, "Not found", "Not Found"),
    "method_not_allowed": (405, "Method not allowed", "Method Not Allowed"),
    "email_taken": (409, "The email address is taken", "an account uses this email address"),
    "payload_too_large": (413, "The request body is too large", "Maximum request body size"),
    "malformed_upload": (
        400,
        "The upload is not a multipart form with one file",
        "send multipart/form-data with one part named file",
    ),
    "file_too_large": (413, "The file is too large", "files may be at most 104857600 bytes"),
    "quota_exceeded": (
        413,
        "The upload would pass your storage quota",
        "you keep 1073000000 of 1073741824 bytes; this file needs 2000000",
    ),
    "unsupported_type": (
        415,
        "This type of file is not accepted",
        "the content is not PDF (it looks like EXE)",
    ),
    "unsafe_archive": (415, "The file unpacks to too much", "unpacks to more than 536870912 bytes"),
    "file_not_available": (
        409,
        "The file cannot be downloaded now",
        "the file is pending a virus scan",
    ),
    "validation_failed": (422, "The request is not valid", "see errors"),
    "unit_code_taken": (409, "A unit uses this code", "unit K/615/1544 exists (id 7)"),
    "unit_in_use": (409, "The unit has assignments", "unit 7 has 3 assignments"),
    "assignment_in_use": (
        409,
        "The assignment has submissions",
        "assignment 12 has 14 submissions; it cannot be deleted",
    ),
    "criteria_locked": (
        409,
        "The criteria are fixed once a submission is graded",
        "assignment 12 has graded submissions",
    ),
    "assignment_not_open": (
        409,
        "The assignment is not open yet",
        "assignment 12 opens at 2026-09-01T08:00:00+00:00",
    ),
    "submission_graded": (
        409,
        "The submission has been graded",
        "submission 88 has been graded; ask the assessor about a resubmission",
    ),
    "file_in_use": (409, "The file is evidence in a submission", "submission 88 uses this file"),
    "grade_changed": (
        412,
        "The grade changed since it was read",
        'the grade is at version 3, not "2"; read it again',
    ),
    "invalid_criteria": (
        422,
        "The criteria do not match the assignment",
        "see errors: unknown codes, and codes not marked",
    ),
    "wrong_assignment": (
        422,
        "The submission belongs to another assignment",
        "submission 88 is for assignment 12, not 13",
    ),
    "invalid_files": (
        422,
        "The files cannot be evidence",
        "see errors: files that are not yours or failed their scan",
    ),
    "not_assessor": (403, "You do not assess this assignment", "you do not assess assignment 12"),
    "rate_limited": (429, "Too many requests", "too many requests; retry in 12 s"),
    "login_throttled": (
        429,
        "Too many failed sign-ins for this account",
        "too many failed sign-ins for this account; retry in 4 s",
    ),
    "internal_error": (500, "Internal server error", "an unexpected error occurred"),
    "db_pool_timeout": (503, "The database is busy", "no database connection became free"),
    "db_unavailable": (503, "The database is unavailable", "the database cannot be reached"),
    "storage_unavailable": (503, "File storage is unavailable", "S3 put: EndpointConnectionError"),
    "queue_unavailable": (503, "The job queue is unavailable", "the job queue cannot be reached"),
    "ratelimit_unavailable": (503, "Rate limiting is unavailable", "rate limiting is unavailable"),
}


def _example(code: str) -> dict[str, Any]:
    status, title, detail = PROBLEMS[code]
    return problem_body(
        status=status,
        code=code,
        title=title,
        detail=detail,
        request_id="6f1c2a0e9b7d4f0a8c3e5d2b1a0f9e8d",
        errors=ERROR_EXAMPLES.get(code),
    )


ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "validation_failed": {"querystring": {"fresh": ["Not a valid boolean."]}},
    "invalid_criteria": {
        "criteria": {"P9": ["No such criterion in this assignment."], "M1": ["Not marked."]}
    },
    "invalid_files": {"file_ids": {"0": ["No file of yours has this id."]}},
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


COMMON_PROBLEMS = ("internal_error",)
SIGNED_IN_PROBLEMS = ("unauthorized", "invalid_token", "email_unverified")
STAFF_PROBLEMS = (*SIGNED_IN_PROBLEMS, "forbidden")
LIMITED_PROBLEMS = ("rate_limited", "internal_error")
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
