"""Run the app: listen, then on SIGTERM or Ctrl-C fail readiness, drain, and close.

The shutdown, in order:
1. readiness fails and answers close their connections, for BTEC_DRAIN_SECONDS, while the
   load balancer notices (requests are still served);
2. the listener closes; requests in flight finish, their bodies still arriving, for up to
   BTEC_SHUTDOWN_TIMEOUT; a new request on a kept-alive connection is refused, unread, with
   503 `shutting_down` and `Connection: close`;
3. aiohttp's own shutdown, which would drop the bytes of a body still arriving (its
   connections stop reading once closing) and is therefore only reached when no request is in
   flight or the timeout has passed; a request still running then is cancelled within
   CANCEL_SECONDS and logged;
4. the app's resources close (the in-process worker drains its jobs).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from server.app import create_app
from server.config.settings import Settings
from server.http.protocol import ProblemRunner
from server.observability.logging import get_logger
from server.observability.metrics import METRICS, Metrics
from server.platform.embedded import EmbeddedServer, supervise
from server.platform.lifecycle import LIFECYCLE, Lifecycle

log = get_logger("btec.serve")


CANCEL_SECONDS = 1.0  # what aiohttp's shutdown gives a request that outlived the drain


class ListenError(Exception):
    """A listener could not bind its address; the message names it."""


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    worker: bool = True,
    on_ready: Callable[[str, str | None], None] | None = None,
    supervised: Sequence[EmbeddedServer] = (),
    member: int | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; readiness fails `drain_seconds` before the listener closes,
    then requests finish and the in-process worker drains. The `supervised` embedded servers
    are started again if they die meanwhile. `member`: this is process `member` of a
    `serve --processes N` (server.app.processes): it shares the port (SO_REUSEPORT) and serves
    its own /metrics on a port of its own; `on_ready` gets the URL and that /metrics URL."""
    # A taken port fails here, before anything starts.
    sock = listening_socket(host, port, reuse_port=member is not None)
    # Where it listens is its URL unless BTEC_PUBLIC_URL says otherwise (mail links, docs).
    settings = settings.model_copy(update={"host": host, "port": sock.getsockname()[1]})
    app = create_app(settings, worker=worker)
    runner = ProblemRunner(
        app,
        settings,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=CANCEL_SECONDS,  # after finish_in_flight: only what outlived it
        # aiohttp closes a connection still waiting for a request's headers this long after
        # it opened or its last answer went, however many bytes it trickled meanwhile: the
        # header timeout (slowloris), and the idle keep-alive time with it.
        keepalive_timeout=settings.header_timeout,
    )
    await runner.setup()
    signalled: float | None = None
    restarts = app[METRICS].embedded_restarts
    watch = None
    if supervised:
        watch = asyncio.ensure_future(supervise(supervised, lambda n: restarts.labels(n).inc()))
    own_metrics = None
    try:
        await web.SockSite(runner, sock, backlog=1024).start()
        url = _url(runner, host, port)
        metrics_url = None
        if member is not None:
            own_metrics, metrics_url = await _metrics_listener(settings, app[METRICS], member)
        log.info("serving", url=url, env=settings.env, release=settings.release,
                 process=member, metrics=metrics_url)  # fmt: skip
        if on_ready is not None:
            on_ready(url, metrics_url)
        signame = await wait_for_signal()
        signalled = time.monotonic()
        app[LIFECYCLE].draining = True
        log.info("draining", signal=signame, seconds=settings.drain_seconds)
        await _sleep_unless_signalled(settings.drain_seconds)
    finally:
        if watch is not None:
            watch.cancel()
        await finish_in_flight(runner, app[LIFECYCLE], settings.shutdown_timeout)
        await runner.cleanup()
        if own_metrics is not None:
            await own_metrics.cleanup()
        seconds = None if signalled is None else round(time.monotonic() - signalled, 3)
        log.info("stopped", seconds=seconds, refused=app[LIFECYCLE].refused)


