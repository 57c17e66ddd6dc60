"""`btecctl serve --processes N`: N API processes on one port, under one parent that starts
them, restarts any that dies, and drains them all on SIGTERM.

Each process is a `btecctl serve` of its own, listening on the same address with SO_REUSEPORT:
the kernel spreads new connections over their listeners, so each process takes its share with
its own event loop, database pool and Redis clients, and none waits on another's accept. What
must be shared (rate limits, the cache, the job queue, sessions) is in Redis and PostgreSQL
already, so the processes need nothing from each other. A pre-forked server that shares one
listening socket (gunicorn's model) would wake every process for each connection and leave
the spread to whichever wins; a library for it would bring a second process model beside
btec's own start, drain and supervision, which the parent here reuses.

The parent serves no request. It starts the embedded servers (when their URLs are unset) and
applies migrations once, starts the processes with the resolved URLs, and restarts one that
exits on its own with a backoff from 1 to 30 s. On SIGTERM or SIGINT it passes SIGTERM to
every process, each of which drains as a lone `serve` does (readiness fails, requests in
flight finish), and returns when all have stopped. Every process gets SIGTERM if the parent
dies, however it dies (server.platform.children).

Metrics: one Prometheus target per process, each process serving its own /metrics on a port
of its own (BTEC_PROCESS_METRICS_PORT + its index, or one the system picks), listed for
Prometheus's file-based service discovery in `<data dir>/prometheus/btec-api.json`, rewritten
whenever a process starts. The counters stay plain integers on each event loop (the request
path pays no lock or shared-memory write: server.observability.metrics) and Prometheus sums
them across targets, as it does across hosts: a process on one machine is a member like any
other. prometheus_client's multiprocess mode was the alternative; it writes every increment
to a memory-mapped file and cannot carry the collectors read at scrape time (the pool, the
queue, the process's own CPU and memory). The shared port's /metrics, which would answer for
whichever process took the connection, answers 404 and names the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.app.runner import wait_for_signal
from server.config.settings import Settings
from server.observability.logging import get_logger
from server.platform.children import die_with_parent
from server.platform.embedded import EmbeddedServer, supervise

log = get_logger("btec.serve")

Argv = Callable[[int, int], list[str]]  # process i's command line, given its ready pipe

BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds before each restart of a failing process
STEADY_SECONDS = 60.0  # a process up this long restarts at once again if it dies
READY_TIMEOUT = 120.0


def targets_file(settings: Settings) -> Path:
    """Where the processes' metrics targets are listed (Prometheus file_sd_configs)."""
    return settings.data_dir / "prometheus" / "btec-api.json"


