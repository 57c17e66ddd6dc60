"""Mail as a person reads it: a grade mail's long non-ASCII Subject arrives whole through real
SMTP into the catcher, `mail show` never breaks a link or token across lines, and `mail list`
keeps each id on one line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from server.platform.mail import MaildirHandler, Mailer, SmtpTarget
from server.services.mail import build

TITLES = [
    "a" * 34 + " Ünit Café Zoë Ærø trip",  # a fold fell between two encoded words here
    "Αρχιτεκτονική " * 6 + "x",
    "Plain ASCII title that is long enough to be folded somewhere in the middle of it",
]
LINK = "http://127.0.0.1:8080/submissions/42?token=" + "t0k3n" * 30


def grade_mail(title: str) -> Any:
    context = {"name": "Zoë", "title": title, "unit_code": "K/615/1544", "overall": "P",
               "grade_name": "Pass", "criteria": {"P1": True}, "feedback": "Well done.",
               "version": 1, "link": LINK, "service": "btec"}  # fmt: skip
    return build(template="grade-released", to="zoe@example.org", sender="btec <no@btec.test>",
                 context=context, request_id=None)  # fmt: skip


@pytest.fixture
async def caught(tmp_path: Path) -> dict[str, str]:
    """The grade mails, sent by the worker's Mailer through SMTP to the embedded catcher
    (aiosmtpd and its Maildir); yields the environment `btecctl mail` reads them with."""
    data_dir = tmp_path / "var"
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(MaildirHandler(data_dir / "mail"), hostname="localhost"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    mailer = Mailer(SmtpTarget.from_url(f"smtp://127.0.0.1:{port}?starttls=off", 5.0))
    try:
        for title in TITLES:
            await mailer.send(grade_mail(title))
    finally:
        server.close()
        await server.wait_closed()
    return {"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": ""}


async def test_a_long_subject_arrives_whole(
    caught: dict[str, str], acli: Callable[..., Any]
) -> None:
    listed = json.loads((await acli("mail", "list", "--json", env=caught)).stdout)
    subjects = sorted(m["subject"] for m in listed["messages"])
    assert subjects == sorted(f"Your work for K/615/1544 {t} has been graded" for t in TITLES)


async def test_show_never_breaks_a_link(caught: dict[str, str], acli: Callable[..., Any]) -> None:
    """Piped (as here) a console is 80 columns wide: the link and the Subject are longer."""
    listed = json.loads((await acli("mail", "list", "--json", env=caught)).stdout)
    for message in listed["messages"]:
        shown = await acli("mail", "show", message["id"], env=caught)
        assert shown.exit_code == 0, shown.output
        lines = shown.stdout.splitlines()
        assert f"See it at {LINK}" in lines
        assert f"Subject: {message['subject']}" in lines


async def test_list_keeps_ids_whole(caught: dict[str, str], acli: Callable[..., Any]) -> None:
    listed = json.loads((await acli("mail", "list", "--json", env=caught)).stdout)
    table = (await acli("mail", "list", env=caught)).stdout
    for message in listed["messages"]:
        assert message["id"] in table
