"""Marshmallow fields and checks shared by every way data comes in: HTTP bodies, CSV imports
and command arguments; and marshmallow's error messages as FieldErrors."""

from __future__ import annotations

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


def printable(value: str) -> None:
    """A validator: text without control or format characters."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in value):
        raise ValidationError("Control and format characters are not allowed.")


# Unicode's control characters (category Cc) but tab and line breaks, and lone surrogates (Cs),
# which neither PostgreSQL nor mail can carry.
NOT_PROSE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


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
