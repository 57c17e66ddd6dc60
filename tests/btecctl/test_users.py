"""Accounts from the CLI: the first admin, listing, deactivating, and setting passwords."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from server.config.settings import Settings
from server.platform.passwords import Passwords
from tests.support.accounts import CHEAP_ENV, PASSWORD
from tests.support.env import cli_env, closed_port


def env(settings: Settings, **extra: str) -> dict[str, str]:
    return cli_env(settings, **CHEAP_ENV, **extra)


def create(cli: Callable[..., Any], settings: Settings, email: str, password: str = PASSWORD,
           name: str = "Ada Admin") -> Any:  # fmt: skip
    return cli("users", "create-admin", email, "--name", name, "--password-stdin", "--json",
               env=env(settings), input=password + "\n")  # fmt: skip


def row(settings: Settings, email: str) -> dict[str, Any]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        cur = conn.execute("SELECT * FROM users WHERE lower(email) = lower(%s)", (email,))
        names = [d.name for d in cur.description or []]
        found = cur.fetchone()
        assert found is not None
        return dict(zip(names, found, strict=True))


def test_create_admin_from_stdin(cli: Callable[..., Any], settings: Settings) -> None:
    result = create(cli, settings, "Ada@College.Example.AC.UK", name="  Ada Lovelace ")
    assert result.exit_code == 0, result.output
    user = json.loads(result.stdout)["user"]
    assert user["email"] == "Ada@college.example.ac.uk"  # the domain in its lower-case form
    assert (user["role"], user["full_name"], user["is_active"]) == ("admin", "Ada Lovelace", True)
    assert user["email_verified_at"]
    assert "password" not in result.stdout
    assert PASSWORD not in result.output
    stored = row(settings, "ada@college.example.ac.uk")
    assert stored["password_hash"].startswith("$argon2id$")
    assert stored["token_version"] == 0


def test_create_admin_prompts_twice(cli: Callable[..., Any], settings: Settings) -> None:
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    result = cli("users", "create-admin", "b@example.org", "--name", "B", env=env(settings),
                 input=typed)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    mismatch = cli("users", "create-admin", "c@example.org", "--name", "C", env=env(settings),
                   input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert mismatch.exit_code == 0, mismatch.output  # asked again after a mismatch


def test_an_email_is_taken_in_any_case(cli: Callable[..., Any], settings: Settings) -> None:
    assert create(cli, settings, "dup@example.org").exit_code == 0
    again = create(cli, settings, "DUP@example.org")
    assert again.exit_code == 1
    report = json.loads(again.stdout)
    assert report["problem"] == "email_taken"


@pytest.mark.parametrize(
    ("email", "password", "name", "fragment"),
    [
        ("not-an-email", PASSWORD, "X", "email"),
        ("dé@example.org", PASSWORD, "X", "email"),
        ("a@example.org", "short", "X", "password"),
        ("a@example.org", "x" * 10_000, "X", "password"),
        ("a@example.org", "", "X", "password"),
        ("a@example.org", PASSWORD, "", "full_name"),
        ("a@example.org", PASSWORD, "Bell\x07", "full_name"),
        ("a@example.org", PASSWORD, "n" * 201, "full_name"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_made(
    cli: Callable[..., Any], settings: Settings, email: str, password: str, name: str,
    fragment: str,
) -> None:  # fmt: skip
    result = create(cli, settings, email, password=password, name=name)
    assert result.exit_code == 2, result.output
    assert fragment in json.loads(result.stdout)["error"]
    assert "Traceback" not in result.output
    listed = json.loads(cli("users", "list", "--json", env=env(settings)).stdout)
    assert listed["total"] == 0


def test_unicode_names_and_passwords(cli: Callable[..., Any], settings: Settings) -> None:
    result = create(cli, settings, "zoe@example.org", password="пароль-密码-🔑-ok",
                    name="Zoë Ŧhe 日本")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["user"]["full_name"] == "Zoë Ŧhe 日本"


def test_list_filters(cli: Callable[..., Any], settings: Settings) -> None:
    for email in ("a@example.org", "b@example.org"):
        create(cli, settings, email)
    cli("users", "deactivate", "b@example.org", "--yes", "--json", env=env(settings))
    active = json.loads(cli("users", "list", "--active", "--json", env=env(settings)).stdout)
    assert [u["email"] for u in active["users"]] == ["a@example.org"]
    inactive = json.loads(cli("users", "list", "--inactive", "--json", env=env(settings)).stdout)
    assert [u["email"] for u in inactive["users"]] == ["b@example.org"]
    admins = json.loads(cli("users", "list", "--role", "admin", "--json", env=env(settings)).stdout)
    assert admins["total"] == 2
    assert all("password_hash" not in u for u in admins["users"])
    assert cli("users", "list", "--role", "king", env=env(settings)).exit_code == 2
    table = cli("users", "list", env=env(settings))
    assert "a@example.org" in table.stdout


def test_deactivate_asks_and_ends_sessions(cli: Callable[..., Any], settings: Settings) -> None:
    create(cli, settings, "gone@example.org")
    refused = cli("users", "deactivate", "gone@example.org", "--json", env=env(settings))
    assert refused.exit_code == 2
    declined = cli("users", "deactivate", "gone@example.org", env=env(settings), input="n\n")
    assert declined.exit_code == 2
    assert row(settings, "gone@example.org")["is_active"] is True
    done = cli("users", "deactivate", "GONE@example.org", env=env(settings), input="y\n")
    assert done.exit_code == 0, done.output
    stored = row(settings, "gone@example.org")
    assert (stored["is_active"], stored["token_version"]) == (False, 1)
    unknown = cli("users", "deactivate", "who@example.org", "--yes", "--json", env=env(settings))
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["problem"] == "not_found"


def test_set_password(cli: Callable[..., Any], settings: Settings) -> None:
    create(cli, settings, "p@example.org")
    before = row(settings, "p@example.org")
    new = "a brand new passphrase"
    result = cli("users", "set-password", "p@example.org", "--password-stdin", "--json",
                 env=env(settings), input=new + "\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    after = row(settings, "p@example.org")
    assert after["password_hash"] != before["password_hash"]
    assert after["token_version"] == before["token_version"] + 1
    passwords = Passwords(settings.model_copy(update={"argon2_time_cost": 1,
                          "argon2_memory_kib": 8192, "argon2_parallelism": 1}))  # fmt: skip
    try:
        assert asyncio.run(passwords.verify(after["password_hash"], new))
        assert not asyncio.run(passwords.verify(after["password_hash"], PASSWORD))
    finally:
        passwords.close()
    short = cli("users", "set-password", "p@example.org", "--password-stdin", "--json",
                env=env(settings), input="tiny\n")  # fmt: skip
    assert short.exit_code == 2
    report = json.loads(short.stdout)
    assert report["error"].startswith("password: "), report  # `field: message`, for people
    assert [(e["field"], e["code"]) for e in report["errors"]] == [("password", "invalid")]
    assert row(settings, "p@example.org")["password_hash"] == after["password_hash"]


def test_database_down_is_clean(cli: Callable[..., Any], settings: Settings) -> None:
    down = env(settings, BTEC_DATABASE_URL=f"postgresql://u:hunter2@127.0.0.1:{closed_port()}/x")
    for args in (("list",), ("deactivate", "a@example.org", "--yes")):
        result = cli("users", *args, "--json", env=down)
        assert result.exit_code == 3, args  # unreachable, as documented
        assert "hunter2" not in result.output
        assert "Traceback" not in result.output
    made = cli("users", "create-admin", "a@example.org", "--name", "A", "--password-stdin",
               "--json", env=down, input=PASSWORD + "\n")  # fmt: skip
    assert made.exit_code == 3
    assert PASSWORD not in made.output
