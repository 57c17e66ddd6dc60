"""btecctl health: the server's health document as a table or JSON, with exit codes; and the
reading of a running server that `db pool-stats` and `cache stats` share.

Exit codes: 0 pass, 0 warn (2 with --strict), 1 fail, 2 a bad --url, 3 unreachable.
"""

from __future__ import annotations

import functools
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table
from rich.text import Text

from btecctl.context import session
from btecctl.output import (
    FAILED,
    OK,
    UNREACHABLE,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
)
from server.config.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import Metric
    from pydantic import SecretStr
    from rich.console import RenderableType

WARN_STRICT = 2
STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}  # nosec B105 # health status colours
UrlOpt = Annotated[
    str | None,
    typer.Option(metavar="URL", help="Server base URL. Default: from BTEC_HOST/BTEC_PORT."),
]
WatchOpt = Annotated[
    float | None, typer.Option(min=0.5, metavar="N", help="Repeat every N seconds until Ctrl-C.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 2 on warn.")]
FreshOpt = Annotated[
    bool, typer.Option("--fresh", help="Ask for fresh checks, bypassing the cache.")
]
TimeoutOpt = Annotated[float, typer.Option(min=0.1, metavar="SECONDS", help="Request timeout.")]


def default_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104  # nosec B104 # compared, not bound: a wildcard host is reached via loopback
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def base_url(url: str, as_json: bool) -> str:
    """A server's base URL as given, or exit 2 if it is not an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and parts.hostname and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        usable = False
    if not usable:
        fail(f"--url {url!r}: need http(s)://HOST[:PORT]", code=USAGE, as_json=as_json)
    return url.rstrip("/")


def get(url: str, token: str | None, timeout: float, accept: str = "*/*") -> tuple[int, bytes]:
    """Status and body of a GET to a running server; ConnectionError when nobody answers."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310  # nosec B310 # callers pass base_url()/default_url(): http(s) only
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"no server answered at {url} ({reason})") from None


def scrape(base: str, token: SecretStr | None) -> list[Metric]:
    """The metric families of a running server's /metrics; LookupError if it refuses."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = get(base + "/metrics", token.get_secret_value() if token else None, 5)
    if status != 200:
        raise LookupError(f"{base}/metrics answered {status}")
    return list(text_string_to_metric_families(body.decode()))


@dataclass(frozen=True)
class Reading:
    """One look at /api/v1/health: its document, or why there was none."""

    url: str
    doc: dict[str, Any] | None
    error: str = ""

    def code(self, strict: bool) -> int:
        status = self.doc["status"] if self.doc else None
        if status == "warn":
            return WARN_STRICT if strict else OK
        return {"pass": OK, None: UNREACHABLE}.get(status, FAILED)

    def as_json(self) -> dict[str, Any]:
        return self.doc or {"status": "unreachable", "url": self.url, "error": self.error}

    def __rich__(self) -> RenderableType:
        if self.doc is None:
            return Text.assemble(("unreachable: ", "red"), self.error)
        return render(self.doc, self.url)


def read(url: str, token: str | None, timeout: float, fresh: bool) -> Reading:
    """GET /api/v1/health; a 503 still carries the document."""
    where = url + "/api/v1/health" + ("?fresh=true" if fresh else "")
    try:
        status, body = get(where, token, timeout, accept="application/health+json")
        doc = json.loads(body) if status in (200, 503) else None
    except (ConnectionError, ValueError) as exc:
        return Reading(url, None, str(exc))
    if not isinstance(doc, dict) or "status" not in doc:
        return Reading(url, None, f"{where} answered {status}, not a health document")
    return Reading(url, doc)


def render(doc: dict[str, Any], url: str) -> Table:
    status = str(doc.get("status"))
    title = f"btec health at {url}: [{STYLE.get(status, 'white')}]{status}[/]"
    if "uptime" in doc:
        title += f"  (release {doc.get('releaseId')}, up {doc['uptime']:.0f} s)"
    table = Table("check", "status", "observed", "output", title=title, title_justify="left")
    for key, entries in sorted(doc.get("checks", {}).items()):
        for e in entries:
            value = e.get("observedValue")
            observed = "" if value is None else f"{value} {e.get('observedUnit') or ''}".strip()
            st = str(e.get("status"))
            table.add_row(key, f"[{STYLE.get(st, 'white')}]{st}[/]", observed, e.get("output", ""))
    if not doc.get("checks"):
        table.add_row("(details hidden)", status, "", "set BTEC_HEALTH_TOKEN to see checks")
    return table


def health(
    ctx: typer.Context, url: UrlOpt = None, watch: WatchOpt = None, strict: StrictOpt = False,
    fresh: FreshOpt = False, timeout: TimeoutOpt = 5.0, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Show the server's health. Exit 0 pass or warn (2 with --strict), 1 fail, 3 unreachable."""
    with session(ctx, as_json) as s:
        base = base_url(url or default_url(s.settings), as_json)
        found = s.secret("health_token") or s.secret("ops_token")
        token = found.get_secret_value() if found else None
    look = functools.partial(read, base, token, timeout, fresh)
    last = _watch(look, watch, as_json) if watch else _show(look(), as_json)
    raise typer.Exit(last.code(strict))


def _show(reading: Reading, as_json: bool) -> Reading:
    if as_json:
        emit_json(reading.as_json())
    elif reading.doc is None:
        err_console.print(reading, highlight=False)
    else:
        out_console.print(reading)
    return reading


def _watch(look: Callable[[], Reading], every: float, as_json: bool) -> Reading:
    """Read every `every` seconds until Ctrl-C: one JSON line a round, or one table redrawn
    in place; the last reading decides the exit code."""
    from rich.live import Live

    # Ctrl-C ends the watch even where btecctl was started with SIGINT ignored (a background
    # job of a script, a test runner's worker), which Python would otherwise keep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reading = look()
    try:
        with _Lines() if as_json else Live(console=out_console, auto_refresh=False) as live:
            while True:
                live.update(reading, refresh=True)
                time.sleep(every)
                reading = look()
    except KeyboardInterrupt:
        return reading


class _Lines:
    """Live's interface for --json: each reading is one more JSON line."""

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, reading: Reading, refresh: bool = True) -> None:
        emit_json(reading.as_json())
