"""No password, token or Authorization header reaches a log line: the whole accounts flow runs
through HTTP and the in-process worker (real mail to aiosmtpd) with every logger at DEBUG, and
the captured output is searched for each secret the flow used."""

from __future__ import annotations

import io
import json
from typing import Any

from tests.support.accounts import (
    PASSWORD,
    STUDENT,
    bearer,
    link_token,
    patch_me,
    register,
    reset_token,
)
from tests.support.mail import Inbox

NEW_EMAIL = "sam.smith@example.org"
NEW_PASSWORD = "a second long passphrase ✓"
FINAL_PASSWORD = "the third passphrase, after a reset"
WRONG_PASSWORD = "wrong guess 12345"


async def test_the_accounts_flow_logs_no_secret(
    mail_http: Any, inbox: Inbox, logs: io.StringIO
) -> None:
    secrets = {"password": PASSWORD, "new password": NEW_PASSWORD,
               "reset password": FINAL_PASSWORD, "wrong password": WRONG_PASSWORD}  # fmt: skip

    async def post(path: str, body: dict[str, Any], session: Any = None) -> Any:
        headers = bearer(session) if session else {}
        return await mail_http.post(f"/api/v1/auth/{path}", json=body, headers=headers)

    assert (await register(mail_http)).status == 201
    secrets["verify token"] = await link_token(inbox)
    assert (await post("verify/confirm", {"token": secrets["verify token"]})).status == 200
    email = STUDENT["email"]
    assert (await post("login", {"email": email, "password": WRONG_PASSWORD})).status == 401
    session = await (await post("login", {"email": email, "password": PASSWORD})).json()
    refreshed = await (await post("refresh", {"refresh_token": session["refresh_token"]})).json()
    assert (await mail_http.get("/api/v1/users/me", headers=bearer(refreshed))).status == 200
    forged = refreshed["access_token"][:-6] + "AAAAAA"
    forged_session = {"access_token": forged}
    assert (await mail_http.get("/api/v1/users/me", headers=bearer(forged_session))).status == 401

    asked = await patch_me(mail_http, refreshed, {"email": NEW_EMAIL, "current_password": PASSWORD})
    assert asked.status == 200
    secrets["change token"] = await link_token(inbox, 2)
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = await post("password/change", change, refreshed)
    assert changed.status == 200
    third = await changed.json()
    await inbox.wait_for(3)  # the password-changed notice

    secrets["reset token"] = await reset_token(mail_http, inbox, email)
    reset = {"token": secrets["reset token"], "password": FINAL_PASSWORD}
    assert (await post("password/reset", reset)).status == 200
    assert (await post("password/reset", reset)).status == 400  # used
    assert (await post("logout", {"refresh_token": third["refresh_token"]}, third)).status == 401
    await inbox.wait_for(5)  # and the second notice
    for number, pair in enumerate((session, refreshed, third, forged_session)):
        for kind, value in pair.items():
            if kind.endswith("_token"):
                secrets[f"{kind} {number}"] = value

    output = logs.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert any(line.get("event") == "request" for line in lines)  # the flow was logged
    leaked = {name for name, value in secrets.items() if value in output}
    assert not leaked, f"in the logs: {sorted(leaked)}"
    assert "Bearer " not in output
    assert "token=" not in output  # no link, not even quoted-printable pieces of one
    for name in ("verify token", "change token", "reset token"):
        assert secrets[name][:12] not in output, name
