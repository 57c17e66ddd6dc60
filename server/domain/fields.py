"""Marshmallow fields and checks shared by every way data comes in: HTTP bodies, CSV imports
and command arguments."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from marshmallow import Schema, ValidationError, fields


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
