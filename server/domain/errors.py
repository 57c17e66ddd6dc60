"""The DomainError hierarchy: failures a client can understand, each with its HTTP status, a
stable `code` and a title, and the FieldErrors of a request that is not valid.
server.http.problems renders them as application/problem+json."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

# Where a request carries a field: its body, or a parameter (OpenAPI's `in`).
Location = Literal["body", "query", "path", "header", "cookie"]
# What kind of error a field has, stable for clients: a field that is missing, a field the
# request may not send, an id that names nothing, or any other value that is not valid.
FieldCode = Literal["required", "unknown_field", "not_found", "invalid"]
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field of a request. `field` is its path from the outside in
    (object keys and list indexes; empty for the whole body), `location` where the request
    carries it. The HTTP layer renders it as a JSON Pointer or a named parameter."""

    field: FieldPath
    message: str
    code: FieldCode = "invalid"
    location: Location = "body"

    @property
    def name(self) -> str:
        """The field as people read it: `criteria.0.code`; the location for the whole."""
        return ".".join(map(str, self.field)) or self.location


def field_error(
    field: str | int | FieldPath,
    message: str,
    code: FieldCode = "invalid",
    location: Location = "body",
) -> FieldError:
    """A FieldError of one field (a name) or of a path (a tuple)."""
    return FieldError(field if isinstance(field, tuple) else (field,), message, code, location)


def summary(errors: Sequence[FieldError]) -> str:
    """One sentence naming what is not valid: `2 fields are not valid: opens_at, unit_id`;
    errors of the whole body say themselves."""
    names = list(dict.fromkeys(e.name for e in errors if e.field))
    whole = [e.message for e in errors if not e.field]
    if not names:
        return "; ".join(whole)
    noun = "field" if any(e.location == "body" for e in errors if e.field) else "parameter"
    count = f"1 {noun} is" if len(names) == 1 else f"{len(names)} {noun}s are"
    return "; ".join([f"{count} not valid: {', '.join(names)}", *whole])


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
        errors: Iterable[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.errors = tuple(errors or ()) or None
        if self.errors:  # the fields first: the detail given adds to them
            detail = "; ".join(filter(None, (summary(self.errors), detail)))
        super().__init__(detail or self.title)
        self.detail = detail or self.title
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


class InvalidResetToken(DomainError):
    status = 400
    code = "invalid_reset_token"
    title = "The reset link is not valid"


class InvalidVerifyToken(DomainError):
    status = 400
    code = "invalid_verify_token"
    title = "The verification link is not valid"


class WrongPassword(DomainError):
    status = 400
    code = "wrong_password"
    title = "The current password is wrong"


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


class BodyTooComplex(DomainError):
    status = 400
    code = "body_too_complex"
    title = "The request body nests too deep or holds too large a number"


class RequestTimeout(DomainError):
    status = 408
    code = "request_timeout"
    title = "The request body did not arrive in time"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "The body is not JSON"


class AssessorRequired(DomainError):
    """An assignment nobody may grade would take submissions that can never be graded."""

    status = 422
    code = "assessor_required"
    title = "An assignment needs at least one assessor"


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


class ShuttingDown(ServiceUnavailable):
    code = "shutting_down"
    title = "This server is shutting down"


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
