"""The one rendering of every error: application/problem+json (RFC 9457) with a stable `code`,
for DomainErrors and for the HTTP errors aiohttp raises itself (router, body limits), and of
field errors: the `errors` list, each a JSON Pointer into the body or a named parameter.

The pointer is written by hand: RFC 6901's escaping is two replacements, and the fragment form
RFC 9457's example uses (`#/age`) percent-encodes what a URI fragment may not hold."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aiohttp import web

from server.domain.errors import (
    DomainError,
    FieldError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:btec:problem:"


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


# What RFC 3986 lets a URI fragment hold besides letters, digits and -._~ (RFC 6901 section 6).
FRAGMENT_SAFE = "/!$&'()*+,;=:@?"


def pointer(path: Sequence[str | int]) -> str:
    """A JSON Pointer (RFC 6901) in its URI fragment form: `#/criteria/0/code`; `#` is the
    whole body."""
    tokens = (str(step).replace("~", "~0").replace("/", "~1") for step in path)
    return "#" + quote("".join("/" + token for token in tokens), safe=FRAGMENT_SAFE)


def field_entry(error: FieldError) -> dict[str, str]:
    """One entry of `errors`: where (a `pointer` into the body, or a `parameter` and where it
    is, `in`), the error's `code` and its `detail`."""
    if error.location == "body":
        where = {"pointer": pointer(error.field)}
    elif error.field:
        where = {"parameter": str(error.field[0]), "in": error.location}
    else:
        where = {"in": error.location}
    return {**where, "code": error.code, "detail": error.message}


def field_entries(errors: Iterable[FieldError]) -> list[dict[str, str]]:
    """The `errors` member of a problem: every FieldError, in the order found."""
    return [field_entry(error) for error in errors]


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    errors: Iterable[FieldError] | None = None,
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
        body["errors"] = field_entries(errors)
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
