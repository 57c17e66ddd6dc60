"""The finishing pass over the OpenAPI document apigami generates, so that it is valid
OpenAPI 3.0.3 and useful to generated clients:

- each operation gets its `operationId`, from OPERATION_IDS (one name per route, kept here
  in one list so that the names read as a whole: `listAssignments`, `createSubmission`, ...);
- the HEAD twin aiohttp adds to every GET is left out of the document (it is still served):
  clients would otherwise get duplicate methods;
- Swagger 2's `produces`, which apigami writes into OpenAPI 3 operations, goes;
- a request body is `required`, and a JSON one documents the problems any JSON body can get
  before its fields are read (BODY_PROBLEMS: not JSON, too deep, too large, another type);
- request fields say what the server enforces where apigami cannot tell (see `_requests`):
  a field whose metadata names a text rule (server.domain.fields.TEXT) gets its `pattern`;
  every other request string without a pattern, format or enum refuses NUL (the server
  refuses it in any string: server.http.parsing.unstorable); a Dict's length bounds are
  `minProperties`/`maxProperties` (apispec writes them as string lengths); and a body whose
  schema-level rule needs one field or another gets it as BODY_RULES;
- a file download documents every content type the server sends (FILE_TYPES);
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

from server.domain.fields import PRINTABLE_FORMAT, PRINTABLE_RULES, TEXT, text_patterns
from server.domain.filetypes import KINDS
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
    "next_offset": {"type": "integer"},
}
# Fields whose example may be an object keyed by data rather than by names (a grade's
# criteria: criterion code -> achieved): when its values are booleans, a map of booleans, not
# an object of the example's keys. (An assignment's criteria are a list of objects.)
KEYED_BY_DATA = frozenset({"criteria"})
# Fields null until something happens, whatever their example shows: a grade's version and
# overall grade before grading, a job's start, end and result before it runs, the address
# waiting for confirmation when none is.
MAYBE_NULL = frozenset({"grade_version", "overall", "feedback", "started_at", "completed_at",
                        "result", "pending_email"})  # fmt: skip
# Fields only some callers get, by name: similarity flags are for staff.
OPTIONAL = frozenset({"similarity", "flags"})
# Answers whose example shows what the most privileged caller gets -> the fields every caller
# gets: anonymous callers of /health get its status only.
ALWAYS: dict[str, tuple[str, ...]] = {"getHealth": ("status",)}
# What any JSON request body can get before its fields are read (server.http.parsing).
BODY_PROBLEMS = (
    "malformed_body",
    "body_too_complex",
    "payload_too_large",
    "unsupported_media_type",
)
# Rules of a whole body that its schema's validators (`validates_schema`) or its service
# enforce, by component: a change names at least one field; a profile change names a name or
# an address, and an address comes with the current password; a submission has an answer
# that is not blank, or files.
BODY_RULES: dict[str, dict[str, Any]] = {
    "UnitChanges": {"minProperties": 1},
    "AssignmentChanges": {"minProperties": 1},
    "MeChanges": {
        "anyOf": [
            {
                "required": ["full_name"],
                "not": {"required": ["email"], "properties": {"email": {}}},
            },
            {"required": ["email", "current_password"]},
        ]
    },
    "SubmissionBody": {
        "anyOf": [
            {"required": ["answer"], "properties": {"answer": {"minLength": 1}}},
            {"required": ["file_ids"], "properties": {"file_ids": {"minItems": 1}}},
        ]
    },
}
NUL_FREE = "^[^\\u0000]*$"
# A download's content types: what the server records for each accepted kind of file, and
# application/octet-stream for any other.
FILE_TYPES = ("application/octet-stream", *sorted({kind.content_type for kind in KINDS.values()}))


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
                    _add_problems(operation.setdefault("responses", {}), BODY_PROBLEMS)
            if operation.get("operationId") == "downloadFile":
                _file_types(operation["responses"]["200"])
            for answer in operation.get("responses", {}).values():
                for media in answer.get("content", {}).values():
                    if "schema" not in media and "example" in media:
                        media["schema"] = schema_of(media["example"], seen=seen)
                        if operation.get("operationId") in ALWAYS:
                            media["schema"]["required"] = list(ALWAYS[operation["operationId"]])
            _next_link(operation)
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if isinstance(item.get(method), dict):
                _document_headers(path, item[method])
    _requests(document)
    return document


def _next_link(operation: dict[str, Any]) -> None:
    """A list's `next` link (server.domain.pages): the same operation at `next_offset`."""
    answer = operation.get("responses", {}).get("200", {})
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    if "next_offset" in schema.get("properties", {}) and "operationId" in operation:
        answer["links"] = {
            "next": {
                "operationId": operation["operationId"],
                "parameters": {
                    "limit": "$response.body#/limit",
                    "offset": "$response.body#/next_offset",
                },
                "description": "The next page, while `next_offset` is not null. Send the "
                "same filters again: the link carries the page only.",
            }
        }


