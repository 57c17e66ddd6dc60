"""Accounts as tests make and use them: an admin made with btecctl, signing in over HTTP,
bearer headers and refresh tokens, a student who registers, and the links mail brings
(verification, password reset)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from typer.testing import CliRunner

from btecctl.main import app as cli_app
from server.config.settings import Settings
from tests.support.env import cli_env
from tests.support.mail import Inbox, text_of

PASSWORD = "correct horse battery staple"
# Cheap hashing for tests; the parameters are settings like any other.
CHEAP = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
CHEAP_ENV = {"BTEC_ARGON2_TIME_COST": "1", "BTEC_ARGON2_MEMORY_KIB": "8192",
             "BTEC_ARGON2_PARALLELISM": "1"}  # fmt: skip
STUDENT = {"email": "sam@example.org", "full_name": "Sam Student", "password": PASSWORD}
VERIFY_LINK = re.compile(r"/(?:verify-email|confirm-email-change)\?token=([A-Za-z0-9_%\-]+)")
RESET_LINK = re.compile(r"/reset-password\?token=([A-Za-z0-9_%\-]+)")


async def acli_input(
    acli: Callable[..., Any], settings: Settings, args: tuple[str, ...], line: str
) -> Any:
    """btecctl with `line` on stdin (a password), from an async test: in a thread."""
    env = cli_env(settings, **CHEAP_ENV)
    return await asyncio.to_thread(
        CliRunner().invoke, cli_app, list(args), env=env, input=line + "\n", catch_exceptions=False
    )


async def make_admin(acli: Callable[..., Any], settings: Settings, email: str) -> None:
    result = await acli_input(acli, settings, ("users", "create-admin", email, "--name", "Ada",
                                               "--password-stdin", "--json"), PASSWORD)  # fmt: skip
    assert result.exit_code == 0, result.output


async def login(http: Any, email: str, password: str = PASSWORD) -> Any:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def signed_in(http: Any, email: str = STUDENT["email"]) -> dict[str, Any]:
    """The session (tokens) of a fresh sign-in; by default the student who registered."""
    answer = await login(http, email)
    assert answer.status == 200
    return dict(await answer.json())


async def session_of(http: Any, email: str) -> dict[str, str]:
    """The Authorization header of a fresh sign-in."""
    answer = await login(http, email)
    assert answer.status == 200, await answer.text()
    return bearer(await answer.json())


async def token_for(http: Any, email: str) -> str:
    answer = await login(http, email)
    assert answer.status == 200, await answer.text()
    return str((await answer.json())["access_token"])


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


async def use_refresh(http: Any, token: str) -> Any:
    return await http.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def register(http: Any, body: dict[str, Any] | None = None) -> Any:
    return await http.post("/api/v1/auth/register", json=body or STUDENT)


async def link_token(inbox: Inbox, count: int = 1) -> str:
    """The token of the verification link in the `count`-th message."""
    messages = await inbox.wait_for(count)
    assert len(messages) >= count, "no verification mail arrived"
    found = VERIFY_LINK.search(text_of(messages[count - 1]))
    assert found is not None
    return unquote(found.group(1))


async def reset_token(http: Any, inbox: Inbox, email: str) -> str:
    """Ask for a password reset for `email`; the token of the link mailed."""
    before = len(inbox.messages)
    answer = await http.post("/api/v1/auth/password/forgot", json={"email": email})
    assert answer.status == 202
    messages = await inbox.wait_for(before + 1)
    assert len(messages) == before + 1, "no reset mail arrived"
    found = RESET_LINK.search(text_of(messages[-1]))
    assert found is not None
    return unquote(found.group(1))


async def patch_me(http: Any, session: dict[str, Any], body: Any) -> Any:
    return await http.patch("/api/v1/users/me", headers=bearer(session), json=body)
