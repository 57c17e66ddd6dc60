"""Marshmallow fields and checks shared by every way data comes in: HTTP bodies, CSV imports
and command arguments; and marshmallow's error messages as FieldErrors."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError, fields
from marshmallow.exceptions import SCHEMA

from server.domain.errors import FieldCode, FieldError, FieldPath, Location


class MailAddress(fields.Email):
    """An address mail can be sent to: ASCII local part (SMTPUTF8 is not assumed), and the
    domain in its ASCII (IDNA) form, lower-cased."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        address = str(super()._deserialize(value, attr, data, **kwargs))
        local, _, domain = address.rpartition("@")
        if not local.isascii():
            raise ValidationError("The part before @ must be plain ASCII.")
        try:
            ascii_domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValidationError("The domain is not a valid internationalised name.") from None
        if len(address) > 254:
            raise ValidationError("Longer than 254 characters.")
        return f"{local}@{ascii_domain}"


class StrictBool(fields.Boolean):
    """JSON true or false only: not "yes", 1 or "on", which Boolean would take."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean: use true or false.")
        return value


def require(schema: Schema, names: Iterable[str], required: bool) -> None:
    """Make these fields of a schema instance required or optional, for loading and for the
    OpenAPI document alike: one set of field declarations serves a create body (all
    required) and a change body (any of them)."""
    for name in names:
        schema.fields[name].required = schema.declared_fields[name].required = required


REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co")
# The OpenAPI `format` of strings `printable` checks: the whole rule, past the BMP too, which
# its `pattern` cannot state (text_patterns); a tool that knows no such format ignores it.
PRINTABLE_FORMAT = "printable-text"
PRINTABLE_RULES = frozenset({"printable", "name"})  # the text_patterns that are printable's


def printable(value: str) -> None:
    """A validator: text without control or format characters."""
    if any(unicodedata.category(c) in REFUSED_CATEGORIES for c in value):
        raise ValidationError("Control and format characters are not allowed.")


# Unicode's control characters (category Cc) but tab and line breaks, and lone surrogates (Cs),
# which neither PostgreSQL nor mail can carry.
NOT_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(code: int) -> str:
    """A code point of the BMP as a JSON Schema (ECMA-262) pattern spells it."""
    return f"\\u{code:04X}"


def _class_of(chars: Iterable[int]) -> str:
    """The contents of a character class holding these code points, as ranges."""
    ranges: list[list[int]] = []
    for code in sorted(chars):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(_escaped(a) + (f"-{_escaped(b)}" if b > a else "") for a, b in ranges)


@functools.cache
def text_patterns() -> dict[str, str]:
    """The text rules as `pattern`s of the OpenAPI document, by name, from this Python's
    Unicode database, so that the document says exactly what the validators refuse:
    `printable` and `prose` (free_text), and `name` and `prose_not_blank`, which also need a
    character other than white space (the value is stored trimmed). Over the BMP only: the
    ECMA-262 spelling of a code point past U+FFFF (`\\u{F0000}`) needs the `u` flag, which
    OpenAPI 3.0 validators (openapi-spec-validator) and schemathesis do not read, so the
    refused ones there (private use of planes 15-16, a few format characters) are stated by
    the `format` PRINTABLE_FORMAT, which the document defines in words. Lone surrogates are
    left out too: a pattern matches Unicode scalar values, which never are one (the server
    refuses them in any string: server.http.parsing.unstorable). Made once, when a document
    is."""
    scalars = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    refused = _class_of(c for c in scalars if unicodedata.category(chr(c)) in REFUSED_CATEGORIES)
    space = _class_of(c for c in scalars if chr(c).isspace())
    not_prose = _class_of(c for c in scalars if NOT_PROSE.match(chr(c)))
    return {
        "printable": f"^[^{refused}]*$",
        "name": f"^[^{refused}]*[^{refused}{space}][^{refused}]*$",
        "prose": f"^[^{not_prose}]*$",
        "prose_not_blank": f"^[^{not_prose}]*[^{not_prose}{space}][^{not_prose}]*$",
    }


# Where a field's metadata names its text rule, for server.http.contract: {TEXT: "name"}.
TEXT = "x-btec-text"


def free_text(value: str) -> None:
    """Prose: line breaks and tabs allowed; other control characters and lone surrogates
    refused. One regular expression: an answer may be 100,000 characters long."""
    if NOT_PROSE.search(value):
        raise ValidationError("Control characters other than line breaks and tabs are not allowed.")


def field_errors(
    messages: Any, shape: Any = None, *, location: Location = "body", at: FieldPath = ()
) -> list[FieldError]:
    """marshmallow's messages (`ValidationError.normalized_messages()`) as FieldErrors, one
    per message. The schema (`shape`) is walked alongside: it tells a Dict's keys from
    marshmallow's `key`/`value` level under them, and a missing or unknown field."""
    if isinstance(messages, str | list):
        texts = [messages] if isinstance(messages, str) else messages
        return [FieldError(at, str(text), _code(str(text), shape), location) for text in texts]
    found: list[FieldError] = []
    for key, said in messages.items():
        if key == SCHEMA:  # the object as a whole (validates_schema, or not an object)
            found += field_errors(said, None, location=location, at=at)
        elif isinstance(shape, fields.Dict) and isinstance(said, dict):  # {"key", "value"}
            for part, inner in said.items():
                field = shape.key_field if part == "key" else shape.value_field
                found += field_errors(inner, field, location=location, at=(*at, key))
        else:
            found += field_errors(said, _inner(shape, key), location=location, at=(*at, key))
    return found


@dataclass(frozen=True)
class _Unknown:
    """A key the schema has no field for; `said` is what the schema says of one."""

    said: str


def _inner(shape: Any, key: str | int) -> Any:
    """What the schema expects under `key` of `shape`: a field, a schema, _Unknown or None."""
    if isinstance(shape, fields.Nested):
        if shape.many and isinstance(key, int):
            return shape.schema
        shape = shape.schema
    if isinstance(shape, Schema):
        by_key = {f.data_key or name: f for name, f in shape.load_fields.items()}
        return by_key.get(str(key), _Unknown(shape.error_messages["unknown"]))
    if isinstance(shape, fields.List):
        return shape.inner
    if isinstance(shape, fields.Tuple) and isinstance(key, int):
        return shape.tuple_fields[key] if key < len(shape.tuple_fields) else None
    return None


def _code(text: str, shape: Any) -> FieldCode:
    if isinstance(shape, _Unknown):
        return "unknown_field" if text == shape.said else "invalid"
    if isinstance(shape, fields.Field) and text == shape.error_messages.get("required"):
        return "required"
    return "invalid"
