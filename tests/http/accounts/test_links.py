"""Where mailed links point: BTEC_FRONTEND_URL and its paths, else the API's own URL, which
follows the port `serve` listens on."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings, SettingsError, load_settings
from tests.support.accounts import CHEAP, STUDENT, register
from tests.support.env import free_port
from tests.support.mail import Inbox, text_of
from tests.support.processes import Served
from tests.support.wait import eventually_sync

FRONT = "https://app.college.example/btec"


@pytest.fixture
async def front(aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
                inbox: Inbox) -> Any:  # fmt: skip
    settings = make_settings(**CHEAP, smtp_url=SecretStr(inbox.url), frontend_url=FRONT,
                             frontend_verify_path="/account/verify",
                             frontend_reset_path="/account/password",
                             frontend_email_change_path="/account/new-address")  # fmt: skip
    return await aiohttp_client(create_app(settings, worker=True))


def links(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


async def test_mail_links_start_with_the_frontend_url_and_its_paths(
    front: Any, inbox: Inbox
) -> None:
    assert (await register(front)).status == 201
    verify = links(text_of((await inbox.wait_for(1))[0]))
    assert len(verify) == 1
    assert verify[0].startswith(FRONT + "/account/verify?token=")
    asked = await front.post("/api/v1/auth/password/forgot", json={"email": STUDENT["email"]})
    assert asked.status == 202
    reset = links(text_of((await inbox.wait_for(2))[1]))
    assert len(reset) == 1
    assert reset[0].startswith(FRONT + "/account/password?token=")


@pytest.mark.parametrize(
    ("name", "value"),
    [("BTEC_FRONTEND_URL", "app.college.example"), ("BTEC_FRONTEND_URL", "ftp://x"),
     ("BTEC_FRONTEND_VERIFY_PATH", "verify"), ("BTEC_FRONTEND_RESET_PATH", "/reset?x=1"),
     ("BTEC_PUBLIC_URL", "javascript:alert(1)")],
)  # fmt: skip
def test_bad_link_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("BTEC_ENV_FILE", "")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)


def test_links_follow_the_port_serve_listens_on(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """No BTEC_PUBLIC_URL and no front end: the link is the API's own, on the port given to
    `serve --port`, not a fixed 127.0.0.1:8080."""
    port = free_port()
    served = Served(tmp_path / "var", port)  # Served passes --port; BTEC_PORT stays unset
    served.wait_ready()
    try:
        env = {"BTEC_DATA_DIR": str(tmp_path / "var"), "BTEC_ENV_FILE": ""}
        body = json.dumps(STUDENT).encode()
        asked = urllib.request.Request(  # noqa: S310
            served.url + "/api/v1/auth/register", data=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(asked, timeout=10) as answer:  # noqa: S310
            assert answer.status == 201
        messages = eventually_sync(
            lambda: json.loads(cli("mail", "list", "--json", env=env).stdout)["messages"],
            timeout=60, interval=0.1, message="the verification mail is caught",
        )  # fmt: skip
        shown = json.loads(cli("mail", "show", messages[0]["id"], "--json", env=env).stdout)
    finally:
        assert served.stop() == 0
    assert f"http://127.0.0.1:{port}/verify-email?token=" in shown["text"]
