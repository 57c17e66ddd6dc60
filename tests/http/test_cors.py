"""CORS through the real HTTP interface, and in a real headless Chromium: preflights from an
allowed origin answered past the guard and the rate limiter, the headers of every answer to
one (errors and streamed answers included), nothing at all for any other origin, and
BTEC_CORS_ORIGINS's defaults and validation."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import DEV_CORS_ORIGINS, Settings
from server.http.guard import public
from server.http.middleware.cors import MAX_AGE, PREFLIGHT_ROUTE
from server.http.responses import start_stream
from server.observability.metrics import METRICS
from tests.support.accounts import CHEAP, make_admin, session_of, token_for
from tests.support.browser import async_chromium
from tests.support.problems import problem

ALLOWED = "http://localhost:5173"  # one of the defaults outside production
EVIL = "https://evil.example"
UNITS = "/api/v1/units"
UNIT = {"code": "U1", "title": "Programming", "level": 3, "credits": 60}
EXPOSED = {"Location", "ETag", "RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"}
SENT = {"Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key"}
# What differs between two otherwise equal answers.
VOLATILE = {"date", "x-request-id", "ratelimit", "content-length"}


def preflight(origin: str, method: str = "POST", asked: str = "authorization,content-type"
              ) -> dict[str, str]:  # fmt: skip
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": asked}  # fmt: skip


def listed(value: str | None) -> set[str]:
    return {v.strip() for v in (value or "").split(",") if v.strip()}


def cors_headers(answer: Any) -> dict[str, str]:
    return {k: v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}


def allowed_answer(answer: Any, origin: str = ALLOWED) -> None:
    """The headers of an answer to an allowed origin's request (not a preflight)."""
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in listed(answer.headers.get("Vary"))
    assert listed(answer.headers["Access-Control-Expose-Headers"]) >= EXPOSED
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.fixture
def cheap(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**CHEAP)


@pytest.fixture
async def api(aiohttp_client: Callable[..., Any], cheap: Settings) -> Any:
    """The app on the test defaults (the dev servers' origins), with a route that fails and
    one that streams."""

    @public
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    @public
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv"})
        if await start_stream(request, response):
            await response.write(b"code\nU1\n")
            await response.write_eof()
        return response

    app = create_app(cheap)
    app.router.add_get("/api/v1/boom", boom)
    app.router.add_get("/api/v1/stream", stream)
    return await aiohttp_client(app)


@pytest.fixture
async def admin(api: Any, cheap: Settings, acli: Callable[..., Any]) -> dict[str, str]:
    await make_admin(acli, cheap, "ada@example.org")
    return await session_of(api, "ada@example.org")


# Preflights --------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin(api: Any) -> None:
    answer = await api.options(UNITS, headers=preflight(ALLOWED))
    assert answer.status == 204
    assert await answer.read() == b""
    headers = answer.headers
    assert headers["Access-Control-Allow-Origin"] == ALLOWED
    assert listed(headers["Access-Control-Allow-Methods"]) >= {"GET", "POST"}
    assert listed(headers["Access-Control-Allow-Headers"]) >= SENT
    assert headers["Access-Control-Max-Age"] == str(MAX_AGE) == "600"
    assert headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in headers
    assert headers["X-Request-ID"]  # through the frame: its id, security headers, metrics
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "RateLimit" not in headers  # no decision was asked for
    assert api.app[METRICS].http.counts[("OPTIONS", PREFLIGHT_ROUTE)] == {204: 1}


async def test_preflights_pass_the_guard(api: Any) -> None:
    """A preflight carries no credentials: routes for signed-in users, for roles and for
    operators answer it as the public ones do."""
    for path, method in [("/api/v1/users/me", "PATCH"), ("/api/v1/units/7", "DELETE"),
                         ("/api/v1/ops/mail/test", "POST"), ("/api/v1/users", "GET")]:  # fmt: skip
        answer = await api.options(path, headers=preflight(ALLOWED, method))
        assert answer.status == 204, (path, await answer.text())
        assert method in listed(answer.headers["Access-Control-Allow-Methods"])


