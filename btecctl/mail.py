"""btecctl mail: read what the embedded mail catcher received (development)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from btecctl.context import Session, session
from btecctl.output import JsonOpt, err_console, noun, out_console, report

if TYPE_CHECKING:
    from email.message import EmailMessage

    from server.platform.mail import CaughtMessage

app = noun("Messages the embedded mail catcher received.")
HEADERS = ("Date", "From", "To", "Subject", "Message-ID", "X-Request-ID")
LimitOpt = Annotated[int, typer.Option(min=1, metavar="N", help="Newest N messages.")]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="The id `btecctl mail list` shows.")]
HtmlOpt = Annotated[bool, typer.Option("--html", help="Print the HTML part instead of the text.")]


def _messages(s: Session) -> list[CaughtMessage]:
    from server.platform.mail import caught, maildir_path

    return caught(maildir_path(s.settings))


@app.command("list")
def list_command(ctx: typer.Context, limit: LimitOpt = 20, as_json: JsonOpt = False) -> None:
    """The newest messages: id, date, from, to, subject."""
    with session(ctx, as_json) as s:
        found = _messages(s)[-limit:][::-1]
    report(as_json, {"messages": [m.summary() for m in found]}, lambda: _print_list(found))


def _print_list(found: list[CaughtMessage]) -> None:
    table = Table(title="caught mail (newest first)", title_justify="left")
    table.add_column("id", no_wrap=True)  # an id is for copying: one piece, never folded
    for col in ("date", "to", "subject"):
        table.add_column(col, overflow="fold")
    for m in found:
        table.add_row(m.id, str(m.date), str(m.to), str(m.subject))
    out_console.print(table)
    if not found:
        err_console.print("no mail caught yet (with BTEC_SMTP_URL set, mail goes to that server)")


@app.command("show")
def show(
    ctx: typer.Context, message_id: IdArg, html: HtmlOpt = False, as_json: JsonOpt = False
) -> None:
    """One message: headers and its text (or HTML) part."""
    with session(ctx, as_json) as s:
        found = next((m for m in _messages(s) if m.id == message_id), None)
        if found is None:
            raise LookupError(f"no message {message_id}")
    msg = found.message
    text, page = msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))
    body = {**found.summary(), "headers": {k: str(v) for k, v in msg.items()},
            "text": text.get_content() if text is not None else None,
            "html": page.get_content() if page is not None else None}  # fmt: skip
    report(as_json, body, lambda: _print_message(msg, body["html"] if html else body["text"]))


def _print_message(msg: EmailMessage, part: str | None) -> None:
    """Headers, then the body as it is: links and tokens must survive a copy, so no line is
    broken for the terminal's width (or a pipe's 80 columns)."""
    for key in (k for k in HEADERS if msg[k]):
        out_console.print(Text.assemble((f"{key}:", "bold"), f" {msg[key]}"), soft_wrap=True)
    sys.stdout.write("\n" + (part or ""))
