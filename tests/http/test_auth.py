"""Signing in and access tokens over HTTP: login, /users/me, and every way a token is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import psycopg
import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.platform.embedded import EmbeddedPostgres
from server.platform.tokens import AUDIENCE, TokenKeys
from server.schema import migrations
from tests.support.accounts import (
    CHEAP,
    PASSWORD,
    acli_input,
    bearer,
    login,
    make_admin,
    signed_in,
    token_for,
    use_refresh,
)
from tests.support.env import cli_env, closed_port, database
from tests.support.metrics import scrape
from tests.support.problems import PROBLEM
from tests.support.wait import eventually

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


KEY_A = "a" * 40
KEY_B = "b" * 40


async def test_login_then_me(http: Any, acli: Callable[..., Any], auth_settings: Settings) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    answer = await login(http, "ADA@example.org")  # any case
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    session = await answer.json()
    assert session["token_type"] == "Bearer"
    assert session["expires_in"] == auth_settings.access_token_seconds
    token = session["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == "k0"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti", "typ", "ver", "sid"}
    me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200
    assert me.headers["Cache-Control"] == "no-store"
    profile = await me.json()
    assert (profile["email"], profile["role"]) == ("ada@example.org", "admin")
    assert "password_hash" not in profile


async def test_every_login_failure_looks_the_same(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    await make_admin(acli, auth_settings, "gone@example.org")
    await acli("users", "deactivate", "gone@example.org", "--yes", env=cli_env(auth_settings))
    bodies = []
    for email, password in [("ada@example.org", "wrong password!"), ("nobody@example.org",
                            PASSWORD), ("gone@example.org", PASSWORD)]:  # fmt: skip
        answer = await login(http, email, password)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="btec"'
        body = await answer.json(content_type=PROBLEM)
        body.pop("request_id")
        bodies.append(body)
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.org", "password": "x" * 10_000},
        {"email": 123, "password": PASSWORD},
        {"email": ["a@example.org"], "password": PASSWORD},
        {"email": "a@example.org"},
        {"password": PASSWORD},
        {"email": "a@example.org", "password": ""},
        {"email": "a" * 400 + "@example.org", "password": PASSWORD},
    ],
)
async def test_bad_login_input_is_422(http: Any, body: dict[str, Any]) -> None:
    answer = await http.post("/api/v1/auth/login", json=body)
    assert answer.status == 422
    assert (await answer.json(content_type=PROBLEM))["code"] == "validation_failed"


async def test_odd_but_valid_login_input_is_401(http: Any) -> None:
    for body in ({"email": "ünï@日本.example", "password": "пароль-密码-🔑"},
                 {"email": "a@example.org", "password": "x" * 128}):  # fmt: skip
        assert (await http.post("/api/v1/auth/login", json=body)).status == 401
    broken = await http.post("/api/v1/auth/login", data=b"{not json",
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert broken.status == 400


def forge(claims: dict[str, Any], key: str = "", kid: str = "k0", alg: str = "HS256") -> str:
    return jwt.encode(claims, key or None, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]


async def test_tokens_are_refused_with_a_challenge(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    token = await token_for(http, "ada@example.org")
    keys = TokenKeys(auth_settings)
    secret = keys.keys["k0"].decode("latin-1")
    good = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())

    def signed(**change: Any) -> str:
        claims = {**good, **change}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, keys.keys["k0"], algorithm="HS256", headers={"kid": "k0"})

    head, payload, signature = token.split(".")
    tampered_payload = jwt.utils.base64url_encode(  # type: ignore[attr-defined]
        json.dumps({**good, "sub": "999"}).encode()).decode()  # fmt: skip
    cases = {
        "tampered signature": f"{head}.{payload}.{signature[:-2]}AA",
        "tampered claims": f"{head}.{tampered_payload}.{signature}",
        "alg none": jwt.encode(good, None, algorithm="none", headers={"kid": "k0"}),  # type: ignore[arg-type]
        "wrong audience": signed(aud="someone-else"),
        "wrong issuer": signed(iss="https://evil.example"),
        "expired": signed(iat=now - 7200, exp=now - 3600),
        "missing jti": signed(jti=None),
        "missing ver": signed(ver=None),
        "refresh type": signed(typ="refresh"),
        "unknown kid": jwt.encode(good, KEY_B, algorithm="HS256", headers={"kid": "other"}),
        "garbage": "not.a.jwt",
    }
    assert secret  # the forged ones above used the real key where it matters
    for name, bad in cases.items():
        answer = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {bad}"})
        assert answer.status == 401, name
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="btec", error="invalid_token"'
        assert (await answer.json(content_type=PROBLEM))["code"] == "invalid_token", name
    for header in ({}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer "}):
        answer = await http.get("/api/v1/users/me", headers=header)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="btec"'
        assert (await answer.json(content_type=PROBLEM))["code"] == "unauthorized"
    assert good["aud"] == AUDIENCE


async def test_a_remembered_token_still_expires(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    """Verified tokens are remembered per process; their expiry is checked on every use."""
    await make_admin(acli, auth_settings, "ada@example.org")
    session = await signed_in(http, "ada@example.org")
    user_id = (await (await http.get("/api/v1/users/me", headers=bearer(session))).json())["id"]
    keys = TokenKeys(auth_settings)  # the same key as the server's
    # Issued so that it expires, leeway included, 2 seconds from now.
    token, _ = keys.issue(
        user_id, 0, uuid.uuid4(), now=time.time() - auth_settings.access_token_seconds - 28
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/api/v1/users/me", headers=auth)).status == 200
    assert (await http.get("/api/v1/users/me", headers=auth)).status == 200  # remembered

    async def me() -> Any:
        answer = await http.get("/api/v1/users/me", headers=auth)
        await answer.read()
        return answer

    expired = await eventually(me, lambda answer: answer.status != 200, timeout=10,
                               interval=0.1, message="the token is refused")  # fmt: skip
    assert expired.status == 401
    assert (await expired.json(content_type=PROBLEM))["detail"] == "the token has expired"


async def test_a_password_change_or_deactivation_ends_tokens(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    first = await signed_in(http, "ada@example.org")
    first_refresh = first["refresh_token"]
    auth = bearer(first)
    assert (await http.get("/api/v1/users/me", headers=auth)).status == 200
    changed = await acli_input(acli, auth_settings, ("users", "set-password", "ada@example.org",
                               "--password-stdin"), "another good passphrase")  # fmt: skip
    assert changed.exit_code == 0
    assert (await http.get("/api/v1/users/me", headers=auth)).status == 401
    refreshed = await use_refresh(http, first_refresh)
    assert refreshed.status == 401  # the refresh token died with the password
    assert (await login(http, "ada@example.org")).status == 401  # the old password
    fresh = await http.post("/api/v1/auth/login", json={"email": "ada@example.org",
                            "password": "another good passphrase"})  # fmt: skip
    session = await fresh.json()
    await acli("users", "deactivate", "ada@example.org", "--yes", env=cli_env(auth_settings))
    gone = await http.get("/api/v1/users/me", headers=bearer(session))
    assert gone.status == 401
    assert (await use_refresh(http, session["refresh_token"])).status == 401


async def test_login_rehashes_under_new_parameters(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    auth_settings: Settings,
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    stronger = make_settings(**{**CHEAP, "argon2_time_cost": 2})
    http = await aiohttp_client(create_app(stronger))
    assert (await login(http, "ada@example.org")).status == 200
    assert stronger.database_url is not None
    with psycopg.connect(stronger.database_url.get_secret_value()) as conn:
        row = conn.execute("SELECT password_hash, token_version FROM users").fetchone()
    assert row is not None
    assert ",t=2," in row[0]
    assert row[1] == 0  # a rehash is not a password change: sessions stay
    assert (await login(http, "ada@example.org")).status == 200


async def test_signing_keys_rotate(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    auth_settings: Settings,
) -> None:
    from pydantic import SecretStr

    await make_admin(acli, auth_settings, "ada@example.org")

    def app_with(keys: str) -> Any:
        return create_app(make_settings(**CHEAP, jwt_keys=SecretStr(keys)))

    old = await aiohttp_client(app_with(f"old={KEY_A}"))
    token = await token_for(old, "ada@example.org")
    both = await aiohttp_client(app_with(f"new={KEY_B},old={KEY_A}"))
    auth = {"Authorization": f"Bearer {token}"}
    assert (await both.get("/api/v1/users/me", headers=auth)).status == 200
    assert jwt.get_unverified_header(await token_for(both, "ada@example.org"))["kid"] == "new"
    retired = await aiohttp_client(app_with(f"new={KEY_B}"))
    assert (await retired.get("/api/v1/users/me", headers=auth)).status == 401


def test_bad_key_settings_name_the_variable(cli: Callable[..., Any]) -> None:
    for value in ("short=abc", "noequals", f"a={KEY_A},a={KEY_B}", ","):
        result = cli("db", "status", env={"BTEC_ENV_FILE": "", "BTEC_JWT_KEYS": value})
        assert result.exit_code == 4, value
        assert "BTEC_JWT_KEYS" in result.output
        assert KEY_A not in result.output


async def test_login_is_rate_limited_per_client(http: Any) -> None:
    statuses = [(await login(http, f"x{i}@example.org", "wrong password")).status
                for i in range(11)]  # fmt: skip
    assert statuses == [401] * 10 + [429]


async def test_failed_logins_back_off_per_account_and_address(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    """Three failures in a row from one address delay that address for the account; the
    delay doubles with each further failure, expires, and a right password clears the count.
    Other addresses are not slowed."""
    settings = make_settings(**CHEAP, trusted_proxies="127.0.0.1/32", login_backoff_after=3,
                             login_backoff_base_seconds=1, login_backoff_max_seconds=2,
                             ratelimit_policies="auth_login=1000/60:closed")  # fmt: skip
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    attempt = attempt_from(http)

    assert [(await attempt("192.0.2.1")).status for _ in range(3)] == [401] * 3
    for password in ("wrong password", PASSWORD):  # the same address: held, right password too
        held = await attempt("192.0.2.1", password)
        assert held.status == 429
        problem = await held.json(content_type=PROBLEM)
        assert problem["code"] == "login_throttled"
        assert held.headers["Retry-After"] == "1"
    assert (await attempt("198.51.100.7")).status == 401  # another address: not slowed
    unknown = [(await attempt("192.0.2.50", email="nobody@example.org")).status for _ in range(4)]
    assert unknown == [401, 401, 401, 429]  # unknown accounts are delayed the same way

    # An attempt held back is not counted: try until one is let through.
    def let_through(password: str) -> Any:
        return eventually(lambda: attempt("192.0.2.1", password), lambda a: a.status != 429,
                          timeout=10, interval=0.1, message="the delay expires")  # fmt: skip

    assert (await let_through("wrong password")).status == 401  # the 4th failure
    doubled = await attempt("192.0.2.1", PASSWORD)
    assert doubled.status == 429
    assert doubled.headers["Retry-After"] == "2"  # 2 x 1 s, the cap
    assert (await let_through(PASSWORD)).status == 200  # never a lockout
    assert [(await attempt("192.0.2.1")).status for _ in range(3)] == [401] * 3  # count reset
    metrics = await scrape(http)
    assert 'btec_ratelimit_decisions_total{policy="auth_login_account",result="limited"}' in metrics


def attempt_from(http: Any) -> Callable[..., Any]:
    """A sign-in attempt as if from client `ip` (the test's proxy is trusted)."""

    async def attempt(ip: str, password: str = "wrong password",  # noqa: S107
                      email: str = "ada@example.org") -> Any:  # fmt: skip
        return await http.post("/api/v1/auth/login", json={"email": email, "password": password},
                               headers={"X-Forwarded-For": ip})  # fmt: skip

    return attempt


async def test_an_attacker_cannot_lock_the_owner_out(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    """50 failures from one address: the owner still signs in from another address, at once,
    and the attacker stays throttled (by the account's backoff and the address's policy)."""
    settings = make_settings(**CHEAP, trusted_proxies="127.0.0.1/32",
                             ratelimit_policies="auth_login=1000/60:closed")  # fmt: skip
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    attempt = attempt_from(http)
    attacker = [(await attempt("203.0.113.66")).status for _ in range(50)]
    assert attacker[:5] == [401] * 5
    assert set(attacker[5:]) == {429}
    owner = await attempt("198.51.100.20", PASSWORD)
    assert owner.status == 200, await owner.text()
    assert (await attempt("203.0.113.66", PASSWORD)).status == 429  # still held, even so
    default = make_settings(**CHEAP, trusted_proxies="127.0.0.1/32")
    http = await aiohttp_client(create_app(default))
    attempt = attempt_from(http)  # the default per-address policy: 10 a minute
    statuses = [(await attempt("203.0.113.67", email=f"u{i}@example.org")).status
                for i in range(12)]  # fmt: skip
    assert statuses[-1] == 429


async def test_a_guess_spread_over_many_addresses_hits_the_account_cap(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    """Past BTEC_LOGIN_ACCOUNT_CAP failures from all addresses, only addresses that signed
    in to the account before may try; the owner's known device still gets in."""
    settings = make_settings(**CHEAP, trusted_proxies="127.0.0.1/32", login_account_cap=6,
                             ratelimit_policies="auth_login=1000/60:closed")  # fmt: skip
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    attempt = attempt_from(http)
    assert (await attempt("198.51.100.20", PASSWORD)).status == 200  # the owner's laptop
    spread = [(await attempt(f"203.0.113.{i}")).status for i in range(1, 10)]
    assert spread == [401] * 6 + [429] * 3
    assert (await attempt("192.0.2.200", PASSWORD)).status == 429  # a new device waits
    assert (await attempt("198.51.100.20", PASSWORD)).status == 200  # a known one does not
    cleared = await acli("users", "unthrottle", "ada@example.org", "--json", env=cli_env(settings))
    assert json.loads(cleared.output)["failures_forgotten"] == 6
    assert (await attempt("192.0.2.200", PASSWORD)).status == 200


async def test_an_operator_can_clear_an_accounts_failed_logins(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    settings = make_settings(**CHEAP, login_backoff_after=2, login_backoff_base_seconds=600)
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    assert [(await login(http, "ada@example.org", "nope nope")).status for _ in range(2)] == [
        401
    ] * 2
    held = await login(http, "ada@example.org")
    assert (held.status, held.headers["Retry-After"]) == (429, "600")
    result = await acli("users", "unthrottle", "ADA@example.org", "--json", env=cli_env(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"ok": True, "email": "ADA@example.org",
                                         "failures_forgotten": 2}  # fmt: skip
    assert (await login(http, "ada@example.org")).status == 200
    bad = await acli("users", "unthrottle", "not an address", "--json", env=cli_env(settings))
    assert bad.exit_code == 2
    down = cli_env(settings) | {"BTEC_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    unreachable = await acli("users", "unthrottle", "ada@example.org", "--json", env=down)
    assert unreachable.exit_code == 3
    assert json.loads(unreachable.output.splitlines()[0])["ok"] is False


async def test_login_backoff_with_redis_down_lets_the_ip_policy_decide(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
) -> None:  # fmt: skip
    settings = make_settings(**CHEAP, redis_url=f"redis://127.0.0.1:{closed_port()}/0",
                             ratelimit_policies="auth_login=10/60:open")  # fmt: skip
    http = await aiohttp_client(create_app(settings))
    statuses = [(await login(http, "ada@example.org", "wrong password")).status for _ in range(7)]
    assert statuses == [401] * 7  # no per-account count without Redis; the IP policy decides


async def test_refresh_rotates_and_reuse_revokes_the_family(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    first = await signed_in(http, "ada@example.org")
    other_device = await signed_in(http, "ada@example.org")
    answer = await use_refresh(http, first["refresh_token"])
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    second = await answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await http.get("/api/v1/users/me", headers=bearer(second))).status == 200

    replay = await use_refresh(http, first["refresh_token"])  # a spent token, again
    assert replay.status == 401
    assert (await replay.json(content_type=PROBLEM))["code"] == "invalid_token"
    # Every access token of the sign-in ends with it, at the next request: the one issued at
    # sign-in and the one from the refresh; another sign-in's stays.
    for ended in (first, second):
        gone = await http.get("/api/v1/users/me", headers=bearer(ended))
        assert gone.status == 401
        assert (await gone.json(content_type=PROBLEM))["detail"] == "the token has been revoked"
    assert (await http.get("/api/v1/users/me", headers=bearer(other_device))).status == 200
    revoked = await use_refresh(http, second["refresh_token"])  # the family is gone
    assert revoked.status == 401
    assert (await use_refresh(http, other_device["refresh_token"])).status == 200  # not its family


async def test_refresh_refuses_bad_unknown_and_expired_tokens(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
    auth_settings: Settings,
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    http = await aiohttp_client(create_app(make_settings(**CHEAP, refresh_token_days=0.00002)))
    for body in ({}, {"refresh_token": 5}, {"refresh_token": "x" * 201}, {"refresh_token": ""}):
        assert (await http.post("/api/v1/auth/refresh", json=body)).status == 422, body
    assert (await use_refresh(http, "never-issued")).status == 401
    session = await signed_in(http, "ada@example.org")
    # The refresh token lives 1.7 s here. A use before its expiry would spend it, so wait until
    # the expiry the server recorded has passed (the server compares it with this clock).
    with psycopg.connect(database(auth_settings)) as conn:
        row = conn.execute("SELECT max(expires_at) FROM refresh_tokens").fetchone()
    assert row is not None
    await eventually(lambda: dt.datetime.now(dt.UTC) > row[0], timeout=10,
                     message="the refresh token's expiry has passed")  # fmt: skip
    expired = await use_refresh(http, session["refresh_token"])
    assert expired.status == 401
    assert "expired" in (await expired.json(content_type=PROBLEM))["detail"]


async def test_a_deactivated_user_cannot_refresh(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    session = await signed_in(http, "ada@example.org")
    await acli("users", "deactivate", "ada@example.org", "--yes", env=cli_env(auth_settings))
    assert (await use_refresh(http, session["refresh_token"])).status == 401


async def test_logout_ends_this_session_only(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    here = await signed_in(http, "ada@example.org")
    there = await signed_in(http, "ada@example.org")
    out = await http.post("/api/v1/auth/logout", headers=bearer(here),
                          json={"refresh_token": here["refresh_token"]})  # fmt: skip
    assert out.status == 204
    assert (await http.get("/api/v1/users/me", headers=bearer(here))).status == 401
    assert (await use_refresh(http, here["refresh_token"])).status == 401
    assert (await http.get("/api/v1/users/me", headers=bearer(there))).status == 200
    assert (await use_refresh(http, there["refresh_token"])).status == 200
    bare = await signed_in(http, "ada@example.org")
    assert (await http.post("/api/v1/auth/logout", headers=bearer(bare))).status == 204
    assert (await http.get("/api/v1/users/me", headers=bearer(bare))).status == 401
    assert (await use_refresh(http, bare["refresh_token"])).status == 401  # its sign-in's
    assert (await http.post("/api/v1/auth/logout")).status == 401


async def test_logout_ends_every_access_token_of_the_sign_in(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    """An access token issued before a refresh is of the same sign-in: signing out with the
    newer one ends it too."""
    await make_admin(acli, auth_settings, "ada@example.org")
    earlier = await signed_in(http, "ada@example.org")
    later = await (await use_refresh(http, earlier["refresh_token"])).json()
    for session in (earlier, later):
        assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 200
    assert (await http.post("/api/v1/auth/logout", headers=bearer(later))).status == 204
    for session in (earlier, later):
        assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 401
    assert (await use_refresh(http, later["refresh_token"])).status == 401


async def test_revocations_hold_while_redis_is_down(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    """Revocations live in PostgreSQL with the sign-ins: with Redis unreachable, sign-out
    still revokes (204 means revoked), and a revoked token stays refused."""
    settings = make_settings(**CHEAP, redis_url=f"redis://127.0.0.1:{closed_port()}/0",
                             ratelimit_enabled=False)  # fmt: skip
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    session = await signed_in(http, "ada@example.org")
    assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 200
    assert (await http.post("/api/v1/auth/logout", headers=bearer(session))).status == 204
    assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 401


async def test_logout_that_cannot_be_stored_is_503(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any], own_postgres: EmbeddedPostgres,
) -> None:  # fmt: skip
    """No 204 that revoked nothing: with PostgreSQL gone, sign-out answers 503."""
    settings = make_settings(**CHEAP, database_url=SecretStr(own_postgres.url()),
                             db_pool_acquire_timeout=1)  # fmt: skip
    await asyncio.to_thread(migrations.migrate, settings)
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    session = await signed_in(http, "ada@example.org")
    await asyncio.to_thread(own_postgres.stop)
    out = await http.post("/api/v1/auth/logout", headers=bearer(session))
    assert out.status == 503
    assert (await out.json(content_type=PROBLEM))["code"] in ("db_unavailable", "db_pool_timeout")


async def test_logout_all_ends_every_session(
    http: Any, acli: Callable[..., Any], auth_settings: Settings
) -> None:
    await make_admin(acli, auth_settings, "ada@example.org")
    sessions = [await signed_in(http, "ada@example.org") for _ in range(3)]
    assert (await http.post("/api/v1/auth/logout-all", headers=bearer(sessions[0]))).status == 204
    for session in sessions:
        assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 401
        assert (await use_refresh(http, session["refresh_token"])).status == 401
    assert (await login(http, "ada@example.org")).status == 200  # signing in again works
