"""btecctl users: the first admin, listing accounts, deactivating one, setting a password,
and clearing an address's failed sign-ins."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from btecctl.output import (
    FAILED,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
    settings_of,
)
from server.config.settings import Settings
from server.platform.embedded import EmbeddedError, embedded_services

T = TypeVar("T")
app = typer.Typer(no_args_is_help=True, help="Accounts: create the first admin, list, "
                  "deactivate, set a password, clear failed sign-ins.")  # fmt: skip
EmailArg = Annotated[str, typer.Argument(help="The account's email address.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from stdin instead of a prompt."),
]
Work = Callable[[Settings, Callable[[], Any]], Coroutine[Any, Any, T]]


def _email(value: str, as_json: bool) -> str:
    from marshmallow import ValidationError

    from server.domain.fields import MailAddress

    try:
        return str(MailAddress().deserialize(value.strip()))
    except ValidationError as exc:
        fail(f"not a usable email address: {' '.join(exc.messages)}", code=USAGE,
             as_json=as_json)  # fmt: skip


def _password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or asked twice without echo."""
    if from_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


def _run(ctx: typer.Context, as_json: bool, work: Work[T]) -> T:
    """Run `work(settings, connect)` against the database, turning failures into exits."""
    import asyncpg

    from server.domain.errors import DomainError, ValidationFailed
    from server.platform.postgres import connect_once

    try:
        with embedded_services(settings_of(ctx), redis=False) as resolved:
            assert resolved.database_url is not None
            url = resolved.database_url.get_secret_value()
            return asyncio.run(work(resolved, lambda: connect_once(url)))
    except EmbeddedError as exc:
        fail(f"embedded PostgreSQL: {exc}", as_json=as_json)
    except ValidationFailed as exc:
        fail(_fields(exc.errors or {}), code=USAGE, as_json=as_json, errors=exc.errors)
    except DomainError as exc:
        fail(exc.detail, code=FAILED, as_json=as_json, problem=exc.code)
    except asyncpg.UndefinedTableError:
        fail("the users table is missing: run btecctl db migrate first", as_json=as_json)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        fail(f"database error: {type(exc).__name__}", as_json=as_json)


def _fields(errors: dict[str, Any]) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, why))}" for field, why in errors.items())


def _show(user: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, "user": user})
    else:
        err_console.print(f"[green]{verb}[/] {user['email']} ({user['role']}, id {user['id']})")


@app.command("create-admin")
def create_admin(
    ctx: typer.Context,
    email: EmailArg,
    name: Annotated[str, typer.Option("--name", help="The admin's full name.")],
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an admin account, already verified (asks for the password twice, or reads it
    from stdin with --password-stdin). The way to make the first admin."""
    from server.platform.passwords import Passwords
    from server.services.users import create_user

    address = _email(email, as_json)
    password = _password(password_stdin)

    async def work(settings: Settings, connect: Callable[[], Any]) -> dict[str, Any]:
        passwords = Passwords(settings)
        try:
            return await create_user(db=connect, passwords=passwords, email=address,
                                     full_name=name, role="admin", password=password,
                                     verified=True)  # fmt: skip
        finally:
            passwords.close()

    _show(_run(ctx, as_json, work), "created", as_json)


@app.command("list")
def list_command(
    ctx: typer.Context,
    role: Annotated[
        str | None, typer.Option(help="Only this role: admin, assessor or student.")
    ] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only active or inactive ones.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Accounts in the order they were made, without password hashes."""
    from server.services.users import ROLES, list_users

    if role is not None and role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}", code=USAGE, as_json=as_json)

    async def work(settings: Settings, connect: Callable[[], Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page, total = await list_users(db=connect, role=role, active=active, limit=500,
                                           offset=len(found))  # fmt: skip
            found += page
            if len(found) >= total or not page:
                return found

    users = _run(ctx, as_json, work)
    if as_json:
        emit_json({"users": users, "total": len(users)})
        return
    from rich.table import Table

    table = Table(title=f"{len(users)} accounts", title_justify="left")
    for column in ("id", "email", "name", "role", "active", "verified"):
        table.add_column(column)
    for u in users:
        table.add_row(str(u["id"]), u["email"], u["full_name"], u["role"],
                      "yes" if u["is_active"] else "no",
                      "yes" if u["email_verified_at"] else "no")  # fmt: skip
    out_console.print(table)


@app.command("deactivate")
def deactivate_command(
    ctx: typer.Context,
    email: EmailArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop an account signing in and end every session it has (asks first unless --yes)."""
    from server.services.users import deactivate

    address = _email(email, as_json)
    if not yes:
        if as_json:
            fail("confirmation needed: pass --yes", code=USAGE, as_json=True)
        if not typer.confirm(f"Deactivate {address} and end its sessions?", err=True):
            raise typer.Exit(FAILED)

    async def work(settings: Settings, connect: Callable[[], Any]) -> dict[str, Any]:
        return await deactivate(db=connect, email=address)

    _show(_run(ctx, as_json, work), "deactivated", as_json)


@app.command("set-password")
def set_password_command(
    ctx: typer.Context,
    email: EmailArg,
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Set an account's password (asks twice, or reads stdin); its sessions end."""
    from server.platform.passwords import Passwords
    from server.services.users import set_password

    address = _email(email, as_json)
    password = _password(password_stdin)

    async def work(settings: Settings, connect: Callable[[], Any]) -> dict[str, Any]:
        passwords = Passwords(settings)
        try:
            return await set_password(db=connect, passwords=passwords, email=address,
                                      password=password)  # fmt: skip
        finally:
            passwords.close()

    _show(_run(ctx, as_json, work), "password set for", as_json)


@app.command("unthrottle")
def unthrottle_command(ctx: typer.Context, email: EmailArg, as_json: JsonOpt = False) -> None:
    """Forget an address's failed sign-ins, so its next attempt is not delayed (see
    BTEC_LOGIN_BACKOFF_*)."""
    from btecctl.cache import redis_client
    from server.ratelimit.loginguard import LoginGuard

    address = _email(email, as_json)
    key = LoginGuard.key(address)
    with redis_client(settings_of(ctx), as_json) as client:
        failures = int(client.hget(key, "fails") or 0)
        client.delete(key)
    if as_json:
        emit_json({"ok": True, "email": address, "failures_forgotten": failures})
    else:
        err_console.print(f"[green]forgot[/] {failures} failed sign-ins for {address}")
