"""Schema pieces more than one route module uses: a row id, a page's limit and offset, a
path of one id, and a password or token in a body."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from server.domain.pages import MAX_OFFSET
from server.platform.passwords import MAX_LENGTH, MIN_LENGTH

ID = validate.Range(1, 2**63 - 1)  # a PostgreSQL bigint key


class IdPath(Schema):
    """A path with one id: `/api/v1/units/{id}`."""

    id = fields.Int(required=True, validate=ID)


def page_fields(limit: int, max_offset: int = MAX_OFFSET) -> tuple[fields.Int, fields.Int]:
    """`limit` (1 to 100, default `limit`) and `offset` (0 to `max_offset`) of a list."""
    return (
        fields.Int(load_default=limit, validate=validate.Range(1, 100)),
        fields.Int(load_default=0, validate=validate.Range(0, max_offset)),
    )


def password(example: str, description: str | None = None, **options: Any) -> fields.Str:
    """A password in a body, required unless said (the rules of a new one are checked where
    it is set: server.platform.passwords)."""
    options.setdefault("required", True)
    metadata = {"example": example, **({"description": description} if description else {})}
    return fields.Str(validate=validate.Length(min=1, max=MAX_LENGTH), metadata=metadata, **options)


def new_password(example: str, description: str | None = None) -> fields.Str:
    """A password being set: required, and as long as server.platform.passwords requires,
    so that the document states the rule the server enforces (8 to 128 characters)."""
    metadata = {"example": example, **({"description": description} if description else {})}
    return fields.Str(
        required=True,
        validate=validate.Length(
            min=MIN_LENGTH, max=MAX_LENGTH,
            error=f"At least {MIN_LENGTH} and at most {MAX_LENGTH} characters.",
        ),
        metadata=metadata,
    )  # fmt: skip


def token(example: str, **options: Any) -> fields.Str:
    """An opaque token from a link or a sign-in (at most 200 characters)."""
    return fields.Str(
        validate=validate.Length(min=1, max=200), metadata={"example": example}, **options
    )