async def finish_in_flight(runner: web.AppRunner, lifecycle: Lifecycle, seconds: float) -> None:
    """Close the listeners, then wait up to `seconds` for the requests in flight to
    finish, their bodies still arriving; those still running after it are logged (aiohttp's
    shutdown then cancels them)."""
    for site in list(runner.sites):
        await site.stop()
    lifecycle.closed = True
    started = time.monotonic()
    waiting = lifecycle.in_flight
    left = await lifecycle.wait_idle(seconds)
    if waiting:
        log.info("in_flight_finished", finished=waiting - left,
                 seconds=round(time.monotonic() - started, 3))  # fmt: skip
    if left:
        log.warning("in_flight_cut_off", requests=left, after_seconds=seconds)


def _url(runner: web.AppRunner, host: str, port: int) -> str:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            h = addr[0] if ":" not in addr[0] else f"[{addr[0]}]"
            return f"http://{h}:{addr[1]}"
    return f"http://{host}:{port}"


async def run_worker(
    settings: Settings, on_ready: Callable[[str | None], None] | None = None
) -> None:
    """`btecctl worker`: the worker's resources without HTTP (but for /metrics on
    BTEC_WORKER_METRICS_PORT), until SIGTERM/SIGINT; then it drains: running jobs get
    BTEC_WORKER_DRAIN_SECONDS, the rest go back to the queue. `on_ready` gets the metrics URL."""
    from server.app import create_worker_app

    port = settings.worker_metrics_port
    # A taken port fails here, before anything starts.
    sock = None if port is None else _metrics_socket(settings.host, port)
    app = create_worker_app(settings)
    runner = web.AppRunner(app, handle_signals=False)
    listener: web.AppRunner | None = None
    await runner.setup()
    try:
        metrics_url = None
        if sock is not None:
            listener, metrics_url = await _serve_metrics(settings, app[METRICS], sock)
        log.info("worker_started", concurrency=settings.worker_concurrency, metrics=metrics_url)
        if on_ready is not None:
            on_ready(metrics_url)
        signame = await wait_for_signal()
        log.info("worker_draining", signal=signame, seconds=settings.worker_drain_seconds)
    finally:
        if listener is not None:
            await listener.cleanup()
        await runner.cleanup()
        log.info("worker_stopped")


async def _metrics_listener(
    settings: Settings, metrics: Metrics, member: int
) -> tuple[web.AppRunner, str]:
    """Process `member`'s own /metrics: on BTEC_PROCESS_METRICS_PORT + member, or a port the
    system picks when that is unset."""
    base = settings.process_metrics_port
    sock = _metrics_socket(settings.host, 0 if base is None else base + member)
    return await _serve_metrics(settings, metrics, sock)


async def _serve_metrics(
    settings: Settings, metrics: Metrics, sock: socket.socket
) -> tuple[web.AppRunner, str]:
    """/metrics alone on `sock`, behind the metrics token; the runner and its URL."""
    from server.http.routes.metrics import worker_metrics_app

    listener = web.AppRunner(
        worker_metrics_app(settings, metrics), access_log=None,
        handle_signals=False, keepalive_timeout=settings.header_timeout,
    )  # fmt: skip
    await listener.setup()
    await web.SockSite(listener, sock).start()
    return listener, _url(listener, settings.host, sock.getsockname()[1]) + "/metrics"


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket listening on host:port (SO_REUSEADDR, as aiohttp's own sites; SO_REUSEPORT
    too for the processes of `serve --processes N`); OSError (say, EADDRINUSE) when it cannot
    be had."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address[:2], family=family, backlog=1024, reuse_port=reuse_port)


def _metrics_socket(host: str, port: int) -> socket.socket:
    try:
        return listening_socket(host, port)
    except OSError as exc:  # taken, or not an address of this host
        raise ListenError(
            f"cannot listen for metrics on {host}:{port}: {exc.strerror or exc}"
        ) from None


async def wait_for_signal() -> str:
    """The name of the first SIGTERM or SIGINT to arrive."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[str] = loop.create_future()

    def received(sig: signal.Signals) -> None:
        if not got.done():
            got.set_result(sig.name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, received, sig)
    return await got


async def _sleep_unless_signalled(seconds: float) -> None:
    """Wait out the drain; a second signal cuts it short."""
    loop = asyncio.get_running_loop()
    again: asyncio.Future[None] = loop.create_future()

    def received() -> None:
        if not again.done():
            again.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, received)
    try:
        await asyncio.wait_for(asyncio.shield(again), timeout=seconds)
        log.warning("drain_cut_short")
    except TimeoutError:
        pass


def run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(coro)