async def test_a_preflight_for_what_the_path_lacks_is_an_ordinary_request(api: Any) -> None:
    """A method the path does not have, or no such path: the router's own answer, readable
    by the allowed origin (the browser then refuses the request it announced)."""
    lacking = await api.options("/api/v1/health/live", headers=preflight(ALLOWED, "DELETE"))
    await problem(lacking, 405, "method_not_allowed")
    assert "DELETE" not in listed(lacking.headers["Allow"])
    assert lacking.headers["Access-Control-Allow-Origin"] == ALLOWED
    missing = await api.options("/api/v1/nope", headers=preflight(ALLOWED, "GET"))
    await problem(missing, 404, "not_found")
    assert missing.headers["Access-Control-Allow-Origin"] == ALLOWED
    plain = await api.options(UNITS, headers={"Origin": ALLOWED})  # no method asked: not one
    await problem(plain, 405, "method_not_allowed")


async def test_preflights_spend_no_budget_and_a_429_is_readable(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    api = await aiohttp_client(create_app(make_settings(ratelimit_default="2/60")))
    for _ in range(5):
        assert (await api.options(UNITS, headers=preflight(ALLOWED, "GET"))).status == 204
    first = await api.get(UNITS, headers={"Origin": ALLOWED})
    assert first.status == 200
    assert "r=1" in first.headers["RateLimit"]  # the preflights took none of the budget
    assert (await api.get(UNITS, headers={"Origin": ALLOWED})).status == 200
    limited = await api.get(UNITS, headers={"Origin": ALLOWED})
    await problem(limited, 429, "rate_limited")
    allowed_answer(limited)
    assert limited.headers["Retry-After"]
    # An allowed origin's preflight is still answered; another origin's OPTIONS is limited.
    assert (await api.options(UNITS, headers=preflight(ALLOWED, "GET"))).status == 204
    assert (await api.options(UNITS, headers=preflight(EVIL, "GET"))).status == 429


# Actual requests ---------------------------------------------------------------------------


async def test_an_allowed_origin_reads_the_answer(api: Any, admin: dict[str, str]) -> None:
    made = await api.post(UNITS, json=UNIT, headers={**admin, "Origin": ALLOWED})
    assert made.status == 201, await made.text()
    allowed_answer(made)
    assert made.headers["Location"].startswith("/api/v1/units/")
    listing = await api.get(UNITS, headers={"Origin": ALLOWED})
    allowed_answer(listing)
    assert listing.headers["ETag"]
    unchanged = await api.get(
        UNITS, headers={"Origin": ALLOWED, "If-None-Match": listing.headers["ETag"]}
    )
    assert unchanged.status == 304
    allowed_answer(unchanged)


async def test_errors_carry_the_cors_headers(api: Any, admin: dict[str, str]) -> None:
    """A browser app can read every problem: 401, 403, 404 (routed and not), 405, 422, 500."""
    origin = {"Origin": ALLOWED}
    answers = [
        (await api.post(UNITS, json=UNIT, headers=origin), 401, "unauthorized"),
        (await api.get("/api/v1/ops/jobs/x", headers={**origin, "Authorization": "Bearer no"}),
         403, "forbidden"),
        (await api.get("/api/v1/units/999999", headers=origin), 404, "not_found"),
        (await api.get("/api/v1/nope", headers=origin), 404, "not_found"),
        (await api.put(UNITS, headers=origin), 405, "method_not_allowed"),
        (await api.post(UNITS, json={"code": ""}, headers={**admin, **origin}), 422,
         "validation_failed"),
        (await api.get("/api/v1/boom", headers=origin), 500, "internal_error"),
    ]  # fmt: skip
    for answer, status, code in answers:
        await problem(answer, status, code)
        allowed_answer(answer)
    unauthorized = answers[0][0]
    assert unauthorized.headers["WWW-Authenticate"].startswith("Bearer")
    assert "WWW-Authenticate" in listed(unauthorized.headers["Access-Control-Expose-Headers"])


async def test_a_streamed_answer_carries_them_too(api: Any) -> None:
    """An answer that sends its headers itself, before the frame sees it (as exports and
    downloads do)."""
    export = await api.get("/api/v1/stream", headers={"Origin": ALLOWED})
    assert export.status == 200
    assert await export.text() == "code\nU1\n"
    allowed_answer(export)
    assert "Content-Disposition" in listed(export.headers["Access-Control-Expose-Headers"])


async def seen(answer: Any) -> tuple[int, list[tuple[str, str]], Any]:
    """An answer less what differs between two equal ones (date, request id, budget)."""
    body: Any = await answer.read()
    try:
        body = json.loads(body)
        body.pop("request_id", None)
    except ValueError:
        pass
    headers = sorted((k.lower(), v) for k, v in answer.headers.items()
                     if k.lower() not in VOLATILE)  # fmt: skip
    return answer.status, headers, body


async def test_another_origin_gets_what_no_origin_gets(api: Any) -> None:
    asked = [
        ("GET", UNITS, {}),
        ("GET", "/api/v1/units/999999", {}),
        ("GET", "/api/v1/nope", {}),
        ("POST", UNITS, {"Content-Type": "application/json"}),
        ("GET", "/api/v1/boom", {}),
        ("OPTIONS", UNITS, {"Access-Control-Request-Method": "POST"}),
        ("OPTIONS", "/api/v1/users/me", {"Access-Control-Request-Method": "PATCH",
                                         "Access-Control-Request-Headers": "authorization"}),
        ("OPTIONS", "/api/v1/nope", {"Access-Control-Request-Method": "GET"}),
    ]  # fmt: skip
    for method, path, headers in asked:
        other = await api.request(method, path, headers={**headers, "Origin": EVIL})
        plain = await api.request(method, path, headers=headers)
        assert cors_headers(other) == {}, (method, path)
        assert await seen(other) == await seen(plain), (method, path)
        assert other.headers["Vary"] == "Origin"  # with or without Origin, for caches


async def test_allowed_origins_are_exact(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Set, the list replaces the defaults; scheme, host and port must all match."""
    api = await aiohttp_client(create_app(make_settings(cors_origins="https://app.example")))
    app = "https://app.example"
    allowed_answer(await api.get(UNITS, headers={"Origin": app}), app)
    for near in (ALLOWED, "http://app.example", "https://app.example:8443", "null",
                 "https://www.app.example", "https://app.example.evil.example"):  # fmt: skip
        assert cors_headers(await api.get(UNITS, headers={"Origin": near})) == {}, near
        refused = await api.options(UNITS, headers=preflight(near))
        assert refused.status == 405, near
        assert cors_headers(refused) == {}, near


async def test_production_allows_no_origin_by_default(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(env="production", scan_disabled=True,
                             secret_key=SecretStr(secrets.token_urlsafe(32)))  # fmt: skip
    assert settings.cors_allowed_origins == ()
    api = await aiohttp_client(create_app(settings))
    for origin in DEV_CORS_ORIGINS:
        refused = await api.options(UNITS, headers=preflight(origin))
        await problem(refused, 405, "method_not_allowed")
        assert cors_headers(refused) == {}
        answer = await api.get(UNITS, headers={"Origin": origin})
        assert cors_headers(answer) == {}
        assert "Vary" not in answer.headers  # no allowlist: nothing varies by origin


# The setting -------------------------------------------------------------------------------


def test_the_defaults(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().cors_allowed_origins == DEV_CORS_ORIGINS == (
        "http://localhost:5173", "http://127.0.0.1:5173", "http://localhost:3000",
        "http://127.0.0.1:3000")  # fmt: skip
    assert make_settings(env="development").cors_allowed_origins == DEV_CORS_ORIGINS
    assert make_settings(cors_origins="").cors_allowed_origins == ()
    twice = make_settings(cors_origins=" https://a.example ,http://[::1]:8000,https://a.example")
    assert twice.cors_allowed_origins == ("https://a.example", "http://[::1]:8000")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("*", "'*' is refused"),
        ("https://a.example,*", "'*' is refused"),
        ("null", "'null' is refused"),
        ("localhost:5173", "is not an origin"),
        ("ftp://files.example", "is not an origin"),
        ("http://localhost:99999", "not a port number"),
        ("http://localhost:5173/", "write 'http://localhost:5173'"),
        ("https://App.Example", "write 'https://app.example'"),
        ("https://app.example:443", "write 'https://app.example'"),
        ("https://app.example/path?q=1", "write 'https://app.example'"),
        ("https://user:pw@app.example", "write 'https://app.example'"),
    ],
)
def test_a_bad_origin_stops_the_start_naming_the_variable(
    value: str, said: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    result = cli("db", "status", env={"BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(tmp_path),
                                      "BTEC_CORS_ORIGINS": value})  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "BTEC_CORS_ORIGINS" in result.output
    assert said in " ".join(result.output.split()), result.output


# In a real browser -------------------------------------------------------------------------

# A front end: a page whose own script calls the API with fetch, as an app would.
PAGE = """<!doctype html>
<meta charset="utf-8"><title>front end</title>
<script>
async function createUnit(api, token, code) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers["Authorization"] = "Bearer " + token;
  try {
    const answer = await fetch(api + "/api/v1/units", {
      method: "POST", headers: headers,
      body: JSON.stringify({code: code, title: "Programming", level: 3, credits: 60}),
    });
    return {
      status: answer.status, body: await answer.json(),
      location: answer.headers.get("Location"), requestId: answer.headers.get("X-Request-ID"),
      rateLimit: answer.headers.get("RateLimit"),
      notExposed: answer.headers.get("Cross-Origin-Opener-Policy"),
    };
  } catch (error) {
    return {error: error.name, message: error.message};
  }
}
</script>
"""


def front_end() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return app


async def test_a_browser_front_end_on_an_allowed_origin_and_on_another(
    aiohttp_server: Callable[..., Any], aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings], acli: Callable[..., Any],
) -> None:  # fmt: skip
    """Three loopback origins: the API, a front end in BTEC_CORS_ORIGINS, and one that is not.
    The browser preflights the POST (JSON and a bearer token) and reads the answer and its
    exposed headers on the first; on the other it refuses, and the POST is never sent."""
    allowed_page = await aiohttp_server(front_end())
    other_page = await aiohttp_server(front_end())
    allowed = f"http://127.0.0.1:{allowed_page.port}"
    settings = make_settings(**CHEAP, cors_origins=allowed)
    api = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    token = await token_for(api, "ada@example.org")
    base = f"http://127.0.0.1:{api.server.port}"
    call = "return createUnit(arguments[0], arguments[1], arguments[2])"
    async with async_chromium() as browser:
        await browser.open(allowed + "/")
        made = await browser.run(call, base, token, "U1")
        refused_token = await browser.run(call, base, None, "U2")
        await browser.open(f"http://127.0.0.1:{other_page.port}/")
        elsewhere = await browser.run(call, base, token, "U3")
    assert made["status"] == 201, made
    assert made["body"]["code"] == "U1"
    assert made["location"] == f"/api/v1/units/{made['body']['id']}"
    assert made["requestId"]
    assert made["rateLimit"]
    assert made["notExposed"] is None  # only the listed headers reach the page's code
    assert refused_token["status"] == 401, refused_token  # a problem the app can read
    assert refused_token["body"]["code"] == "unauthorized"
    assert elsewhere["error"] == "TypeError", elsewhere  # "Failed to fetch": CORS refused it
    codes = [u["code"] for u in (await (await api.get(UNITS)).json())["items"]]
    assert codes == ["U1"]  # the other origin's POST never left the browser
    assert api.app[METRICS].http.counts[("OPTIONS", PREFLIGHT_ROUTE)][204] >= 1
