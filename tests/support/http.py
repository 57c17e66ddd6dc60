"""One HTTP request from a test to a server of its own (a `btecctl serve`, a proxy in front of
one), without an event loop: for tests that drive processes rather than an app in-process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(
    url: str, *, token: str | None = None, method: str | None = None, body: Any = None,
    content_type: str | None = None, timeout: float = 30, headers: dict[str, str] | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """The status and the answer: JSON (a problem's too) decoded, anything else as bytes.
    `body` is sent as JSON unless it is bytes (then with `content_type`). Status 0: no
    answer (the connection was refused or dropped)."""
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    data = body
    if body is not None and not isinstance(body, bytes):
        data, content_type = json.dumps(body).encode(), "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 # the test's own server
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, _decoded(answer.headers.get_content_type(), answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _decoded(exc.headers.get_content_type(), exc.read())
    except OSError:
        return 0, None


def _decoded(content_type: str, raw: bytes) -> Any:
    if content_type in ("application/json", "application/problem+json", "application/health+json"):
        return json.loads(raw or b"null")
    return raw
