"""Password reset by mail and password change, end to end over HTTP with mail read from a
real aiosmtpd server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from server.config.settings import Settings
from server.services import notices
from tests.support.accounts import PASSWORD, acli_input, bearer, login, make_admin, reset_token
from tests.support.jobs import jobs_idle, wait_job
from tests.support.mail import Inbox, text_of
from tests.support.problems import PROBLEM

NEW = "a brand new long passphrase"
RESET = "/api/v1/auth/password/reset"
CHANGE = "/api/v1/auth/password/change"


async def test_forgot_then_reset_ends_every_session(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    old = await (await login(http, "ada@example.org")).json()
    token = await reset_token(http, inbox, "ada@example.org")
    message = inbox.messages[-1]
    assert message["To"] == "ada@example.org"
    assert mail_settings.links_base + "/reset-password?token=" in text_of(message)

    done = await http.post("/api/v1/auth/password/reset", json={"token": token, "password": NEW})
    assert done.status == 200
    assert done.headers["Cache-Control"] == "no-store"
    assert (await http.get("/api/v1/users/me", headers=bearer(old))).status == 401
    refreshed = await http.post(
        "/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}
    )
    assert refreshed.status == 401
    assert (await login(http, "ada@example.org")).status == 401
    assert (await login(http, "ada@example.org", NEW)).status == 200

    again = await http.post("/api/v1/auth/password/reset", json={"token": token, "password": NEW})
    assert again.status == 400
    assert (await again.json(content_type=PROBLEM))["code"] == "invalid_reset_token"
    notices = await inbox.wait_for(2)
    assert "was changed" in str(notices[-1]["Subject"])
    assert NEW not in text_of(notices[-1])


async def test_forgot_answers_the_same_for_unknown_addresses(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    window = notices.cooldown()  # the jobs' keys carry it (a 2-minute window)
    known = await http.post("/api/v1/auth/password/forgot", json={"email": "ada@example.org"})
    unknown = await http.post("/api/v1/auth/password/forgot", json={"email": "no@example.org"})
    assert (known.status, unknown.status) == (202, 202)
    assert await known.read() == await unknown.read()
    await inbox.wait_for(1)
    await jobs_idle(http.app)  # the unknown address's job has run too
    assert [m["To"] for m in inbox.messages] == ["ada@example.org"]
    # Nor do the jobs tell: their keys follow from the address, and an operator route that
    # showed "sent" for one and not the other would be an account oracle.
    shown = []
    for address in ("ada@example.org", "no@example.org"):
        key = f"password-reset:{notices.address_key(address)}:{window}"
        job = await wait_job(http, key, {"complete"})
        shown.append((job["status"], job["result"]))
    assert shown == [("complete", {}), ("complete", {})]


async def test_forgot_has_a_cooldown_per_address(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    for _ in range(3):
        answer = await http.post("/api/v1/auth/password/forgot", json={"email": "ADA@example.org"})
        assert answer.status == 202
    await inbox.wait_for(1)
    await jobs_idle(http.app)  # whatever the repeats queued has run
    assert len(inbox.messages) == 1


async def test_expired_and_superseded_tokens_are_refused(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    await make_admin(acli, mail_settings, "bob@example.org")
    expired = await reset_token(http, inbox, "ada@example.org")
    assert mail_settings.database_url is not None
    with psycopg.connect(mail_settings.database_url.get_secret_value(), autocommit=True) as conn:
        conn.execute("UPDATE password_resets SET expires_at = now() - interval '1 minute'")
    answer = await http.post(
        "/api/v1/auth/password/reset", json={"token": expired, "password": NEW}
    )
    assert answer.status == 400

    before_change = await reset_token(http, inbox, "bob@example.org")
    changed = await acli_input(acli, mail_settings, ("users", "set-password", "bob@example.org",
                               "--password-stdin"), "set by the operator")  # fmt: skip
    assert changed.exit_code == 0
    stale = await http.post("/api/v1/auth/password/reset",
                            json={"token": before_change, "password": NEW})  # fmt: skip
    assert stale.status == 400
    assert (await login(http, "bob@example.org", "set by the operator")).status == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/password/forgot", {"email": "not an address"}),
        ("/api/v1/auth/password/forgot", {"email": 42}),
        ("/api/v1/auth/password/forgot", {}),
        ("/api/v1/auth/password/reset", {"token": "t", "password": "short"}),
        ("/api/v1/auth/password/reset", {"token": "t", "password": "x" * 10_000}),
        ("/api/v1/auth/password/reset", {"token": 7, "password": NEW}),
        ("/api/v1/auth/password/reset", {"password": NEW}),
    ],
)
async def test_bad_input_is_422(http: Any, path: str, body: dict[str, Any]) -> None:
    answer = await http.post(path, json=body)
    assert answer.status == 422, await answer.text()
    assert (await answer.json(content_type=PROBLEM))["code"] == "validation_failed"


async def test_an_unknown_token_is_400(http: Any) -> None:
    answer = await http.post("/api/v1/auth/password/reset", json={"token": "nope", "password": NEW})
    assert answer.status == 400
    assert (await answer.json(content_type=PROBLEM))["code"] == "invalid_reset_token"


async def test_change_password(
    http: Any, inbox: Inbox, acli: Callable[..., Any], mail_settings: Settings
) -> None:
    await make_admin(acli, mail_settings, "ada@example.org")
    here = await (await login(http, "ada@example.org")).json()
    there = await (await login(http, "ada@example.org")).json()
    wrong = await http.post(CHANGE, headers=bearer(here),
                            json={"current_password": "not it", "new_password": NEW})  # fmt: skip
    assert wrong.status == 400
    assert (await wrong.json(content_type=PROBLEM))["code"] == "wrong_password"
    tiny = {"current_password": PASSWORD, "new_password": "tiny"}
    short = await http.post(CHANGE, headers=bearer(here), json=tiny)
    assert short.status == 422
    done = await http.post(CHANGE, headers=bearer(here),
                           json={"current_password": PASSWORD, "new_password": NEW})  # fmt: skip
    assert done.status == 200
    fresh = await done.json()
    assert (await http.get("/api/v1/users/me", headers=bearer(fresh))).status == 200
    for old in (here, there):
        assert (await http.get("/api/v1/users/me", headers=bearer(old))).status == 401
    assert (await login(http, "ada@example.org", NEW)).status == 200
    notices = await inbox.wait_for(1)
    assert "was changed" in str(notices[-1]["Subject"])
    body = {"current_password": NEW, "new_password": PASSWORD}
    unauthenticated = await http.post(CHANGE, json=body)
    assert unauthenticated.status == 401
