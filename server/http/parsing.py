"""Request parsing errors as problems: webargs' parser with btec's error classes, and the
limits every JSON body keeps before a schema sees it.

A body is read as strict UTF-8 and parsed by the standard library's C decoder; then one walk
over the result (iterative, so depth costs no stack) checks what a schema cannot: nesting at
most `MAX_DEPTH` deep, at most `MAX_VALUES` values, integers that fit in 64 bits, and strings
that PostgreSQL can store (no NUL, no lone surrogate). A body past these limits gets 400
`body_too_complex` or 422 `validation_failed` naming the field, never a RecursionError or a
database error. The work is bounded by BTEC_MAX_BODY_BYTES, which aiohttp enforces before any
of this runs, and by a count of brackets and commas before the decoder makes any object
(perf/hardening_bench.py measures the worst shapes).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from aiohttp import web
from marshmallow import Schema, ValidationError
from webargs import core
from webargs.aiohttpparser import AIOHTTPParser, is_json_request

from server.config.settings import SETTINGS
from server.domain.errors import (
    BodyTooComplex,
    FieldError,
    FieldPath,
    Location,
    MalformedBody,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
    field_error,
)
from server.domain.fields import field_errors

MAX_DEPTH = 32  # objects and arrays inside each other; btec's deepest schema uses 3
MAX_VALUES = 10_000  # values in one body, all levels; btec's largest takes a few hundred
INT64 = 2**63
# webargs' locations (the keys of its error messages) as the places FieldErrors name.
LOCATIONS: dict[str, Location] = {
    "json": "body",
    "form": "body",
    "json_or_form": "body",
    "files": "body",
    "querystring": "query",
    "query": "query",
    "match_info": "path",
    "path": "path",
    "headers": "header",
    "cookies": "cookie",
}


def loads(body: bytes) -> Any:
    """A JSON document within the limits of this module's docstring."""
    too_many(body)
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedBody("the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise BodyTooComplex(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an integer past Python's 4,300 digits
        raise BodyTooComplex("integers are limited to 64 bits") from None
    check(document)
    return document


def too_many(body: bytes) -> None:
    """Refuse, before parsing, a body that would make too many objects: the decoder's own
    work grows with them (1 MiB of `{}` is 350,000 dicts, 280 ms), and counting bytes costs
    well under a millisecond. Brackets and commas inside strings count too, so the bounds
    are generous: MAX_VALUES objects and arrays, ten times as many commas."""
    if body.count(b"[") + body.count(b"{") > MAX_VALUES or body.count(b",") > 10 * MAX_VALUES:
        raise BodyTooComplex(f"the body holds more than {MAX_VALUES} values")


def check(document: Any) -> None:
    """Walk `document` once: depth, the number of values, integers within 64 bits, and
    every string key and value storable. The count bounds the walk, so its cost does not
    grow with what the body holds beyond MAX_VALUES."""
    stack: list[tuple[Any, int, FieldPath]] = [(document, 0, ())]
    seen = 0
    while stack:
        node, depth, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise BodyTooComplex(f"the body holds more than {MAX_VALUES} values")
        if isinstance(node, str):
            unstorable(node, path)
        elif isinstance(node, bool) or node is None or isinstance(node, float):
            continue
        elif isinstance(node, int):
            if not -INT64 <= node < INT64:
                raise BodyTooComplex("integers are limited to 64 bits")
        elif depth >= MAX_DEPTH:
            raise BodyTooComplex(f"the body nests deeper than {MAX_DEPTH} levels")
        elif isinstance(node, dict):
            for key, value in node.items():
                unstorable(key, (*path, key))
                stack.append((value, depth + 1, (*path, key)))
        else:
            for index, value in enumerate(node):
                stack.append((value, depth + 1, (*path, index)))


def unstorable(text: str, where: FieldPath, location: Location = "body") -> None:
    """422 for a string PostgreSQL cannot store: a NUL, or a lone surrogate (valid JSON, as
    `\\ud800`, but not UTF-8), at `where` in the body or the parameter named there."""
    if "\x00" in text:
        problem = "must not contain NUL characters"
    elif text.isascii():
        return
    else:
        try:
            text.encode("utf-8")
            return
        except UnicodeEncodeError:
            problem = "must be valid Unicode text (no lone surrogates)"
    raise ValidationFailed(errors=[field_error(where, problem, location=location)])


def check_request_text(request: web.Request) -> None:
    """The query string and path parameters keep the same rule as body strings."""
    for name, value in request.match_info.items():
        unstorable(value, (name,), "path")
    for name, value in request.query.items():
        unstorable(name, (name,), "query")
        unstorable(value, (name,), "query")


async def read_body(request: web.Request) -> bytes:
    """The whole body, within BTEC_BODY_TIMEOUT (408 `request_timeout` past it: a client
    that trickles its body holds a connection and a task for no more than that)."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):
            return await request.read()
    except TimeoutError:
        raise timed_out() from None


def timed_out() -> RequestTimeout:
    """The problem of a body too slow to arrive; the connection closes after it."""
    return RequestTimeout("the body did not arrive in time", headers={"Connection": "close"})


def request_errors(messages: Mapping[str, Any], schema: Schema) -> list[FieldError]:
    """webargs' messages, kept under the location the schema read (`{"json": {...}}`,
    `{"querystring": {...}}`), as FieldErrors of that place in the request."""
    return [
        error
        for where, said in messages.items()
        for error in field_errors(said, schema, location=LOCATIONS.get(where, "body"))
    ]


class ProblemParser(AIOHTTPParser):
    """Bad JSON is 400 `malformed_body`; schema failures are 422 `validation_failed`."""

    async def load_json(self, req: web.Request, schema: Schema) -> Any:
        if not req.body_exists:
            return core.missing
        if not is_json_request(req):  # a form post, text, ...: 415, not 422 for each field
            raise UnsupportedMediaType(
                f"send the body as application/json, not {req.content_type or 'untyped'}"
            )
        body = await read_body(req)
        if not body:
            return core.missing
        return loads(body)

    def handle_error(
        self,
        error: ValidationError,
        req: Any,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        messages = error.normalized_messages()  # type: ignore[no-untyped-call]
        raise ValidationFailed(errors=request_errors(messages, schema))

    def _handle_invalid_json_error(
        self, error: json.JSONDecodeError | UnicodeDecodeError, req: Any, *args: Any, **kwargs: Any
    ) -> NoReturn:
        raise MalformedBody(f"the body is not valid JSON: {type(error).__name__}")
