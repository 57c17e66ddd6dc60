"""btecctl serve: start embedded servers as needed, migrate, and run the API until signalled."""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Annotated, Any

import typer

from btecctl.context import session, settings_of
from btecctl.output import JsonOpt, emit_json, err_console, fail
from server.config.settings import Settings


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


def server_logging(component: str, as_json: bool) -> Callable[[Settings], None]:
    """The structured log pipeline and Sentry of a long-running process, set up before any
    embedded server starts (so their lines go through it too)."""

    def prepare(settings: Settings) -> None:
        from server.observability.logging import configure_from
        from server.observability.sentry import init_sentry

        configure_from(settings, as_json)
        init_sentry(settings, component=component)

    return prepare


def _ready(as_json: bool, started: float) -> Callable[[str], None]:
    def ready(url: str) -> None:
        seconds = round(time.monotonic() - started, 3)
        if as_json:
            emit_json({"event": "ready", "url": url, "seconds": seconds})
        elif sys.stderr.isatty():
            err_console.print(f"[green]btec is up[/] at {url} in {seconds} s. Ctrl-C stops it.")

    return ready


HostOpt = Annotated[
    str | None, typer.Option(metavar="HOST", help="Listen address. Default: BTEC_HOST.")
]
PortOpt = Annotated[
    int | None,
    typer.Option(min=0, max=65535, metavar="PORT", help="Listen port. Default: BTEC_PORT."),
]
MigrateOpt = Annotated[
    bool, typer.Option("--migrate/--no-migrate", help="Apply pending migrations first.")
]
WorkerOpt = Annotated[
    bool, typer.Option("--worker/--no-worker", help="Run a job worker in this process.")
]


def serve(
    ctx: typer.Context, host: HostOpt = None, port: PortOpt = None, migrate: MigrateOpt = True,
    worker: WorkerOpt = True, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Run the API server (with embedded PostgreSQL and Redis unless their URLs are set).

    Run the API server. Starts the embedded PostgreSQL and Redis when `BTEC_DATABASE_URL` /
    `BTEC_REDIS_URL` are unset, the embedded mail catcher when `BTEC_SMTP_URL` is unset, applies
    pending migrations (unless `--no-migrate`), runs a job worker in the same process (unless
    `--no-worker`), and serves until SIGTERM or Ctrl-C: readiness then fails for
    `BTEC_DRAIN_SECONDS`, in-flight requests finish, the worker drains, and the embedded servers
    stop. With `--json` it prints `{"event": "ready", "url": …, "seconds": …}` once listening."""
    from server.observability.logging import get_logger

    ready = _ready(as_json, time.monotonic())
    try:
        with sync_sigterm(), session(ctx, as_json, postgres=True, redis=True,
                                     prepare=server_logging("api", as_json)) as s:  # fmt: skip
            if migrate:
                _migrate(s.settings)
            bind = (host or s.settings.host, s.settings.port if port is None else port)
            _run(s.settings, bind, worker, ready, as_json, _embedded(settings_of(ctx)))
    except (Terminated, KeyboardInterrupt):
        get_logger("btec.serve").info("stopped_while_starting")


def _migrate(settings: Settings) -> None:
    from server.observability.logging import get_logger
    from server.schema import migrations

    applied = migrations.migrate(settings)
    get_logger("btec.serve").info("migrations_applied", count=len(applied), ids=applied)


def _embedded(settings: Settings) -> list[Any]:
    """The embedded servers this `serve` uses (no URL configured), which it restarts if they
    die."""
    from server.platform.embedded import EmbeddedPostgres, EmbeddedRedis

    servers: list[Any] = []
    if settings.embedded_postgres:
        servers.append(EmbeddedPostgres(settings.data_dir))
    if settings.embedded_redis:
        servers.append(EmbeddedRedis(settings.data_dir))
    return servers


def _run(
    settings: Settings, bind: tuple[str, int], worker: bool, ready: Callable[[str], None],
    as_json: bool, supervised: list[Any],
) -> None:  # fmt: skip
    """Serve until signalled. A taken port is the operator's to free (exit 1), not an
    unreachable dependency."""
    # Imported here so that every other btecctl command starts without the web stack.
    from server.app.runner import run
    from server.app.runner import serve as serve_app

    try:
        run(serve_app(settings, host=bind[0], port=bind[1], worker=worker, on_ready=ready,
                      supervised=supervised))  # fmt: skip
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"{bind[0]}:{bind[1]} is already in use", as_json=as_json)
        raise
