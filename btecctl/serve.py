"""btecctl serve: start embedded servers as needed, migrate, and run the API until signalled."""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Annotated

import typer

from btecctl.output import FAILED, JsonOpt, emit_json, err_console, fail, settings_of
from server.platform.embedded import EmbeddedError, embedded_services


class Terminated(Exception):
    """SIGTERM arrived outside the event loop (while starting or stopping)."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextlib.contextmanager
def sync_sigterm() -> Iterator[None]:
    """Turn SIGTERM into an exception so embedded servers still stop on the way out."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Listen address [default: BTEC_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Listen port [default: BTEC_PORT].")
    ] = None,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply pending migrations first.")
    ] = True,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run a job worker in this process.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the API server (with embedded PostgreSQL and Redis unless their URLs are set)."""
    # Imported here so that every other btecctl command starts without the web stack.
    from server.app.runner import run
    from server.app.runner import serve as serve_app
    from server.observability.logging import configure_from, get_logger
    from server.observability.sentry import init_sentry
    from server.schema import migrations

    settings = settings_of(ctx)
    configure_from(settings, as_json)
    init_sentry(settings, component="api")
    log = get_logger("btec.serve")
    started = time.monotonic()
    bind_host = host or settings.host
    bind_port = settings.port if port is None else port

    def ready(url: str) -> None:
        seconds = round(time.monotonic() - started, 3)
        if as_json:
            emit_json({"event": "ready", "url": url, "seconds": seconds})
        elif sys.stderr.isatty():
            err_console.print(f"[green]btec is up[/] at {url} in {seconds} s. Ctrl-C stops it.")

    try:
        with sync_sigterm(), embedded_services(settings) as resolved:
            if migrate:
                applied = migrations.migrate(resolved)
                log.info("migrations_applied", count=len(applied), ids=applied)
            run(serve_app(resolved, host=bind_host, port=bind_port, worker=worker, on_ready=ready))
    except (Terminated, KeyboardInterrupt):
        log.info("stopped_while_starting")
    except EmbeddedError as exc:
        fail(f"embedded server: {exc}", code=FAILED, as_json=as_json)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"{bind_host}:{bind_port} is already in use", as_json=as_json)
        raise
