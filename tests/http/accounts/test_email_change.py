"""PATCH /api/v1/users/me: a new name at once, a new address only once a link mailed to it is
confirmed (with the old address told), all through HTTP with mail from a real aiosmtpd."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from server.config.settings import Settings
from tests.support.accounts import (
    PASSWORD,
    STUDENT,
    bearer,
    link_token,
    make_admin,
    patch_me,
    register,
    signed_in,
)
from tests.support.env import database
from tests.support.jobs import jobs_idle
from tests.support.mail import Inbox, text_of
from tests.support.problems import PROBLEM, places

NEW = "sam.smith@example.org"


async def login_status(http: Any, email: str) -> int:
    answer = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return int(answer.status)


async def verified_student(http: Any, inbox: Inbox) -> dict[str, Any]:
    await register(http)
    confirmed = await http.post(
        "/api/v1/auth/verify/confirm", json={"token": await link_token(inbox)}
    )
    assert confirmed.status == 200
    return await signed_in(http)


async def test_name_at_once_address_after_confirming(http: Any, inbox: Inbox) -> None:
    session = await verified_student(http, inbox)
    answer = await patch_me(http, session, {"full_name": "  Sam Smith ", "email": NEW,
                                            "current_password": PASSWORD})  # fmt: skip
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    profile = await answer.json()
    assert (profile["full_name"], profile["email"]) == ("Sam Smith", STUDENT["email"])
    assert profile["pending_email"] == NEW
    assert profile["email_verified_at"] is not None

    messages = await inbox.wait_for(2)
    assert messages[1]["To"] == NEW
    assert STUDENT["email"] in text_of(messages[1])  # says which address it replaces
    assert await login_status(http, STUDENT["email"]) == 200  # nothing moved yet
    token = await link_token(inbox, 2)
    preview = await http.get("/api/v1/auth/verify/confirm", params={"token": token})
    assert (await preview.json())["email"] == NEW

    confirmed = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert confirmed.status == 200
    assert (await confirmed.json())["email"] == NEW
    notice = (await inbox.wait_for(3))[2]
    assert notice["To"] == STUDENT["email"]
    assert NEW in text_of(notice)
    assert "changed" in notice["Subject"]
    me = await (await http.get("/api/v1/users/me", headers=bearer(session))).json()
    assert me["email"] == NEW
    assert await login_status(http, NEW) == 200
    assert await login_status(http, STUDENT["email"]) == 401
    again = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert again.status == 400


async def test_a_mistyped_address_can_be_fixed_before_verifying(http: Any, inbox: Inbox) -> None:
    await register(http, {**STUDENT, "email": "sam@exmaple.org"})
    first = await link_token(inbox)
    session = await http.post("/api/v1/auth/login", json={"email": "sam@exmaple.org",
                                                          "password": PASSWORD})  # fmt: skip
    fixed = await patch_me(http, await session.json(), {"email": STUDENT["email"],
                                                        "current_password": PASSWORD})  # fmt: skip
    assert fixed.status == 200  # allowed while unverified
    token = await link_token(inbox, 2)
    stale = await http.post("/api/v1/auth/verify/confirm", json={"token": first})
    assert stale.status == 400  # one live link per account: the newest
    confirmed = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert confirmed.status == 200
    assert await login_status(http, STUDENT["email"]) == 200


async def test_changing_the_address_needs_the_password_and_a_free_address(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    session = await verified_student(http, inbox)
    missing = await patch_me(http, session, {"email": NEW})
    assert missing.status == 422
    assert places(await missing.json(content_type=PROBLEM)) == ["#/current_password"]
    wrong = await patch_me(http, session, {"email": NEW, "current_password": "not it at all"})
    assert wrong.status == 400
    assert (await wrong.json(content_type=PROBLEM))["code"] == "wrong_password"
    taken = await patch_me(http, session, {"email": "ADA@example.org",
                                           "current_password": PASSWORD})  # fmt: skip
    assert taken.status == 409
    assert (await taken.json(content_type=PROBLEM))["code"] == "email_taken"
    same = await patch_me(http, session, {"email": "SAM@example.org"})  # no change: no password
    assert same.status == 200
    assert (await same.json())["pending_email"] is None
    await jobs_idle(http.app)  # anything the requests queued has run
    assert len(inbox.messages) == 1  # only the registration mail


async def test_an_address_taken_before_confirming_is_409_and_nothing_changes(
    http: Any, inbox: Inbox, mail_settings: Settings
) -> None:
    session = await verified_student(http, inbox)
    asked = await patch_me(http, session, {"email": NEW, "current_password": PASSWORD})
    assert asked.status == 200
    token = await link_token(inbox, 2)
    assert (await register(http, {**STUDENT, "email": NEW.upper()})).status == 201
    taken = await http.post("/api/v1/auth/verify/confirm", json={"token": token})
    assert taken.status == 409
    assert (await taken.json(content_type=PROBLEM))["code"] == "email_taken"
    with psycopg.connect(database(mail_settings)) as conn:
        row = conn.execute("SELECT count(*) FROM users WHERE lower(email) = %s", (NEW,)).fetchone()
    assert row == (1,)  # only the other account
    assert await login_status(http, STUDENT["email"]) == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"full_name": ""},
        {"full_name": "x" * 201},
        {"full_name": 7},
        {"full_name": "Sam\u200bSmith"},
        {"email": 123},
        {"email": "not an address", "current_password": PASSWORD},
        {"email": NEW, "current_password": "x" * 10_000},
        {"role": "admin"},
        [1, 2],
    ],
)
async def test_bad_changes_are_422(http: Any, inbox: Inbox, body: Any) -> None:
    session = await verified_student(http, inbox)
    answer = await patch_me(http, session, body)
    assert answer.status == 422, await answer.text()
    assert (await answer.json(content_type=PROBLEM))["code"] == "validation_failed"
    me = await (await http.get("/api/v1/users/me", headers=bearer(session))).json()
    assert (me["full_name"], me["role"]) == (STUDENT["full_name"], "student")


async def test_unicode_names_and_concurrent_changes(http: Any, inbox: Inbox) -> None:
    session = await verified_student(http, inbox)
    names = ["Zoë Ł. 山田", "Siân O'Brien", "Ana-María Núñez", "Дмитрий"]
    answers = await asyncio.gather(*(patch_me(http, session, {"full_name": n}) for n in names))
    assert [a.status for a in answers] == [200] * len(names)
    me = await (await http.get("/api/v1/users/me", headers=bearer(session))).json()
    assert me["full_name"] in names
    assert (await http.patch("/api/v1/users/me", json={"full_name": "x"})).status == 401