@dataclass
class Member:
    """One API process: its index, the process while it runs, and what it said when ready."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    ready: dict[str, Any] | None = None
    started: float = 0.0
    failures: int = 0  # restarts in a row without a steady run between them


@dataclass
class Processes:
    """The parent of N API processes (see the module's docstring)."""

    settings: Settings
    count: int
    argv: Argv
    environ: dict[str, str]
    members: list[Member] = field(default_factory=list)
    stopping: bool = False
    restarts: int = 0

    async def run(
        self, on_ready: Callable[[list[dict[str, Any]]], None], supervised: Sequence[EmbeddedServer]
    ) -> None:
        """Start every process, report once all are ready, then supervise until signalled."""
        self.members = [Member(i) for i in range(self.count)]
        watch = None
        if supervised:
            watch = asyncio.ensure_future(supervise(supervised, lambda n: None))
        watchers = [asyncio.ensure_future(self._keep(m)) for m in self.members]
        try:
            try:
                await asyncio.wait_for(self._all_ready(), READY_TIMEOUT)
            except TimeoutError:
                raise ProcessFailed(f"the API processes were not all ready within "
                                    f"{READY_TIMEOUT:g} s") from None  # fmt: skip
            on_ready([m.ready or {} for m in self.members])
            signame = await wait_for_signal()
            log.info("draining", signal=signame, processes=self.count)
        finally:
            self.stopping = True
            if watch is not None:
                watch.cancel()
            await self._stop_all()
            for w in watchers:
                w.cancel()
            log.info("stopped", processes=self.count, restarts=self.restarts)

    async def _all_ready(self) -> None:
        while not all(m.ready for m in self.members):
            for m in self.members:
                if m.proc is not None and m.proc.returncode is not None and m.failures > 2:
                    raise ProcessFailed(f"API process {m.index} exited {m.proc.returncode} "
                                        "before it was ready, three times")  # fmt: skip
            await asyncio.sleep(0.05)

    async def _keep(self, member: Member) -> None:
        """Run process `member` until the parent stops; start it again when it exits."""
        while not self.stopping:
            code = await self._run_once(member)
            if self.stopping:
                return
            steady = time.monotonic() - member.started >= STEADY_SECONDS
            member.failures = 0 if steady else member.failures + 1
            delay = 0.0 if steady else BACKOFF[min(member.failures, len(BACKOFF)) - 1]
            self.restarts += 1
            log.warning("process_exited", process=member.index, code=code, restart_in=delay)
            await asyncio.sleep(delay)

    async def _run_once(self, member: Member) -> int:
        """Start process `member`, note when it is ready, and wait for it to exit. Its output
        goes straight to this process's stdout and stderr (nothing is copied per line); its
        ready event comes on a pipe of its own (`--ready-fd`)."""
        member.ready = None
        member.started = time.monotonic()
        read_end, write_end = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(member.index, write_end), env=self.environ, pass_fds=(write_end,),
                preexec_fn=die_with_parent, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_end)
        member.proc = proc
        with os.fdopen(read_end, "rb") as pipe:
            said = await asyncio.to_thread(pipe.readline)  # the ready event, or EOF on exit
        event = _event(said.decode(errors="replace"))
        if event.get("event") == "ready":
            member.ready = event
            self._write_targets()
            if not self.stopping and any(m.started < member.started for m in self.members):
                log.info("process_ready", process=member.index, pid=proc.pid)
        return await proc.wait()

    async def _stop_all(self) -> None:
        """SIGTERM to every process; a second signal passes on (their drains are cut short);
        SIGKILL to any still running past its drain and shutdown timeouts."""
        running = [m.proc for m in self.members if m.proc and m.proc.returncode is None]
        _send(running, signal.SIGTERM)
        grace = self.settings.drain_seconds + self.settings.shutdown_timeout + 10
        waiting: asyncio.Future[Any] = asyncio.gather(*(p.wait() for p in running))
        again: asyncio.Future[Any] = asyncio.ensure_future(wait_for_signal())
        await asyncio.wait([waiting, again], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        if again.done():
            _send(running, signal.SIGTERM)
            await asyncio.wait([waiting], timeout=grace)
        again.cancel()
        if not waiting.done():
            _send(running, signal.SIGKILL)
            await waiting

    def _write_targets(self) -> None:
        """Every ready process's metrics address, for Prometheus's file_sd_configs."""
        groups = []
        for m in self.members:
            metrics = (m.ready or {}).get("metrics")
            if metrics:
                address = metrics.split("//", 1)[1].split("/", 1)[0]
                groups.append({"targets": [address], "labels": {"process": str(m.index)}})
        path = targets_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_suffix(".json.tmp")
        draft.write_text(json.dumps(groups, indent=2) + "\n")
        draft.replace(path)  # Prometheus never reads half a file


class ProcessFailed(Exception):
    """An API process would not start; the message says which and how it exited."""


def reserve_port(host: str, port: int) -> socket.socket:
    """The port the processes will share, held (bound, not listening) with SO_REUSEPORT until
    they listen on it: port 0 becomes a real one, and a port another program holds fails here
    (EADDRINUSE) rather than being shared with it."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # taken without SO_REUSEPORT?
        probe.bind(address[:2])
        port = probe.getsockname()[1]
    held = socket.socket(family, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind((address[0], port))
    return held


def child_environ(settings: Settings, count: int) -> dict[str, str]:
    """The processes' environment: this one's, with the database and Redis this parent
    resolved (the embedded ones it started, when their URLs are unset) and their number."""
    environ = {**os.environ, "BTEC_PROCESSES": str(count)}
    for name in ("database_url", "redis_url"):
        value = getattr(settings, name)
        if value is not None:
            environ[f"BTEC_{name.upper()}"] = value.get_secret_value()
    return environ


def child_argv(host: str, port: int, worker: bool, as_json: bool) -> Argv:
    """Process i's command line: `btecctl serve` on the shared port, migrations already
    applied, the in-process worker (if any) in process 0 alone, its ready event written to
    `ready_fd` too."""

    def argv(index: int, ready_fd: int) -> list[str]:
        runs_worker = worker and index == 0
        return [sys.executable, "-m", "btecctl", "serve", "--host", host, "--port", str(port),
                "--no-migrate", "--process-index", str(index), "--ready-fd", str(ready_fd),
                "--worker" if runs_worker else "--no-worker",
                *(["--json"] if as_json else [])]  # fmt: skip

    return argv


def _send(procs: list[asyncio.subprocess.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def _event(line: str) -> dict[str, Any]:
    try:
        found = json.loads(line)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
