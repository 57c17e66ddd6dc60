"""btecctl sentry: check that error reports reach Sentry."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import typer

from btecctl.context import session
from btecctl.output import CONFIG, FAILED, UNREACHABLE, JsonOpt, err_console, fail, noun, report
from server import __version__
from server.config.settings import Settings

if TYPE_CHECKING:
    import urllib.request

    from sentry_sdk.envelope import Envelope
    from sentry_sdk.utils import Dsn

app = noun("Error reporting: send a test event to Sentry.")
TIMEOUT_SECONDS = 10


MessageOpt = Annotated[
    str, typer.Option("--message", metavar="TEXT", help="The test event's message.")
]


@app.command("test")
def send_test(
    ctx: typer.Context, message: MessageOpt = "btecctl sentry test", as_json: JsonOpt = False
) -> None:
    """Send one test event to SENTRY_DSN (with this process's release and environment) and
    say whether Sentry accepted it: exit 0 if it did, 1 if it refused, 3 if unreachable."""
    from sentry_sdk.utils import Dsn

    with session(ctx, as_json) as s:
        if s.settings.sentry_dsn is None:
            fail("SENTRY_DSN is not set: there is nowhere to send reports", code=CONFIG,
                 as_json=as_json)  # fmt: skip
        dsn = Dsn(s.settings.sentry_dsn.get_secret_value())  # settings checked its form
    event_id, host = uuid.uuid4().hex, f"{dsn.host}:{dsn.port}"
    status = _send(dsn, _envelope(s.settings, event_id, message), as_json)
    said = f"[green]accepted[/] by Sentry at {host}: event {event_id}"
    report(as_json, {"ok": True, "accepted": True, "status": status, "event_id": event_id,
                     "host": host}, lambda: err_console.print(said))  # fmt: skip


def _envelope(settings: Settings, event_id: str, message: str) -> Envelope:
    """One info event, tagged as the CLI's, in the envelope Sentry takes."""
    from sentry_sdk.envelope import Envelope

    now = dt.datetime.now(dt.UTC).isoformat()
    event: Any = {  # sentry-sdk's Event: a TypedDict it keeps private
        "event_id": event_id, "timestamp": now, "platform": "python", "level": "info",
        "logger": "btecctl.sentry", "message": message, "release": settings.release,
        "environment": settings.env, "server_name": settings.service_id,
        "tags": {"component": "btecctl"},
    }  # fmt: skip
    envelope = Envelope(headers={"event_id": event_id, "sent_at": now})
    envelope.add_event(event)
    return envelope


def _send(dsn: Dsn, envelope: Envelope, as_json: bool) -> int:
    """POST the envelope; Sentry's HTTP status, or exit 1 (refused) or 3 (unreachable)."""
    import urllib.error
    import urllib.request

    host = f"{dsn.host}:{dsn.port}"
    try:
        with urllib.request.urlopen(_request(dsn, envelope), timeout=TIMEOUT_SECONDS) as resp:  # noqa: S310  # nosec B310 # a Dsn only has an http(s) scheme (sentry-sdk refuses others)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        fail(f"Sentry at {host} refused the test event: HTTP {exc.code}", code=FAILED,
             as_json=as_json, status=exc.code)  # fmt: skip
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"Sentry at {host} is unreachable: {type(reason).__name__}", code=UNREACHABLE,
             as_json=as_json)  # fmt: skip


def _request(dsn: Dsn, envelope: Envelope) -> urllib.request.Request:
    import urllib.request

    from sentry_sdk.consts import EndpointType

    auth = dsn.to_auth(f"btecctl/{__version__}")
    return urllib.request.Request(  # noqa: S310 - the operator's own Sentry
        auth.get_api_url(EndpointType.ENVELOPE), data=envelope.serialize(), method="POST",
        headers={"X-Sentry-Auth": auth.to_header(),
                 "Content-Type": "application/x-sentry-envelope"},
    )  # fmt: skip
