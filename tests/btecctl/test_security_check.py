"""`btecctl security check` through the real CLI: one test per finding id.

The settings findings come from a misconfiguration set in the environment, over a clean
production-like configuration that yields none but the documented ones. The server findings
come from the real btec app on loopback, which must pass (no error-level finding), and from
`misconfigured()`, an aiohttp app that answers with every flaw the check looks for.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from btecctl.output import FAILED, OK, UNREACHABLE, USAGE
from btecctl.security_check import ALL_SECONDS, REQUEST_SECONDS
from server.app import create_app
from server.config.settings import Settings
from tests.support.env import cli_env, closed_port

Result = Any  # typer's Result, with the JSON document as `.doc`


def strong() -> str:
    return secrets.token_urlsafe(32)  # about 258 bits


@pytest.fixture
def clean(tmp_path: Path) -> dict[str, str]:
    """A production configuration with nothing to report."""
    return {
        "BTEC_ENV_FILE": "",
        "BTEC_ENV": "production",
        "BTEC_DATA_DIR": str(tmp_path / "var"),
        "BTEC_DATABASE_URL": "postgresql://btec@db.internal:5432/btec",  # never reached
        "BTEC_REDIS_URL": "redis://cache.internal:6379/0",
        "BTEC_CLAMD_URL": "tcp://clamd.internal:3310",
        "BTEC_PUBLIC_URL": "https://btec.college.example",
        "BTEC_SECRET_KEY": strong(),
        "BTEC_OPS_TOKEN": strong(),
        "BTEC_METRICS_TOKEN": strong(),
        "BTEC_HEALTH_TOKEN": strong(),
        "BTEC_JOBS_UI_PASSWORD": strong(),
    }


@pytest.fixture
def check(cli: Callable[..., Any]) -> Callable[..., Result]:
    """`security check ARGS --json` with `env`: the result, its JSON document as `.doc`."""

    def run(*args: str, env: dict[str, str]) -> Result:
        result = cli("security", "check", *args, "--json", env=env)
        assert "Traceback" not in result.stdout + result.stderr
        result.doc = json.loads(result.stdout)
        return result

    return run


def found(result: Result) -> set[tuple[str, str]]:
    """The (id, severity) of every finding."""
    return {(f["id"], f["severity"]) for f in result.doc["findings"]}


def without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


# The settings ----------------------------------------------------------------------------


def test_a_clean_production_configuration_passes(
    check: Callable[..., Result], clean: dict[str, str]
) -> None:
    result = check(env=clean)
    assert result.exit_code == OK, result.output
    assert result.doc["ok"] is True
    assert result.doc["url"] is None
    assert found(result) == set()
    for f in result.doc["findings"]:
        assert set(f) == {"id", "severity", "message", "fix"}
        assert f["message"]
        assert f["fix"]
        assert "\n" not in f["message"]


SETTINGS: list[tuple[str, str, dict[str, str | None]]] = [
    ("settings.not_production", "info", {"BTEC_ENV": "development"}),
    ("secrets.ops_token_unset", "warning", {"BTEC_OPS_TOKEN": None}),
    ("secrets.metrics_token_unset", "warning", {"BTEC_METRICS_TOKEN": None}),
    ("secrets.health_token_unset", "info", {"BTEC_HEALTH_TOKEN": None}),
    ("secrets.token_weak", "error", {"BTEC_OPS_TOKEN": "a" * 40}),  # 0 bits
    ("secrets.token_weak", "error", {"BTEC_JOBS_UI_PASSWORD": "password1234"}),
    ("secrets.token_weak", "warning", {"BTEC_METRICS_TOKEN": secrets.token_urlsafe(20)}),  # 162
    ("secrets.reused", "error", {"BTEC_METRICS_TOKEN": "{BTEC_OPS_TOKEN}"}),
    ("secrets.reused", "error", {"BTEC_HEALTH_TOKEN": "{BTEC_SECRET_KEY}"}),
    ("secrets.reused", "error", {"BTEC_JWT_KEYS": "k1={BTEC_JOBS_UI_PASSWORD}"}),
    ("tls.public_url_http", "warning", {"BTEC_PUBLIC_URL": "http://btec.college.example"}),
    ("tls.public_url_http", "info",
     {"BTEC_PUBLIC_URL": "http://127.0.0.1:8080", "BTEC_ENV": "development"}),
    ("proxies.trusted_too_wide", "error", {"BTEC_TRUSTED_PROXIES": "10.0.0.5/32,0.0.0.0/0"}),
    ("proxies.trusted_too_wide", "error", {"BTEC_TRUSTED_PROXIES": "2001:db8::/16"}),
    ("docs.ui_enabled", "warning", {"BTEC_DOCS_UI": "true"}),
    ("scan.disabled", "warning", {"BTEC_SCAN_DISABLED": "true", "BTEC_CLAMD_URL": None}),
    ("smtp.cleartext", "warning",
     {"BTEC_SMTP_URL": "smtp://btec:s3cret-pw@mail.internal:587?starttls=off"}),
    ("cors.dev_defaults", "info", {"BTEC_ENV": "development"}),
    ("cors.origins_insecure", "warning",
     {"BTEC_CORS_ORIGINS": "https://app.college.example,http://app.college.example"}),
    ("cors.origins_insecure", "info",
     {"BTEC_CORS_ORIGINS": "http://192.168.1.20:5173", "BTEC_ENV": "development"}),
    ("cors.loopback_origin", "warning",
     {"BTEC_CORS_ORIGINS": "https://app.college.example,http://localhost:5173"}),
    ("cors.loopback_origin", "warning", {"BTEC_CORS_ORIGINS": "http://[::1]:3000"}),
]  # fmt: skip


@pytest.mark.parametrize(("finding", "severity", "change"), SETTINGS,
                         ids=[f"{f}-{s}-{i}" for i, (f, s, _) in enumerate(SETTINGS)])  # fmt: skip
def test_each_misconfiguration_is_found(
    finding: str, severity: str, change: dict[str, str | None], check: Callable[..., Result],
    clean: dict[str, str],
) -> None:  # fmt: skip
    env = without(clean, *(k for k, v in change.items() if v is None))
    env.update({k: v.format(**clean) for k, v in change.items() if v is not None})
    result = check(env=env)
    assert (finding, severity) in found(result), result.doc
    assert result.exit_code == (FAILED if severity == "error" else OK)
    assert result.doc["ok"] is (severity != "error")


def test_a_reused_secret_names_every_holder(
    check: Callable[..., Result], clean: dict[str, str]
) -> None:
    token = clean["BTEC_OPS_TOKEN"]
    env = {**clean, "BTEC_METRICS_TOKEN": token, "BTEC_JWT_KEYS": f"k1={strong()},k2={token}"}
    [reused] = [f for f in check(env=env).doc["findings"] if f["id"] == "secrets.reused"]
    for name in ("BTEC_OPS_TOKEN", "BTEC_METRICS_TOKEN", "BTEC_JWT_KEYS (key 'k2')"):
        assert name in reused["message"]
    assert "'k1'" not in reused["message"]


def test_outside_production_the_production_checks_are_skipped(
    check: Callable[..., Result], tmp_path: Path
) -> None:
    # No token set: the data dir makes its own, strong and distinct ones.
    env = {"BTEC_ENV_FILE": "", "BTEC_ENV": "development", "BTEC_DATA_DIR": str(tmp_path / "v"),
           "BTEC_DOCS_UI": "true"}  # fmt: skip
    result = check(env=env)
    assert result.exit_code == OK, result.output
    assert found(result) == {
        ("settings.not_production", "info"), ("tls.public_url_http", "info"),
        ("cors.dev_defaults", "info"),  # the dev servers' origins are loopback: not insecure
    }  # fmt: skip
    [said] = [f["message"] for f in result.doc["findings"] if f["id"] == "settings.not_production"]
    assert "secrets.ops_token_unset" in said
    assert "docs.ui_enabled" in said


def test_narrow_proxies_tls_mail_and_https_origins_pass(
    check: Callable[..., Result], clean: dict[str, str]
) -> None:
    env = {**clean, "BTEC_TRUSTED_PROXIES": "10.0.0.0/8,192.168.0.0/16,fd00::/32",
           "BTEC_SMTP_URL": "smtp://btec:pw@mail.internal:587?starttls=required",
           "BTEC_CORS_ORIGINS": "https://app.college.example,https://staff.example"}  # fmt: skip
    assert found(check(env=env)) == set()
    env["BTEC_SMTP_URL"] = "smtp://mail.internal:25?starttls=off"  # no password to give away
    assert found(check(env=env)) == set()


def test_no_secret_value_is_shown(
    cli: Callable[..., Any], clean: dict[str, str], tmp_path: Path
) -> None:
    weak = "hunter2hunter2hunter2hunter2hunter2"
    env = {**clean, "BTEC_OPS_TOKEN": weak, "BTEC_METRICS_TOKEN": weak,
           "BTEC_HEALTH_TOKEN": clean["BTEC_SECRET_KEY"], "BTEC_JOBS_UI_PASSWORD": "pass-word!",
           "BTEC_JWT_KEYS": f"k1={clean['BTEC_JOBS_UI_PASSWORD']}",
           "BTEC_SMTP_URL": "smtp://btec:smtp-pw-9f3e@mail.internal:25?starttls=off"}  # fmt: skip
    values = [weak, clean["BTEC_SECRET_KEY"], "pass-word!", clean["BTEC_JOBS_UI_PASSWORD"],
              "smtp-pw-9f3e", "mail.internal"]  # fmt: skip
    for args in (("--json",), ()):
        result = cli("security", "check", *args, env=env)
        assert result.exit_code == FAILED
        for value in values:
            assert value not in result.stdout + result.stderr
    # Outside production: the secrets the data dir made are not shown either.
    dev = {"BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(tmp_path / "dev")}
    shown = cli("security", "check", "--json", env=dev)
    made = list((tmp_path / "dev" / "secrets").iterdir())
    assert len(made) == 4
    for path in made:
        assert path.read_text().strip() not in shown.stdout + shown.stderr
    # Credentials in --url are refused without repeating them.
    refused = cli("security", "check", "--url", "http://ops:url-pw-5d1c@127.0.0.1:9", env=dev)
    assert refused.exit_code == USAGE
    assert "url-pw-5d1c" not in refused.stdout + refused.stderr


def test_the_table(cli: Callable[..., Any], clean: dict[str, str]) -> None:
    env = {**clean, "BTEC_TRUSTED_PROXIES": "0.0.0.0/0",
           "BTEC_CORS_ORIGINS": "http://app.college.example"}  # fmt: skip
    result = cli("security", "check", env=env)
    assert result.exit_code == FAILED
    for word in ("proxies.trusted_too_wide", "error", "cors.origins_insecure", "0.0.0.0/0"):
        assert word in result.stdout, result.stdout
    assert "1 error, 1 warning, 0 info" in result.stderr


# A running server ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["test", "production"])
async def test_the_real_server_passes(
    env: str, aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    tokens = {"secret_key": strong(), "ops_token": strong(), "metrics_token": strong()}
    if env == "production":
        settings = make_settings(env=env, scan_disabled=True,
                                 **{k: SecretStr(v) for k, v in tokens.items()})  # fmt: skip
        extra = {f"BTEC_{k.upper()}": v for k, v in tokens.items()}
        extra["BTEC_SCAN_DISABLED"] = "true"
    else:
        settings, extra = make_settings(), {}
    server = await aiohttp_server(create_app(settings))
    url = f"http://127.0.0.1:{server.port}"
    result = await acli("security", "check", "--url", url, "--json",
                        env=cli_env(settings, BTEC_ENV_FILE="", **extra))  # fmt: skip
    doc = json.loads(result.stdout)
    assert [f for f in doc["findings"] if f["severity"] == "error"] == []
    assert result.exit_code == OK, result.output
    assert doc["ok"] is True
    assert doc["url"] == url
    ids = {f["id"] for f in doc["findings"]}
    assert not ids & {"headers.missing", "headers.server_banner", "ratelimit.absent"}, doc
    # Swagger UI is served outside production (info), and not in production.
    assert ("exposure.docs_ui" in ids) is (env != "production")
    for value in tokens.values():
        assert value not in result.stdout + result.stderr


def misconfigured() -> web.Application:
    """Stands in for a misconfigured deployment, or a proxy in front of btec, which no real
    btec can be made into: it answers with every flaw the check looks for. No security
    headers, aiohttp's own `Server` banner, metrics, an ops answer and health details to
    anyone, a body on HEAD (aiohttp's StreamResponse writes one when told to), TRACE echoed,
    a traceback in error bodies and plain-text 404s, CORS `*` with credentials, and no
    RateLimit-Policy."""

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def head_with_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.content_length = 3
        await response.prepare(request)
        await response.write(b"ok\n")
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        checks = {"postgres:responseTime": [{"status": "pass", "observedValue": 1.2}]}
        return web.json_response({"status": "pass", "checks": checks})

    async def login(request: web.Request) -> web.Response:
        trace = ('Traceback (most recent call last):\n  File "/srv/app.py", line 12, in login\n'
                 "json.decoder.JSONDecodeError: Expecting value: line 1 column 10\n")  # fmt: skip
        return web.Response(status=500, text=trace, headers={"Access-Control-Allow-Origin": "*"})

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(headers={"Access-Control-Allow-Origin": "*",
                                     "Access-Control-Allow-Credentials": "true"})  # fmt: skip

    async def trace(request: web.Request) -> web.Response:
        return web.Response(text=f"TRACE {request.path} HTTP/1.1\r\n")

    app = web.Application()
    app.router.add_route("HEAD", "/api/v1/health/live", head_with_body)
    app.router.add_get("/api/v1/health/live", text, allow_head=False)
    for path in ("/metrics", "/api/v1/ops/jobs/{job}", "/api/docs"):
        app.router.add_get(path, text)
    app.router.add_get("/api/v1/health", health)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_route("OPTIONS", "/api/v1/auth/login", preflight)
    app.router.add_route("TRACE", "/", trace)
    return app


SERVER_FINDINGS = {
    ("headers.missing", "error"),
    ("headers.server_banner", "warning"),
    ("exposure.metrics", "error"),
    ("exposure.ops", "error"),
    ("exposure.health_details", "error"),
    ("exposure.docs_ui", "warning"),  # warning: the settings loaded say production
    ("http.head_body", "error"),
    ("http.trace", "error"),
    ("errors.leak", "error"),
    ("cors.wildcard", "error"),
    ("ratelimit.absent", "warning"),
}


@pytest.fixture
async def flawed(aiohttp_server: Callable[..., Any]) -> str:
    server = await aiohttp_server(misconfigured())
    return f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(("finding", "severity"), sorted(SERVER_FINDINGS))
async def test_each_flaw_of_a_server_is_found(
    finding: str, severity: str, flawed: str, acli: Callable[..., Any], clean: dict[str, str]
) -> None:
    result = await acli("security", "check", "--url", flawed, "--json", env=clean)
    assert result.exit_code == FAILED, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["url"] == flawed
    mine = [f for f in doc["findings"] if f["id"] == finding]
    assert {f["severity"] for f in mine} == {severity}, doc
    if finding == "headers.missing":  # each answer, naming what it lacks
        assert {f["message"].split(" answers")[0] for f in mine} == {
            "GET /api/v1/health/live", "GET /api/v1/nope"}  # fmt: skip
        assert "Referrer-Policy" in mine[0]["message"]
    if finding == "errors.leak":
        said = " ".join(f["message"] for f in mine)
        for word in ("JSONDecodeError", "Traceback", 'File "', "text/plain"):
            assert word in said, said
    if finding == "headers.server_banner":
        assert "aiohttp" in mine[0]["message"]


async def test_docs_ui_of_a_server_is_info_outside_production(
    flawed: str, acli: Callable[..., Any], tmp_path: Path
) -> None:
    env = {"BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(tmp_path / "var")}
    doc = json.loads((await acli("security", "check", "--url", flawed, "--json", env=env)).stdout)
    assert ("exposure.docs_ui", "info") in {(f["id"], f["severity"]) for f in doc["findings"]}


async def test_the_flaws_show_in_a_table(
    flawed: str, acli: Callable[..., Any], clean: dict[str, str]
) -> None:
    result = await acli("security", "check", "--url", flawed, env=clean)
    assert result.exit_code == FAILED
    assert "http.head_body" in result.stdout
    assert f"of {flawed}" in result.stdout.replace("\n", "")


def test_an_unreachable_or_bad_url(check: Callable[..., Result], clean: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = check("--url", url, env=clean)
    assert result.exit_code == UNREACHABLE
    assert result.doc["ok"] is False
    assert result.doc["error"].startswith(f"no server answered at {url}")
    assert "\n" not in result.doc["error"]
    for bad in ("ftp://x", "not-a-url", "http://127.0.0.1:99999"):
        assert check("--url", bad, env=clean).exit_code == USAGE, bad


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that takes connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_server_that_never_answers_exits_3_in_bounded_time(
    silent: str, acli: Callable[..., Any], clean: dict[str, str]
) -> None:
    started = time.monotonic()
    result = await acli("security", "check", "--url", silent, "--json", env=clean)
    took = time.monotonic() - started
    assert result.exit_code == UNREACHABLE, result.output
    assert f"no answer within {REQUEST_SECONDS:g} s" in json.loads(result.stdout)["error"]
    assert took < ALL_SECONDS


def test_every_finding_id_is_documented(cli: Callable[..., Any]) -> None:
    shown = " ".join(cli("security", "check", "--help", env={"BTEC_ENV_FILE": ""}).stdout.split())
    ids = {f for f, _, _ in SETTINGS} | {f for f, _ in SERVER_FINDINGS}
    assert len(ids) == 25
    for finding in ids:
        assert finding in shown, finding
