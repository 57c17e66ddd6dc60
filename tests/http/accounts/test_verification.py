"""Registration and email verification over HTTP, with mail read from a real aiosmtpd server,
and the central rule that unverified users may only see their profile, resend and sign out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from tests.smtp import Inbox, smtp_server
from tests.test_auth import CHEAP, PASSWORD, PROBLEM, bearer
from tests.test_password_reset import text_of

LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9_%\-]+)")
STUDENT = {"email": "sam@example.org", "full_name": "Sam Student", "password": PASSWORD}


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    async with smtp_server() as box:
        yield box


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings], inbox: Inbox) -> Settings:
    return make_settings(**CHEAP, smtp_url=SecretStr(inbox.url))


@pytest.fixture
async def http(aiohttp_client: Callable[..., Any], mail_settings: Settings) -> Any:
    return await aiohttp_client(create_app(mail_settings, worker=True))


async def register(http: Any, body: dict[str, Any] | None = None) -> Any:
    return await http.post("/api/v1/auth/register", json=body or STUDENT)


async def link_token(inbox: Inbox, count: int = 1) -> str:
    messages = await inbox.wait_for(count)
    assert len(messages) >= count, "no verification mail arrived"
    found = LINK.search(text_of(messages[count - 1]))
    assert found is not None
    return unquote(found.group(1))


async def signed_in(http: Any) -> dict[str, Any]:
    answer = await http.post("/api/v1/auth/login", json={"email": STUDENT["email"],
                             "password": PASSWORD})  # fmt: skip
    assert answer.status == 200
    return dict(await answer.json())


def database(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url.get_secret_value()


async def test_register_verify_then_full_access(http: Any, inbox: Inbox) -> None:
    made = await register(http)
    assert made.status == 201
    user = await made.json()
    assert (user["role"], user["email_verified_at"]) == ("student", None)
    token = await link_token(inbox)
    session = await signed_in(http)  # signing in works before verifying

    assert (await http.get("/api/v1/users/me", headers=bearer(session))).status == 200
    change = {"current_password": PASSWORD, "new_password": "another long passphrase"}
    blocked = await http.post("/api/v1/auth/password/change", headers=bearer(session), json=change)
    assert blocked.status == 403
    assert (await blocked.json(content_type=PROBLEM))["code"] == "email_unverified"

    preview = await http.get("/api/v1/auth/verify/confirm", params={"token": token})
    assert preview.status == 200
    assert (await preview.json())["email"] == "sam@example.org"
    me = await (await http.get("/api/v1/users/me", headers=bearer(session))).json()
    assert me["email_verified_at"] is None  # a GET changes nothing

    confirmed = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert confirmed.status == 200
    assert (await confirmed.json())["status"] == "verified"
    me = await (await http.get("/api/v1/users/me", headers=bearer(session))).json()
    assert me["email_verified_at"] is not None
    allowed = await http.post("/api/v1/auth/password/change", headers=bearer(session), json=change)
    assert allowed.status == 200

    again = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert again.status == 400
    assert (await again.json(content_type=PROBLEM))["code"] == "invalid_verify_token"


async def test_resend_has_a_cooldown(http: Any, inbox: Inbox) -> None:
    await register(http)
    await link_token(inbox)
    session = await signed_in(http)
    for _ in range(5):
        resent = await http.post("/api/v1/auth/verify/request", headers=bearer(session))
        assert resent.status == 202
    await asyncio.sleep(1.0)
    assert len(inbox.messages) == 1  # within 2 minutes of the first: no new message
    sixth = await http.post("/api/v1/auth/verify/request", headers=bearer(session))
    assert sixth.status == 429  # 5 a day per user
    assert (await http.post("/api/v1/auth/verify/request")).status == 401  # the IP's own budget


async def test_tokens_are_bound_to_the_address_and_expire(
    http: Any, inbox: Inbox, mail_settings: Settings
) -> None:
    await register(http)
    token = await link_token(inbox)
    with psycopg.connect(database(mail_settings), autocommit=True) as conn:
        conn.execute("UPDATE users SET email = 'other@example.org'")
    moved = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert moved.status == 400
    with psycopg.connect(database(mail_settings), autocommit=True) as conn:
        conn.execute("UPDATE users SET email = 'sam@example.org'")
        conn.execute("UPDATE email_verifications SET expires_at = now() - interval '1 second'")
    expired = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert expired.status == 400
    assert (await http.get("/api/v1/auth/verify/confirm")).status == 400


async def test_a_taken_address_is_409(http: Any) -> None:
    assert (await register(http)).status == 201
    taken = await register(http, {**STUDENT, "email": "SAM@example.org"})
    assert taken.status == 409
    assert (await taken.json(content_type=PROBLEM))["code"] == "email_taken"


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not an address"},
        {"email": 5},
        {"password": "short"},
        {"password": "x" * 10_000},
        {"full_name": ""},
        {"full_name": "Bell\x07"},
        {"full_name": None},
    ],
)
async def test_bad_registrations_are_422(http: Any, change: dict[str, Any]) -> None:
    answer = await register(http, {**STUDENT, **change})
    assert answer.status == 422, await answer.text()
    assert (await answer.json(content_type=PROBLEM))["code"] == "validation_failed"


async def test_unicode_registration(http: Any, inbox: Inbox) -> None:
    body = {"email": "zoe@example.org", "full_name": "Zoë Ŧhe 日本", "password": "пароль-密码-🔑"}
    made = await register(http, body)
    assert made.status == 201
    assert (await made.json())["full_name"] == "Zoë Ŧhe 日本"
    assert "Zoë" in text_of((await inbox.wait_for(1))[0])