def _add_problems(responses: dict[str, Any], codes: tuple[str, ...]) -> None:
    """Document these problems on an operation, beside those it has at the same status."""
    for status, answer in problem_responses(*codes).items():
        have = responses.setdefault(str(status), answer)
        if have is answer:
            continue
        examples = have["content"]["application/problem+json"].setdefault("examples", {})
        for code, example in answer["content"]["application/problem+json"]["examples"].items():
            if code not in examples:
                examples[code] = example
                have["description"] += f", `{code}`"


def _file_types(answer: dict[str, Any]) -> None:
    """Every content type a download is sent with, each with the example's bytes."""
    media = answer["content"].pop("application/octet-stream")
    media.setdefault("schema", {"type": "string", "format": "binary"})
    answer["content"] = {kind: copy.deepcopy(media) for kind in FILE_TYPES}


def _requests(document: dict[str, Any]) -> None:
    """The request rules the generator cannot write (see the module's docstring)."""
    schemas = document.get("components", {}).get("schemas", {})
    for name, rule in BODY_RULES.items():
        schemas[name].update(copy.deepcopy(rule))
    bodies = {
        media["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document.get("paths", {}).values()
        for method in METHODS
        if isinstance(item.get(method), dict)
        for media in item[method].get("requestBody", {}).get("content", {}).values()
        if "$ref" in media.get("schema", {})
    }
    for name in sorted(bodies):
        _strings(schemas[name], schemas)
    for item in document.get("paths", {}).values():
        for method in METHODS:
            for parameter in (
                item.get(method, {}).get("parameters", [])
                if isinstance(item.get(method), dict)
                else []
            ):
                if parameter.get("in") in ("query", "path") and "schema" in parameter:
                    _strings(parameter["schema"], schemas)


def _strings(schema: dict[str, Any], schemas: dict[str, Any], seen: set[str] | None = None) -> None:
    """Patterns for the request strings in `schema` and what it refers to; Dict bounds."""
    seen = set() if seen is None else seen
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name not in seen:
            seen.add(name)
            _strings(schemas[name], schemas, seen)
        return
    rule = schema.pop(TEXT, None)
    if schema.get("pattern") in text_patterns():  # a BODY_RULES pattern, by rule name
        rule = schema["pattern"]
    if rule is not None:
        schema["pattern"] = text_patterns()[rule]
        if rule in PRINTABLE_RULES:
            schema["format"] = PRINTABLE_FORMAT
    if schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(schema):
        schema["pattern"] = NUL_FREE
    if schema.get("type") == "object":
        for length, count in (("minLength", "minProperties"), ("maxLength", "maxProperties")):
            if length in schema:
                schema[count] = schema.pop(length)
    for key in ("properties",):
        for inner in schema.get(key, {}).values():
            _strings(inner, schemas, seen)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            _strings(schema[key], schemas, seen)
    for key in ("anyOf", "oneOf", "allOf"):
        for inner in schema.get(key, []):
            _strings(inner, schemas, seen)


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
