"""The mailed links, followed in a real headless Chromium with no front end configured: the
verification link and the reset link from the mail, on btec's own pages, fill in, submit, and
the account is verified or its password changed; a used link shows the API's problem."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from tests.support.accounts import CHEAP, STUDENT, login, register
from tests.support.browser import AsyncBrowser, async_chromium
from tests.support.env import free_port
from tests.support.mail import Inbox, text_of
from tests.support.wait import eventually

NEW = "a brand new long passphrase"
CLICK = "document.querySelector('#form button').click(); return true"
OUTCOME = "return document.getElementById('outcome').textContent"
PROBLEMS = "return [...document.querySelectorAll('#problems li')].map(li => li.textContent)"
FILL = """
const form = document.getElementById('form');
form.password.value = arguments[0];
form.again.value = arguments[1];
form.querySelector('button').click();
return true
"""


def link(message: Any) -> str:
    found = re.search(r"http://\S+", text_of(message))
    assert found is not None
    return found.group(0)


async def outcome(browser: AsyncBrowser) -> str:
    """What the page says once it has heard from the API."""
    said: str = await eventually(lambda: browser.run(OUTCOME), bool, timeout=20,
                                 message="the page shows the outcome")  # fmt: skip
    return said


async def test_following_the_mailed_links_in_a_browser(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings], inbox: Inbox
) -> None:
    port = free_port()
    settings = make_settings(**CHEAP, smtp_url=SecretStr(inbox.url),
                             public_url=f"http://127.0.0.1:{port}")  # fmt: skip
    server = await aiohttp_server(create_app(settings, worker=True), port=port)
    client_base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession(client_base) as http, async_chromium() as browser:
        assert (await register(http)).status == 201
        verify = link((await inbox.wait_for(1))[0])
        assert verify.startswith(client_base + "/verify-email?token=")
        await browser.open(verify)
        await browser.run(CLICK)
        assert "confirmed" in await outcome(browser)
        session = await (await login(http, STUDENT["email"])).json()
        me = await http.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert (await me.json())["email_verified_at"] is not None

        await browser.open(verify)  # the same link again: the API's problem, shown as it says
        await browser.run(CLICK)
        assert "not valid" in await outcome(browser)

        asked = await http.post("/api/v1/auth/password/forgot", json={"email": STUDENT["email"]})
        assert asked.status == 202
        reset = link((await inbox.wait_for(2))[1])
        assert reset.startswith(client_base + "/reset-password?token=")
        await browser.open(reset)
        await browser.run(FILL, NEW, NEW + " typo")
        assert "differ" in await outcome(browser)
        # past the browser's own minlength check: the API's field errors are listed
        await browser.run("document.getElementById('form').noValidate = true; return true")
        await browser.run(FILL, "short", "short")
        said = await eventually(lambda: browser.run(PROBLEMS), bool, timeout=20,
                                message="the field errors are listed")  # fmt: skip
        assert any("8" in item for item in said), said
        await browser.run(FILL, NEW, NEW)
        await eventually(lambda: browser.run(OUTCOME), lambda text: "changed" in text,
                         timeout=20, message="the password is changed")  # fmt: skip
        assert (await login(http, STUDENT["email"], NEW)).status == 200
        assert (await login(http, STUDENT["email"])).status == 401
