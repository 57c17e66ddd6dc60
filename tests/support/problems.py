"""The one error shape every endpoint answers with: application/problem+json."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


async def problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    """The problem document of `answer`, checked to have `status` and `code`."""
    assert answer.status == status, await answer.text()
    assert answer.content_type == PROBLEM
    body: dict[str, Any] = await answer.json(content_type=PROBLEM)
    assert body["code"] == code, body
    return body
