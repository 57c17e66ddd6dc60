"""A unit of the catalogue: the rules its fields follow, whichever way it arrives (an HTTP
body or a row of a CSV import)."""

from __future__ import annotations

import unicodedata
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from server.domain.fields import TEXT, printable

CODE = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9/._-]{0,31}$",
    error="1-32 of A-Z a-z 0-9 / . _ -, starting with a letter or digit.",
)


class UnitSchema(Schema):
    """A unit as an import row (and, later, a create or update body)."""

    code = fields.Str(required=True, validate=CODE, metadata={"example": "K/615/1544"})
    title = fields.Str(
        required=True,
        validate=[validate.Length(min=1, max=200), printable],
        metadata={"example": "Programming", TEXT: "name"},
    )
    level = fields.Int(
        required=True, strict=False, validate=validate.Range(1, 8), metadata={"example": 3}
    )
    credits = fields.Int(
        required=True, strict=False, validate=validate.Range(1, 999), metadata={"example": 60}
    )

    @post_load
    def _tidy(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if "title" in data:  # absent from a partial update
            data["title"] = unicodedata.normalize("NFC", data["title"].strip())
            if not data["title"]:
                raise ValidationError({"title": ["Must not be blank."]})
        return data
