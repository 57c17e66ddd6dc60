"""btecctl sentry: check that error reports reach Sentry."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import typer

from btecctl.output import (
    CONFIG,
    FAILED,
    UNREACHABLE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    settings_of,
)
from server import __version__

app = typer.Typer(no_args_is_help=True, help="Error reporting: send a test event to Sentry.")
TIMEOUT_SECONDS = 10


@app.command("test")
def send_test(
    ctx: typer.Context,
    message: Annotated[
        str, typer.Option("--message", help="The test event's message.")
    ] = "btecctl sentry test",
    as_json: JsonOpt = False,
) -> None:
    """Send one test event to SENTRY_DSN (with this process's release and environment) and
    say whether Sentry accepted it: exit 0 if it did, 1 if it refused, 3 if unreachable."""
    import urllib.error
    import urllib.request

    from sentry_sdk.consts import EndpointType
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.utils import BadDsn, Dsn

    settings = settings_of(ctx)
    if settings.sentry_dsn is None:
        fail("SENTRY_DSN is not set: there is nowhere to send reports", code=CONFIG,
             as_json=as_json)  # fmt: skip
    try:
        dsn = Dsn(settings.sentry_dsn.get_secret_value())
    except BadDsn:
        fail("SENTRY_DSN is not a valid Sentry DSN", code=CONFIG, as_json=as_json)
    auth = dsn.to_auth(f"btecctl/{__version__}")
    event_id = uuid.uuid4().hex
    now = dt.datetime.now(dt.UTC).isoformat()
    event: Any = {  # sentry-sdk's Event: a TypedDict it keeps private
        "event_id": event_id, "timestamp": now, "platform": "python", "level": "info",
        "logger": "btecctl.sentry", "message": message, "release": settings.release,
        "environment": settings.env, "server_name": settings.service_id,
        "tags": {"component": "btecctl"},
    }  # fmt: skip
    envelope = Envelope(headers={"event_id": event_id, "sent_at": now})
    envelope.add_event(event)
    request = urllib.request.Request(  # noqa: S310 - the operator's own Sentry
        auth.get_api_url(EndpointType.ENVELOPE), data=envelope.serialize(), method="POST",
        headers={"X-Sentry-Auth": auth.to_header(),
                 "Content-Type": "application/x-sentry-envelope"},
    )  # fmt: skip
    host = f"{dsn.host}:{dsn.port}"
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as resp:  # noqa: S310
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        fail(f"Sentry at {host} refused the test event: HTTP {exc.code}", code=FAILED,
             as_json=as_json, status=exc.code)  # fmt: skip
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"Sentry at {host} is unreachable: {type(reason).__name__}", code=UNREACHABLE,
             as_json=as_json)  # fmt: skip
    if as_json:
        emit_json({"ok": True, "accepted": True, "status": status, "event_id": event_id,
                   "host": host})  # fmt: skip
    else:
        err_console.print(f"[green]accepted[/] by Sentry at {host}: event {event_id}")
