"""The one rendering of every error: application/problem+json (RFC 9457) with a stable `code`,
for DomainErrors and for the HTTP errors aiohttp raises itself (router, body limits)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web

from server.domain.errors import (
    DomainError,
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
