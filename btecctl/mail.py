"""btecctl mail: read what the embedded mail catcher received (development)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from btecctl.output import JsonOpt, emit_json, err_console, fail, out_console, settings_of

app = typer.Typer(no_args_is_help=True, help="Messages the embedded mail catcher received.")


def _messages(ctx: typer.Context) -> list[Any]:
    from server.platform.mail import caught, maildir_path

    return caught(maildir_path(settings_of(ctx)))


@app.command("list")
def list_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Newest N messages.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The newest messages: id, date, from, to, subject."""
    found = _messages(ctx)[-limit:]
    if as_json:
        emit_json({"messages": [m.summary() for m in reversed(found)]})
        return
    table = Table(title="caught mail (newest first)", title_justify="left")
    for col in ("id", "date", "to", "subject"):
        table.add_column(col, overflow="fold")
    for m in reversed(found):
        table.add_row(m.id, str(m.date), str(m.to), str(m.subject))
    out_console.print(table)
    if not found:
        err_console.print("no mail caught yet (with BTEC_SMTP_URL set, mail goes to that server)")


@app.command("show")
def show(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(help="The id `btecctl mail list` shows.")],
    html: Annotated[bool, typer.Option(help="Print the HTML part instead of the text.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One message: headers and its text (or HTML) part."""
    found = next((m for m in _messages(ctx) if m.id == message_id), None)
    if found is None:
        fail(f"no message {message_id}", as_json=as_json)
    msg = found.message
    text = msg.get_body(preferencelist=("plain",))
    page = msg.get_body(preferencelist=("html",))
    body = {
        **found.summary(),
        "headers": {k: str(v) for k, v in msg.items()},
        "text": text.get_content() if text is not None else None,
        "html": page.get_content() if page is not None else None,
    }
    if as_json:
        emit_json(body)
        return
    for key in ("Date", "From", "To", "Subject", "Message-ID", "X-Request-ID"):
        if msg[key]:
            out_console.print(f"[bold]{key}:[/] {msg[key]}", highlight=False)
    out_console.print()
    out_console.print(body["html"] if html else body["text"], highlight=False, markup=False)
