"""Registration and email verification over HTTP, with mail read from a real aiosmtpd server,
and the central rule that unverified users may only see their profile, resend and sign out."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from server.config.settings import Settings
from tests.support.accounts import PASSWORD, STUDENT, bearer, link_token, register, signed_in
from tests.support.env import database
from tests.support.jobs import jobs_idle
from tests.support.mail import Inbox, text_of
from tests.support.problems import PROBLEM


async def test_register_verify_then_full_access(http: Any, inbox: Inbox) -> None:
    made = await register(http)
    assert made.status == 201
    assert made.headers["Location"] == "/api/v1/users/me"  # the new account, as its owner reads it
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
    await jobs_idle(http.app)  # whatever the resends queued has run
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
    mail = text_of((await inbox.wait_for(1))[0])
    assert "zoe@example.org" in mail
    assert "Zoë" not in mail  # the registrant's chosen name never goes to the address


async def test_a_registrants_name_never_reaches_the_mail(http: Any, inbox: Inbox) -> None:
    """Anyone may register someone else's address: the name they choose is theirs, so the
    verification mail, and a reset asked for that address, leave it out."""
    lure = "Your account is suspended, call 0800 000 000 or visit http://evil.example"
    made = await register(http, {**STUDENT, "full_name": lure})
    assert made.status == 201
    asked = await http.post("/api/v1/auth/password/forgot", json={"email": STUDENT["email"]})
    assert asked.status == 202, await asked.text()
    for message in await inbox.wait_for(2):
        assert "evil.example" not in text_of(message)
        assert "evil.example" not in str(message.get_body(("html",)))
