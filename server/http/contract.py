"""The finishing pass over the OpenAPI document apigami generates, so that it is valid
OpenAPI 3.0.3 and useful to generated clients:

- each operation gets its `operationId`, from OPERATION_IDS (one name per route, kept here
  in one list so that the names read as a whole: `listAssignments`, `createSubmission`, ...);
- the HEAD twin aiohttp adds to every GET is left out of the document (it is still served):
  clients would otherwise get duplicate methods;
- Swagger 2's `produces`, which apigami writes into OpenAPI 3 operations, goes;
- a request body is `required`, and a JSON one documents the 415 a body of another type gets;
- every answer that shows an example but no schema gets the schema of its example (see
  `schema_of`), so that no generated client types a response as `unknown`; a field an
  example shows as null takes the type another example of the document shows it with (a
  submission's `grade`, `similarity`), and `criteria` objects are maps of any criterion code;
- a field is nullable wherever it appears if any example shows it null, or if it is null
  until something happens (MAYBE_NULL); fields only some callers get are not required
  (OPTIONAL, and ALWAYS for whole answers), so that the schemas hold for every answer
  (newman checks each answer of its run against them: docs/api-contract.md).

Written here rather than by changing the generator: apigami (aiohttp-apispec's successor)
does the routing and validation well, and these are document-level rules it has no hook for.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.http.openapi import RATELIMIT_HEADERS, problem_responses
from server.http.ratelimit import EXEMPT_PREFIXES

# Route name (server/http/routes) -> operationId.
OPERATION_IDS: dict[str, str] = {
    "health_live": "getLiveness",
    "health_ready": "getReadiness",
    "health": "getHealth",
    "metrics": "getMetrics",
    "ops_mail_test": "sendTestMail",
    "ops_job": "getJob",
    "units": "listUnits",
    "unit": "getUnit",
    "units_create": "createUnit",
    "units_update": "updateUnit",
    "units_delete": "deleteUnit",
    "auth_login": "signIn",
    "auth_refresh": "refreshSession",
    "auth_logout": "signOut",
    "auth_logout_all": "signOutEverywhere",
    "auth_password_forgot": "requestPasswordReset",  # nosec B105 # an operationId, not a password
    "auth_password_reset": "resetPassword",  # nosec B105 # an operationId, not a password
    "auth_password_change": "changePassword",  # nosec B105 # an operationId, not a password
    "auth_register": "register",
    "auth_verify_request": "requestVerification",
    "auth_verify_preview": "previewVerification",
    "auth_verify_confirm": "confirmVerification",
    "users_me": "getMe",
    "users_me_update": "updateMe",
    "users_list": "listUsers",
    "users_create": "createUser",
    "users_get": "getUser",
    "users_update": "updateUser",
    "users_deactivate": "deactivateUser",
    "files_upload": "uploadFile",
    "files_list": "listFiles",
    "files_one": "getFile",
    "files_content": "downloadFile",
    "files_delete": "deleteFile",
    "assignments": "listAssignments",
    "assignment": "getAssignment",
    "assignments_create": "createAssignment",
    "assignments_update": "updateAssignment",
    "assignments_delete": "deleteAssignment",
    "submission_put": "submitWork",
    "submission_mine": "getMySubmission",
    "submissions_list": "listSubmissions",
    "submission": "getSubmission",
    "grade_put": "gradeSubmission",
    "grade_get": "getGrade",
    "grades_export": "exportGrades",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Fields whose example value is null, by name: the type they have when they are not.
NULLABLE: dict[str, dict[str, Any]] = {
    "scan_detail": {"type": "string"},
    "feedback": {"type": "string"},
    "error": {"type": "string"},
    "result": {"type": "object"},
    "request_id": {"type": "string"},
    "pending_email": {"type": "string", "format": "email"},
    "overall": {"type": "string"},
    "unit_id": {"type": "integer"},
}
# Fields whose example may be an object keyed by data rather than by names (a grade's
# criteria: criterion code -> achieved): when its values are booleans, a map of booleans, not
# an object of the example's keys. (An assignment's criteria are a list of objects.)
KEYED_BY_DATA = frozenset({"criteria"})
# Fields null until something happens, whatever their example shows: a grade's version and
# overall grade before grading, a job's start, end and result before it runs.
MAYBE_NULL = frozenset({"grade_version", "overall", "feedback", "started_at", "completed_at",
                        "result"})  # fmt: skip
# Fields only some callers get, by name: similarity flags are for staff.
OPTIONAL = frozenset({"similarity", "flags"})
# Answers whose example shows what the most privileged caller gets -> the fields every caller
# gets: anonymous callers of /health get its status only.
ALWAYS: dict[str, tuple[str, ...]] = {"getHealth": ("status",)}


@dataclass(frozen=True)
class Seen:
    """What the document's examples show, field by field."""

    types: dict[str, dict[str, Any]]  # name -> the schema of its first value other than null
    nulls: frozenset[str]  # the names some example shows as null


