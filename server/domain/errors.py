"""The DomainError hierarchy and its one rendering: application/problem+json (RFC 9457)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from aiohttp import web

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:btec:problem:"


class DomainError(Exception):
    """A failure the client can understand; rendered as problem+json by the error middleware."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    challenge: ClassVar[str] = 'Bearer realm="btec"'  # WWW-Authenticate of a 401

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers) if headers else {}


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class EmailTaken(DomainError):
    status = 409
    code = "email_taken"
    title = "The email address is taken"


class MethodNotAllowed(DomainError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class InvalidCredentials(DomainError):
    """The same answer for an unknown email, a wrong password and a deactivated account."""

    status = 401
    code = "invalid_credentials"
    title = "The email or password is wrong"


class InvalidToken(DomainError):
    status = 401
    code = "invalid_token"
    title = "The access token is not valid"
    challenge = 'Bearer realm="btec", error="invalid_token"'  # RFC 6750 3.1


class EmailUnverified(DomainError):
    status = 403
    code = "email_unverified"
    title = "The email address is not verified yet"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    title = "The request is not valid"


class MalformedBody(DomainError):
    status = 400
    code = "malformed_body"
    title = "The request body is not valid JSON"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "The request body is too large"


class MalformedUpload(DomainError):
    status = 400
    code = "malformed_upload"
    title = "The upload is not a multipart form with one file"


class FileTooLarge(DomainError):
    status = 413
    code = "file_too_large"
    title = "The file is too large"


class QuotaExceeded(DomainError):
    status = 413
    code = "quota_exceeded"
    title = "The upload would pass your storage quota"


class UnsupportedType(DomainError):
    status = 415
    code = "unsupported_type"
    title = "This type of file is not accepted"


class UnsafeArchive(DomainError):
    status = 415
    code = "unsafe_archive"
    title = "The file unpacks to too much"


class FileNotAvailable(DomainError):
    status = 409
    code = "file_not_available"
    title = "The file cannot be downloaded now"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class UnitCodeTaken(Conflict):
    code = "unit_code_taken"
    title = "A unit uses this code"


class UnitInUse(Conflict):
    code = "unit_in_use"
    title = "The unit has assignments"


class AssignmentInUse(Conflict):
    code = "assignment_in_use"
    title = "The assignment has submissions"


class CriteriaLocked(Conflict):
    code = "criteria_locked"
    title = "The criteria are fixed once a submission is graded"


class AssignmentNotOpen(Conflict):
    code = "assignment_not_open"
    title = "The assignment is not open yet"


class SubmissionGraded(Conflict):
    code = "submission_graded"
    title = "The submission has been graded"


class FileInUse(Conflict):
    code = "file_in_use"
    title = "The file is evidence in a submission"


class GradeChanged(DomainError):
    status = 412
    code = "grade_changed"
    title = "The grade changed since it was read"


class InvalidCriteria(ValidationFailed):
    code = "invalid_criteria"
    title = "The criteria do not match the assignment"


class WrongAssignment(ValidationFailed):
    code = "wrong_assignment"
    title = "The submission belongs to another assignment"


class InvalidFiles(ValidationFailed):
    code = "invalid_files"
    title = "The files cannot be evidence"


class NotAssessor(Forbidden):
    code = "not_assessor"
    title = "You do not assess this assignment"


class ServiceUnavailable(DomainError):
    status = 503
    code = "service_unavailable"
    title = "The service is temporarily unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"
    title = "File storage is unavailable"


class DatabaseBusy(ServiceUnavailable):
    code = "db_pool_timeout"
    title = "The database is busy"


class DatabaseUnavailable(ServiceUnavailable):
    code = "db_unavailable"
    title = "The database is unavailable"


class QueueUnavailable(ServiceUnavailable):
    code = "queue_unavailable"
    title = "The job queue is unavailable"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class LoginThrottled(RateLimited):
    code = "login_throttled"
    title = "Too many failed sign-ins for this account"


class RateLimitUnavailable(ServiceUnavailable):
    code = "ratelimit_unavailable"
    title = "Rate limiting is unavailable"


class InternalError(DomainError):
    status = 500
    code = "internal_error"
    title = "Internal server error"


# HTTP statuses aiohttp raises itself (router, body limits) mapped to stable codes.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


HTTP_TITLES: dict[int, str] = {
    cls.status: cls.title
    for cls in (NotFound, MethodNotAllowed, Unauthorized, Forbidden, PayloadTooLarge)
}


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    errors: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def problem_response(
    body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=int(body["status"]),
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def from_domain(exc: DomainError, request_id: str | None) -> web.Response:
    body = problem_body(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        request_id=request_id,
        errors=exc.errors,
    )
    headers = exc.headers
    if exc.status == 401 and "WWW-Authenticate" not in headers:  # RFC 9110 15.5.2
        headers = {**headers, "WWW-Authenticate": exc.challenge}
    return problem_response(body, headers)


def from_http(exc: web.HTTPException, request_id: str | None) -> web.Response:
    status = exc.status
    code = HTTP_CODES.get(status, f"http_{status}")
    title = HTTP_TITLES.get(status) or HTTPStatus(status).phrase
    detail = exc.text if exc.text and not exc.text.startswith(f"{status}:") else title
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    body = problem_body(status=status, code=code, title=title, detail=detail, request_id=request_id)
    return problem_response(body, headers)
