"""btecctl health: the server's health document as a table or JSON, with exit codes.

Exit codes: 0 pass, 0 warn (2 with --strict), 1 fail, 3 unreachable.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from btecctl.output import (
    FAILED,
    OK,
    UNREACHABLE,
    JsonOpt,
    emit_json,
    err_console,
    out_console,
    settings_of,
)
from server.config.settings import Settings

WARN_STRICT = 2
STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}


def default_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def fetch(base_url: str, token: str | None, timeout: float, fresh: bool) -> dict[str, Any]:
    """GET /api/v1/health; a 503 still carries the document."""
    import urllib.error
    import urllib.request

    url = base_url.rstrip("/") + "/api/v1/health" + ("?fresh=true" if fresh else "")
    if not url.startswith(("http://", "https://")):
        raise ValueError("--url must start with http:// or https://")
    req = urllib.request.Request(url, headers={"Accept": "application/health+json"})  # noqa: S310
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        body = exc.read()
    doc = json.loads(body)
    if not isinstance(doc, dict) or "status" not in doc:
        raise ValueError("the answer is not a health document")
    return doc


def exit_code(status: str, strict: bool) -> int:
    if status == "pass":
        return OK
    if status == "warn":
        return WARN_STRICT if strict else OK
    return FAILED


def render(doc: dict[str, Any], url: str) -> None:
    status = str(doc.get("status"))
    title = f"btec health at {url}: [{STYLE.get(status, 'white')}]{status}[/]"
    if "uptime" in doc:
        title += f"  (release {doc.get('releaseId')}, up {doc['uptime']:.0f} s)"
    table = Table(title=title, title_justify="left")
    for col in ("check", "status", "observed", "output"):
        table.add_column(col)
    for key, entries in sorted(doc.get("checks", {}).items()):
        for e in entries:
            value = e.get("observedValue")
            observed = "" if value is None else f"{value} {e.get('observedUnit') or ''}".strip()
            st = str(e.get("status"))
            table.add_row(key, f"[{STYLE.get(st, 'white')}]{st}[/]", observed, e.get("output", ""))
    if not doc.get("checks"):
        table.add_row("(details hidden)", status, "", "set BTEC_HEALTH_TOKEN to see checks")
    out_console.print(table)


def _once(url: str, token: str | None, timeout: float, fresh: bool, as_json: bool) -> str | None:
    """Print one reading; return its status, or None when unreachable."""
    import urllib.error

    try:
        doc = fetch(url, token, timeout, fresh)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if as_json:
            emit_json({"status": "unreachable", "url": url, "error": str(reason)})
        else:
            err_console.print(f"[red]unreachable:[/] {url} ({reason})", highlight=False)
        return None
    if as_json:
        emit_json(doc)
    else:
        render(doc, url)
    return str(doc["status"])


def health(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="Server base URL [default: from BTEC_HOST/BTEC_PORT].")
    ] = None,
    watch: Annotated[
        float | None, typer.Option(min=0.5, help="Repeat every N seconds until Ctrl-C.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 2 on warn.")] = False,
    fresh: Annotated[bool, typer.Option(help="Ask for fresh checks, bypassing the cache.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Request timeout in seconds.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Show the server's health. Exit 0 pass or warn (2 with --strict), 1 fail, 3 unreachable."""
    settings = settings_of(ctx)
    base = url or default_url(settings)
    token = settings.health_token.get_secret_value() if settings.health_token else None
    code = UNREACHABLE
    try:
        while True:
            seen = _once(base, token, timeout, fresh, as_json)
            code = UNREACHABLE if seen is None else exit_code(seen, strict)
            if watch is None:
                break
            time.sleep(watch)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(code)