def finish(document: dict[str, Any], app: web.Application) -> dict[str, Any]:
    """Apply this module's rules to `document` in place; returns it."""
    names = _route_names(app)
    seen = _seen(document)
    for path, item in document.get("paths", {}).items():
        if "get" in item:
            item.pop("head", None)
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            operation.pop("produces", None)
            name = names.get((method.upper(), path))
            if name in OPERATION_IDS:
                operation["operationId"] = OPERATION_IDS[name]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
                if "application/json" in operation["requestBody"].get("content", {}):
                    responses = operation.setdefault("responses", {})
                    for status, answer in problem_responses("unsupported_media_type").items():
                        responses.setdefault(str(status), answer)
            for answer in operation.get("responses", {}).values():
                for media in answer.get("content", {}).values():
                    if "schema" not in media and "example" in media:
                        media["schema"] = schema_of(media["example"], seen=seen)
                        if operation.get("operationId") in ALWAYS:
                            media["schema"]["required"] = list(ALWAYS[operation["operationId"]])
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if isinstance(item.get(method), dict):
                _document_headers(path, item[method])
    return document


def _document_headers(path: str, operation: dict[str, Any]) -> None:
    """The headers each answer carries: `RateLimit` and `RateLimit-Policy` on every answer of
    a rate-limited route (all but the probes and /metrics), `Location` on a 201, `ETag` on
    the 200 of a route that takes `If-None-Match` (with its 304)."""
    limited = not path.startswith(EXEMPT_PREFIXES)
    conditional = any(p.get("name") == "If-None-Match" for p in operation.get("parameters", []))
    responses = operation.get("responses", {})
    if conditional and "304" not in responses:
        responses["304"] = {"description": "Not modified: the `ETag` sent still matches"}
    for status, answer in responses.items():
        headers = answer.setdefault("headers", {})
        if limited:
            for name, header in RATELIMIT_HEADERS.items():
                headers.setdefault(name, header)
        if status == "201":
            headers.setdefault("Location", LOCATION)
        if conditional and status in ("200", "304"):
            headers.setdefault("ETag", ETAG)
        if not headers:
            del answer["headers"]


LOCATION = {"schema": {"type": "string"}, "description": "The path of what was made."}
ETAG = {
    "schema": {"type": "string"},
    "description": "The version of this answer: send it as `If-None-Match` to get 304.",
}


def _examples(document: dict[str, Any]) -> list[Any]:
    """Every answer's example in the document, in its order."""
    return [
        media["example"]
        for item in document.get("paths", {}).values()
        for method in METHODS
        if isinstance(item.get(method), dict)
        for answer in item[method].get("responses", {}).values()
        for media in answer.get("content", {}).values()
        if "example" in media
    ]


def _seen(document: dict[str, Any]) -> Seen:
    fields = list(_fields(_examples(document)))
    nulls = frozenset(key for key, value in fields if value is None)
    types: dict[str, dict[str, Any]] = {}
    for key, value in fields:
        if value is not None and key not in types:
            types[key] = schema_of(value, key, Seen({}, nulls))
    return Seen(types, nulls)


def _fields(examples: list[Any]) -> Iterator[tuple[str, Any]]:
    """(name, value) of every field of the examples, breadth first."""
    pending = list(examples)
    while pending:
        example = pending.pop(0)
        if isinstance(example, list):
            pending.extend(example[:1])
        elif isinstance(example, dict):
            yield from example.items()
            pending.extend(example.values())


def _route_names(app: web.Application) -> dict[tuple[str, str], str]:
    """(method, path as the document writes it) -> route name."""
    found: dict[tuple[str, str], str] = {}
    for route in app.router.routes():
        if route.resource is not None and route.name is not None:
            found[(route.method, route.resource.canonical)] = route.name
    return found


def schema_of(example: Any, name: str = "", seen: Seen | None = None) -> dict[str, Any]:
    """The JSON schema an example shows: objects with every key it has (required but for
    OPTIONAL ones; nullable if `seen` shows them null or they are MAYBE_NULL; maps for
    KEYED_BY_DATA fields), arrays of their first item, strings (RFC 3339 timestamps as
    date-time), integers, numbers and booleans. A null is the type `seen` has for its field,
    else its NULLABLE type, else a date-time for a field named `*_at`, else a string."""
    if example is None:
        if seen and name in seen.types:
            return {**copy.deepcopy(seen.types[name]), "nullable": True}
        if name.endswith("_at"):
            return {"type": "string", "format": "date-time", "nullable": True}
        return {**NULLABLE.get(name, {"type": "string"}), "nullable": True}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if isinstance(example, str):
        return (
            {"type": "string", "format": "date-time"} if _timestamp(example) else {"type": "string"}
        )
    if isinstance(example, list):
        return {"type": "array", "items": schema_of(example[0], name, seen) if example else {}}
    if isinstance(example, dict) and name in KEYED_BY_DATA and _flags(example):
        return {"type": "object", "additionalProperties": {"type": "boolean"}}
    if isinstance(example, dict):
        nulls = MAYBE_NULL | (seen.nulls if seen else frozenset())
        required = sorted(set(example) - OPTIONAL)
        return {
            "type": "object",
            "properties": {
                key: {**schema_of(value, key, seen), **({"nullable": True} if key in nulls else {})}
                for key, value in example.items()
            },
            **({"required": required} if required else {}),  # OpenAPI 3.0: never empty
        }
    return {}


def _flags(example: dict[str, Any]) -> bool:
    return bool(example) and all(isinstance(value, bool) for value in example.values())


def _timestamp(text: str) -> bool:
    if len(text) < 20 or text[4:5] != "-" or "T" not in text:
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
