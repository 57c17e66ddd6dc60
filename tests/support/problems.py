"""The one error shape every endpoint answers with: application/problem+json, and its field
errors: a list of objects, each a `pointer` into the body or a `parameter` and its `in`."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
FIELD_CODES = {"required", "unknown_field", "not_found", "invalid"}
BODY_KEYS = {"pointer", "code", "detail"}
PARAMETER_KEYS = {"parameter", "in", "code", "detail"}


async def problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    """The problem document of `answer`, checked to have `status` and `code`, and field
    errors of the one shape if it has any."""
    assert answer.status == status, await answer.text()
    assert answer.content_type == PROBLEM
    body: dict[str, Any] = await answer.json(content_type=PROBLEM)
    assert body["code"] == code, body
    if "errors" in body:
        check_errors(body["errors"])
    return body


def check_errors(errors: Any) -> None:
    """A non-empty list of field errors, each of the documented shape."""
    assert isinstance(errors, list), errors
    assert errors
    for error in errors:
        assert set(error) in (BODY_KEYS, PARAMETER_KEYS), error
        assert error["code"] in FIELD_CODES, error
        assert isinstance(error["detail"], str), error
        assert error["detail"], error
        if "pointer" in error:
            assert error["pointer"] == "#" or error["pointer"].startswith("#/"), error
        else:
            assert error["in"] in ("query", "path", "header"), error


def places(body: dict[str, Any]) -> list[str]:
    """Where each field error is: its pointer, or `in:parameter` (`query:level`)."""
    return [e.get("pointer") or f"{e['in']}:{e['parameter']}" for e in body["errors"]]
