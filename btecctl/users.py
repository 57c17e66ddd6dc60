"""btecctl users: the first admin, listing accounts, deactivating one, setting a password,
and clearing an address's failed sign-ins."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from btecctl.context import Session, session
from btecctl.output import (
    USAGE,
    JsonOpt,
    YesOpt,
    confirm,
    err_console,
    fail,
    noun,
    out_console,
    report,
)

app = noun("Accounts: create the first admin, list, deactivate, set a password, "
           "clear failed sign-ins.")  # fmt: skip
EmailArg = Annotated[str, typer.Argument(metavar="EMAIL", help="The account's email address.")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from stdin instead of a prompt."),
]
NameOpt = Annotated[str, typer.Option("--name", metavar="NAME", help="The admin's full name.")]
RoleOpt = Annotated[
    str | None, typer.Option(metavar="ROLE", help="Only this role: admin, assessor or student.")
]
ActiveOpt = Annotated[
    bool | None, typer.Option("--active/--inactive", help="Only active or inactive ones.")
]


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


def _show(user: dict[str, Any], verb: str, as_json: bool) -> None:
    said = f"[green]{verb}[/] {user['email']} ({user['role']}, id {user['id']})"
    report(as_json, {"ok": True, "user": user}, lambda: err_console.print(said))


@app.command("create-admin")
def create_admin(
    ctx: typer.Context, email: EmailArg, name: NameOpt, password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create an admin account, already verified (asks for the password twice, or reads it from
    stdin with --password-stdin). The way to make the first admin.

    Create an admin account, already verified: the way to make the first admin. Asks for the
    password twice without echo, or reads one line from stdin with `--password-stdin`; 8 to 128
    characters, hashed with argon2id. A taken email (in any case) exits 1 with `"problem":
    "email_taken"`; bad input exits 2."""
    from server.services.users import create_user

    address, password = _email(email, as_json), _password(password_stdin)
    with session(ctx, as_json, postgres=True) as s:
        made = s.run(create_user(db=s.db, passwords=s.passwords, email=address, full_name=name,
                                 role="admin", password=password, verified=True))  # fmt: skip
    _show(made, "created", as_json)


@app.command("list")
def list_command(
    ctx: typer.Context, role: RoleOpt = None, active: ActiveOpt = None, as_json: JsonOpt = False
) -> None:
    """Accounts in the order they were made, without password hashes."""
    from server.services.users import ROLES

    if role is not None and role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}", code=USAGE, as_json=as_json)
    with session(ctx, as_json, postgres=True) as s:
        users = s.run(_every(s, role, active))
    report(as_json, {"users": users, "total": len(users)}, lambda: _print_users(users))


def _print_users(users: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("id", "email", "name", "role", "active", "verified",
                  title=f"{len(users)} accounts", title_justify="left")  # fmt: skip
    for u in users:
        table.add_row(str(u["id"]), u["email"], u["full_name"], u["role"],
                      "yes" if u["is_active"] else "no",
                      "yes" if u["email_verified_at"] else "no")  # fmt: skip
    out_console.print(table)


async def _every(s: Session, role: str | None, active: bool | None) -> list[dict[str, Any]]:
    from server.services.users import list_users

    found: list[dict[str, Any]] = []
    while True:
        page, total = await list_users(db=s.db, role=role, active=active, limit=500,
                                       offset=len(found))  # fmt: skip
        found += page
        if len(found) >= total or not page:
            return found


@app.command("deactivate")
def deactivate_command(
    ctx: typer.Context, email: EmailArg, yes: YesOpt = False, as_json: JsonOpt = False
) -> None:
    """Stop an account signing in and end every session it has (asks first unless --yes)."""
    from server.services.users import deactivate

    address = _email(email, as_json)
    if not yes:
        confirm(f"Deactivate {address} and end its sessions?", as_json=as_json)
    with session(ctx, as_json, postgres=True) as s:
        _show(s.run(deactivate(db=s.db, email=address)), "deactivated", as_json)


@app.command("set-password")
def set_password_command(
    ctx: typer.Context, email: EmailArg, password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Set an account's password (asks twice, or reads stdin); its sessions end."""
    from server.services.users import set_password

    address, password = _email(email, as_json), _password(password_stdin)
    with session(ctx, as_json, postgres=True) as s:
        done = s.run(set_password(db=s.db, passwords=s.passwords, email=address,
                                  password=password))  # fmt: skip
    _show(done, "password set for", as_json)


@app.command("unthrottle")
def unthrottle_command(ctx: typer.Context, email: EmailArg, as_json: JsonOpt = False) -> None:
    """Forget an address's failed sign-ins from every client, so no attempt is delayed (see
    BTEC_LOGIN_BACKOFF_* and BTEC_LOGIN_ACCOUNT_CAP)."""
    from server.ratelimit.loginguard import LoginGuard

    address = _email(email, as_json)
    with session(ctx, as_json, redis=True) as s:
        failures = int(s.redis.hget(LoginGuard.key(address), "total") or 0)
        s.redis.delete(LoginGuard.key(address))
    said = f"[green]forgot[/] {failures} failed sign-ins for {address}"
    report(as_json, {"ok": True, "email": address, "failures_forgotten": failures},
           lambda: err_console.print(said))  # fmt: skip
