"""Request parsing errors as problems: webargs' parser with btec's error classes."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from marshmallow import Schema, ValidationError
from webargs.aiohttpparser import AIOHTTPParser

from server.domain.errors import MalformedBody, ValidationFailed


class ProblemParser(AIOHTTPParser):
    """Bad JSON is 400 `malformed_body`; schema failures are 422 `validation_failed`."""

    def handle_error(
        self,
        error: ValidationError,
        req: Any,
        schema: Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        raise ValidationFailed(errors=error.normalized_messages())  # type: ignore[no-untyped-call]

    def _handle_invalid_json_error(
        self, error: json.JSONDecodeError | UnicodeDecodeError, req: Any, *args: Any, **kwargs: Any
    ) -> NoReturn:
        raise MalformedBody(f"the body is not valid JSON: {type(error).__name__}")
