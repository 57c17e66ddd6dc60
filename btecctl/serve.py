"""btecctl serve: start embedded servers as needed, migrate, and run the API until signalled."""

from __future__ import annotations

import contextlib
import errno
import json
import os
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


Ready = Callable[[str, "str | list[str] | None"], None]


def _ready(as_json: bool, started: float, ready_fd: int | None = None) -> Ready:
    """What serve says once it listens: the URL, and the /metrics URL of each process when
    there are several; as one of several, its own, on `ready_fd` alone, for its parent."""

    def ready(url: str, metrics: str | list[str] | None) -> None:
        seconds = round(time.monotonic() - started, 3)
        event = {"event": "ready", "url": url, "seconds": seconds}
        event = event if metrics is None else {**event, "metrics": metrics}
        if ready_fd is not None:  # one of several: its parent says when all are ready
            with os.fdopen(ready_fd, "w") as pipe:
                pipe.write(json.dumps(event) + "\n")
        elif as_json:
            emit_json(event)
        elif sys.stderr.isatty():
            many = f" in {len(metrics)} processes" if isinstance(metrics, list) else ""
            err_console.print(f"[green]btec is up[/] at {url}{many} in {seconds} s. "
                              "Ctrl-C stops it.")  # fmt: skip

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
ProcessesOpt = Annotated[
    int | None,
    typer.Option(min=1, max=64, metavar="N",
                 help="API processes on the one port (SO_REUSEPORT). Default: BTEC_PROCESSES."),
]  # fmt: skip
# Set by `serve --processes N` on each process it starts; not for people: its index, and a
# pipe for its ready event.
MemberOpt = Annotated[int | None, typer.Option("--process-index", hidden=True, min=0)]
ReadyFdOpt = Annotated[int | None, typer.Option("--ready-fd", hidden=True, min=0)]


def serve(
    ctx: typer.Context, host: HostOpt = None, port: PortOpt = None, migrate: MigrateOpt = True,
    worker: WorkerOpt = True, processes: ProcessesOpt = None, member: MemberOpt = None,
    ready_fd: ReadyFdOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Run the API server (with embedded PostgreSQL and Redis unless their URLs are set).

    Run the API server. Starts the embedded PostgreSQL and Redis when `BTEC_DATABASE_URL` /
    `BTEC_REDIS_URL` are unset, the embedded mail catcher when `BTEC_SMTP_URL` is unset, applies
    pending migrations (unless `--no-migrate`), runs a job worker in the same process (unless
    `--no-worker`), and serves until SIGTERM or Ctrl-C: readiness then fails for
    `BTEC_DRAIN_SECONDS`, in-flight requests finish, the worker drains, and the embedded servers
    stop. With `--json` it prints `{"event": "ready", "url": …, "seconds": …}` once listening.

    With `--processes N` (or `BTEC_PROCESSES`), N API processes share the port, under this one,
    which restarts any that dies and drains them all on SIGTERM; the worker (unless
    `--no-worker`) runs in the first. Each serves its own /metrics, listed for Prometheus in
    `<data dir>/prometheus/btec-api.json`; the ready line lists them as `metrics`."""
    from server.observability.logging import get_logger

    ready = _ready(as_json, time.monotonic(), ready_fd)
    try:
        with sync_sigterm(), session(ctx, as_json, postgres=True, redis=True,
                                     prepare=server_logging("api", as_json)) as s:  # fmt: skip
            if migrate:
                _migrate(s.settings)
            bind = (host or s.settings.host, s.settings.port if port is None else port)
            count = processes or s.settings.processes
            embedded = _embedded(settings_of(ctx))
            if member is None and count > 1:
                _run_many(s.settings, bind, worker, count, ready, as_json, embedded)
            else:
                _run(s.settings, bind, worker, ready, as_json, embedded, member)
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
    settings: Settings, bind: tuple[str, int], worker: bool, ready: Ready, as_json: bool,
    supervised: list[Any], member: int | None,
) -> None:  # fmt: skip
    """Serve until signalled (as process `member` of several, or alone)."""
    # Imported here so that every other btecctl command starts without the web stack.
    from server.app.runner import run
    from server.app.runner import serve as serve_app

    with _port_taken(bind, as_json):
        run(serve_app(settings, host=bind[0], port=bind[1], worker=worker, on_ready=ready,
                      supervised=supervised, member=member))  # fmt: skip


def _run_many(
    settings: Settings, bind: tuple[str, int], worker: bool, count: int, ready: Ready,
    as_json: bool, supervised: list[Any],
) -> None:  # fmt: skip
    """Run `count` API processes on the port and supervise them until signalled."""
    from server.app.processes import Processes, child_argv, child_environ, reserve_port
    from server.app.runner import run

    with _port_taken(bind, as_json):
        held = reserve_port(*bind)
    port = held.getsockname()[1]
    url = f"http://{bind[0]}:{port}" if ":" not in bind[0] else f"http://[{bind[0]}]:{port}"

    def all_ready(events: list[dict[str, Any]]) -> None:
        held.close()  # the processes listen on it now
        ready(url, [str(e.get("metrics")) for e in events])

    parent = Processes(settings, count, child_argv(bind[0], port, worker, as_json),
                       child_environ(settings, count))  # fmt: skip
    try:
        run(parent.run(all_ready, supervised))
    finally:
        held.close()


@contextlib.contextmanager
def _port_taken(bind: tuple[str, int], as_json: bool) -> Iterator[None]:
    """A taken port is the operator's to free (exit 1), not an unreachable dependency."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"{bind[0]}:{bind[1]} is already in use", as_json=as_json)
        raise
