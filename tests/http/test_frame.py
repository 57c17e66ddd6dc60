"""The HTTP contract: one problem+json shape, security headers everywhere, bounded metrics."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import SETTINGS, Settings
from server.http.guard import public
from server.platform import localsecrets
from tests.support.metrics import operator_headers, scrape
from tests.support.problems import PROBLEM

STRONG_KEY = "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_"

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-site",
}
SECRET_TEXT = "password=hunter2 at /srv/secret/path"


@public  # a route of the test's own: deny by default would want a user
async def explode(request: web.Request) -> web.Response:
    raise RuntimeError(SECRET_TEXT)


@public
async def echo_json(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


@pytest.fixture
async def http(aiohttp_client: Callable[..., Any], settings: Settings) -> Any:
    app = create_app(settings)
    app.router.add_get("/_test/explode", explode)
    app.router.add_post("/_test/echo", echo_json)
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/api/v1/health/live", 405, "method_not_allowed"),
        ("GET", "/api/v1/health?fresh=notabool", 422, "validation_failed"),
        ("GET", "/_test/explode", 500, "internal_error"),
    ],
)
async def test_problem_shape_is_pinned(
    http: Any, method: str, path: str, status: int, code: str
) -> None:
    resp = await http.request(method, path, headers={"X-Request-ID": "pin-1"})
    assert resp.status == status
    assert resp.headers["Content-Type"] == PROBLEM
    body = await resp.json(content_type=PROBLEM)
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"errors"}
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:btec:problem:{code}"
    assert body["request_id"] == "pin-1"
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    if status == 422:
        assert body["errors"]


async def test_500_reveals_nothing(http: Any, logs: io.StringIO) -> None:
    resp = await http.get("/_test/explode", headers={"X-Request-ID": "boom-1"})
    text = await resp.text()
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert "hunter2" not in logs.getvalue()
    assert "Traceback" not in logs.getvalue()
    error = next(e for e in lines if e["event"] == "unhandled_exception")
    assert error["error_type"] == "builtins.RuntimeError"
    assert error["request_id"] == "boom-1"
    access = next(e for e in lines if e["event"] == "request")
    assert access["status"] == 500
    assert access["request_id"] == "boom-1"
    assert access["route"] == "/_test/explode"


async def test_405_keeps_allow_header(http: Any) -> None:
    resp = await http.post("/api/v1/health/live")
    assert "GET" in resp.headers["Allow"]


async def test_body_over_limit_is_413(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(max_body_bytes=2048))
    app.router.add_post("/_test/echo", echo_json)
    client = await aiohttp_client(app)
    ok = await client.post("/_test/echo", json={"name": "Zoë ✓ 学生"})
    assert await ok.json() == {"name": "Zoë ✓ 学生"}
    resp = await client.post("/_test/echo", data=b"{" + b" " * 5000 + b"}")
    assert resp.status == 413
    assert (await resp.json(content_type=PROBLEM))["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/health/live",
        "/api/v1/health",
        "/api/v1/health/ready",
        "/no/such/path",
        "/_test/explode",
        "/metrics",
        "/api/docs/openapi.json",
        "/api/docs",
    ],
)
async def test_security_headers_on_every_response(http: Any, path: str) -> None:
    resp = await http.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (path, name)
    assert "Content-Security-Policy" in resp.headers
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert "Server" not in resp.headers
    assert "Strict-Transport-Security" not in resp.headers  # public URL is http here
    assert resp.headers["X-Request-ID"]


async def test_csp_is_strict_outside_the_docs(http: Any) -> None:
    resp = await http.get("/api/v1/health")
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert resp.headers["Cache-Control"] == "no-store"


async def test_hsts_when_public_url_is_https(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(
        create_app(make_settings(public_url="https://btec.example.ac.uk"))
    )
    resp = await client.get("/api/v1/health/live")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(
    "header", ["bad\tInjected: yes", "x" * 1000, "spaces not allowed", "ünïcode", "a/b", ""]
)
async def test_unsafe_request_ids_are_replaced(http: Any, header: str) -> None:
    resp = await http.get("/api/v1/health/live", headers={"X-Request-ID": header})
    rid = resp.headers["X-Request-ID"]
    assert rid != header
    assert len(rid) == 32


async def test_safe_request_id_is_echoed(http: Any) -> None:
    resp = await http.get("/api/v1/health/live", headers={"X-Request-ID": "web-app.42_A"})
    assert resp.headers["X-Request-ID"] == "web-app.42_A"


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The labelled series (the ones requests could multiply)."""
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels
    }


async def test_random_paths_add_no_series(http: Any) -> None:
    await http.get("/no/such/path")
    await http.request("BREW", "/coffee")
    before = _series(await scrape(http))
    for _ in range(25):
        await http.get(f"/students/{uuid.uuid4()}")
        await http.request("BREW", f"/{uuid.uuid4()}")
    after = _series(await scrape(http))
    assert after == before
    routes = {dict(labels).get("route") for _, labels in after if dict(labels).get("route")}
    assert routes <= {
        "<unmatched>",
        "/api/v1/health/live",
        "/api/v1/health",
        "/_test/explode",
        "/api/v1/health/ready",
        "/api/docs/openapi.json",
        "/_test/echo",
    }


async def test_metrics_content(http: Any) -> None:
    await http.get("/api/v1/health/live")
    resp = await http.get("/metrics", headers=operator_headers(http.app[SETTINGS]))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    for name in (
        'btec_http_requests_total{method="GET",route="/api/v1/health/live",status="200"}',
        "btec_http_request_duration_seconds_bucket",
        "btec_http_requests_in_progress",
        "btec_build_info{",
        "process_cpu_seconds_total",
        "python_gc_collections_total",
        "btec_db_pool_size",
        "btec_db_pool_idle",
        "btec_db_pool_max",
        "btec_db_pool_acquire_seconds_bucket",
        "btec_db_pool_acquire_timeouts_total",
    ):
        assert name in text, name
    assert 'route="/metrics"' not in text


async def test_metrics_refuse_loopback_callers_without_token(http: Any) -> None:
    """Where a caller appears to be decides nothing: a same-host proxy makes everyone local."""
    for headers in ({}, {"X-Forwarded-For": "198.51.100.7"}):
        resp = await http.get("/metrics", headers=headers)
        assert resp.status == 401
        assert (await resp.json(content_type=PROBLEM))["code"] == "unauthorized"


async def test_metrics_are_closed_in_production_without_a_token(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(env="production", secret_key=SecretStr(STRONG_KEY),
                             scan_disabled=True)  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    guess = {"Authorization": "Bearer " + "x" * 43}
    for path, name in (("/metrics", "metrics_token"), ("/api/v1/ops/jobs/x", "ops_token")):
        resp = await client.get(path, headers=guess)
        assert resp.status == 403
        body = await resp.json(content_type=PROBLEM)
        assert body["code"] == "forbidden"
        assert f"BTEC_{name.upper()} is not set" in body["detail"]
        assert not localsecrets.path_of(settings, name).exists()  # production makes none


async def test_metrics_token(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    token = "m" * 40
    client = await aiohttp_client(create_app(make_settings(metrics_token=SecretStr(token))))
    missing = await client.get("/metrics")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status == 403
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert right.status == 200
    assert token not in await right.text()
