"""The operator routes: POST /api/v1/ops/mail/test checks its input, GET /api/v1/ops/jobs/{id}
finds jobs, both want the ops token wherever the caller is, and a queue that cannot be
reached is 503."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from tests.support.env import closed_port
from tests.support.metrics import as_operator
from tests.support.problems import PROBLEM


@pytest.fixture
def aiohttp_client(aiohttp_client: Callable[..., Any]) -> Callable[..., Any]:
    """Clients send the ops token, as an operator's tools do; `headers={}` makes one
    anonymous."""
    return as_operator(aiohttp_client)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({}, {}, 422, "validation_failed"),
        ({"to": 5}, {}, 422, "validation_failed"),
        ({"to": "not-an-address"}, {}, 422, "validation_failed"),
        ({"to": "zoë@example.org"}, {}, 422, "validation_failed"),
        ({"to": ["a@example.org"]}, {}, 422, "validation_failed"),
        ({"to": "a@example.org", "note": "x" * 501}, {}, 422, "validation_failed"),
        ({"to": "a@example.org"}, {"Idempotency-Key": "bad key!"}, 422, "validation_failed"),
        ("{not json", {"Content-Type": "application/json"}, 400, "malformed_body"),
    ],
)
async def test_mail_test_bad_input(
    client: Any, body: Any, headers: dict[str, str], status: int, code: str
) -> None:
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    resp = await client.post("/api/v1/ops/mail/test", headers=headers, **kwargs)
    assert resp.status == status
    assert (await resp.json(content_type=PROBLEM))["code"] == code


async def test_mail_test_huge_body_is_413(client: Any) -> None:
    resp = await client.post(
        "/api/v1/ops/mail/test",
        data=json.dumps({"to": "a@example.org", "note": "x" * 2_000_000}),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json(content_type=PROBLEM))["code"] == "payload_too_large"


async def test_unknown_job_is_404(client: Any) -> None:
    resp = await client.get("/api/v1/ops/jobs/nope")
    assert resp.status == 404
    assert (await resp.json(content_type=PROBLEM))["code"] == "not_found"


async def test_ops_token(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(ops_token=SecretStr("o" * 40))
    client = await aiohttp_client(create_app(settings), headers={})
    assert (await client.get("/api/v1/ops/jobs/x")).status == 401
    wrong = await client.get("/api/v1/ops/jobs/x", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    right = await client.get("/api/v1/ops/jobs/x", headers={"Authorization": "Bearer " + "o" * 40})
    assert right.status == 404


async def test_ops_refuse_loopback_callers_without_token(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings), headers={})
    for headers in ({}, {"X-Forwarded-For": "203.0.113.5"}):
        resp = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"},
                                  headers=headers)  # fmt: skip
        assert resp.status == 401
        assert (await resp.json(content_type=PROBLEM))["code"] == "unauthorized"


async def test_redis_down_is_503_not_500(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        redis_url=SecretStr(f"redis://127.0.0.1:{closed_port()}/0"), ratelimit_enabled=False
    )
    client = await aiohttp_client(create_app(settings))
    resp = await client.post("/api/v1/ops/mail/test", json={"to": "a@example.org"})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert (await resp.json(content_type=PROBLEM))["code"] == "queue_unavailable"
    ready = await client.get("/api/v1/health/ready")
    assert ready.status == 503
