"""btecctl worker: a job worker process, with saq's web UI on a loopback admin port if asked."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from btecctl.context import session
from btecctl.output import USAGE, JsonOpt, emit_json, err_console, fail
from btecctl.serve import Terminated, server_logging, sync_sigterm
from server.config.settings import Settings

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

UI_USER = "admin"


ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        min=1, max=1000, metavar="N", help="Jobs at once. Default: BTEC_WORKER_CONCURRENCY."
    ),
]
UiPortOpt = Annotated[
    int | None,
    typer.Option(min=1, max=65535, metavar="PORT",
                 help="Serve saq's web UI on 127.0.0.1:PORT (user admin, BTEC_JOBS_UI_PASSWORD)."),
]  # fmt: skip
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(min=0, max=65535, metavar="PORT",
                 help="Serve /metrics on BTEC_HOST:PORT, 0 for any free port. "
                 "Default: BTEC_WORKER_METRICS_PORT."),
]  # fmt: skip


def worker(
    ctx: typer.Context, concurrency: ConcurrencyOpt = None, ui_port: UiPortOpt = None,
    metrics_port: MetricsPortOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Run a job worker until SIGTERM or Ctrl-C, then drain (see BTEC_WORKER_DRAIN_SECONDS).

    A job worker process. On SIGTERM it stops taking jobs, gives running ones
    `BTEC_WORKER_DRAIN_SECONDS`, then puts the rest back in the queue. `--ui-port` serves saq's
    web UI on `127.0.0.1:P` behind Basic auth (user `admin`, password `BTEC_JOBS_UI_PASSWORD`).
    `--metrics-port` (or `BTEC_WORKER_METRICS_PORT`; 0 for any free port) serves its job metrics
    at `http://BTEC_HOST:P/metrics`, behind `BTEC_METRICS_TOKEN`. With `--json` it prints
    `{"event": "ready", "metrics_url": …, …}` once running."""
    from server.app.runner import run

    ready = _ready(as_json, time.monotonic(), ui_port)
    given = {"worker_concurrency": concurrency, "worker_metrics_port": metrics_port}
    with contextlib.suppress(Terminated, KeyboardInterrupt), sync_sigterm(), session(
        ctx, as_json, postgres=True, redis=True, prepare=_prepare(ui_port, as_json)
    ) as s:  # fmt: skip
        settings = s.settings.model_copy(update={k: v for k, v in given.items() if v is not None})
        run(_work(settings, ui_port, ready))


def _prepare(ui_port: int | None, as_json: bool) -> Callable[[Settings], None]:
    """Refuse --ui-port without its password before anything starts, then set up logging."""

    def prepare(settings: Settings) -> None:
        if ui_port is not None and settings.jobs_ui_password is None:
            fail("--ui-port needs BTEC_JOBS_UI_PASSWORD", code=USAGE, as_json=as_json)
        server_logging("worker", as_json)(settings)

    return prepare


def _ready(as_json: bool, started: float, ui_port: int | None) -> Callable[[str | None], None]:
    def ready(metrics_url: str | None) -> None:
        seconds = round(time.monotonic() - started, 3)
        if as_json:
            emit_json({"event": "ready", "worker": True, "seconds": seconds, "ui_port": ui_port,
                       "metrics_url": metrics_url})  # fmt: skip
            return
        also = f" Metrics at {metrics_url}." if metrics_url else ""
        err_console.print(f"[green]worker up[/] in {seconds} s.{also} Ctrl-C drains and stops it.")

    return ready


async def _work(
    settings: Settings, ui_port: int | None, ready: Callable[[str | None], None]
) -> None:
    from server.app.runner import run_worker

    async with _saq_ui(settings, ui_port):
        await run_worker(settings, on_ready=ready)


@asynccontextmanager
async def _saq_ui(settings: Settings, port: int | None) -> AsyncIterator[None]:
    """saq's own web UI, alone on a loopback port (it cannot be a sub-app), behind Basic auth."""
    if port is None:
        yield
        return
    from aiohttp import web
    from saq.web.aiohttp import create_app as saq_app

    from server.jobs.queue import create_queue

    if settings.redis_url is None or settings.jobs_ui_password is None:
        raise RuntimeError("the jobs UI needs a Redis URL and BTEC_JOBS_UI_PASSWORD")
    # A queue of its own: the UI app disconnects its queues when it stops.
    app = saq_app([create_queue(settings.redis_url.get_secret_value())])
    app.middlewares.insert(0, basic_auth(settings.jobs_ui_password.get_secret_value()))
    app.middlewares.insert(0, same_origin_writes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def same_origin_writes() -> Middleware:
    """CSRF defence for saq's UI: a browser sends Basic credentials with any request to the
    UI, a forged one from another site included. So a request that changes something (not
    GET, HEAD or OPTIONS) must come from the UI's own pages: a browser's `Sec-Fetch-Site`
    says same-origin (or none: typed by the user), and its `Origin` is the UI's own. A client
    that sends neither header (curl, a script) is no browser and cannot be forged into
    sending credentials. OWASP's "verifying origin with standard headers"; no CSRF token,
    since saq's pages are not ours to add one to."""
    from aiohttp import web
    from aiohttp.typedefs import Handler

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        own = f"{request.scheme}://{request.host}"
        if site not in (None, "same-origin", "none") or origin not in (None, own):
            return web.Response(status=403, text="cross-site requests are refused")
        return await handler(request)

    return check


def basic_auth(password: str) -> Middleware:
    from aiohttp import web
    from aiohttp.typedefs import Handler

    expected = f"{UI_USER}:{password}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        try:
            given = base64.b64decode(header.removeprefix("Basic "), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        if header.startswith("Basic ") and hmac.compare_digest(given, expected):
            return await handler(request)
        return web.Response(
            status=401,
            text="authentication required",
            headers={"WWW-Authenticate": 'Basic realm="btec tasks"'},
        )

    return check
