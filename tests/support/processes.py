"""The processes tests start and stop: `btecctl serve` on an embedded data dir, with the
embedded servers it runs, and `btecctl worker`; each prints JSON lines, read as they come."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import psutil

from server.config.settings import Settings
from tests.support.env import cli_env
from tests.support.http import call

STARTUP_TIMEOUT = 60


class Served:
    """A running `btecctl serve --json` on an embedded data dir. Every one started is listed
    in `started`, for a fixture to kill what a failed test left running."""

    started: ClassVar[list[Served]] = []

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *args: str,
        python: str = sys.executable,
        cwd: Path | None = None,
        **env: str,
    ) -> None:
        """`python` runs btecctl (another venv's, for an installed release) in `cwd`."""
        self.data_dir = data_dir
        self.python = python
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
        # A mail catcher of its own (any free port): on the default port, servers of tests
        # running side by side share the first one's catcher, and a mail lands in the other
        # data dir (`mail_catcher_elsewhere`).
        environ.update({"BTEC_DATA_DIR": str(data_dir), "BTEC_ENV_FILE": "",
                        "BTEC_DRAIN_SECONDS": "0.2", "BTEC_MAIL_CATCHER_PORT": "0"})  # fmt: skip
        environ.update(env)
        self.environ = environ
        self.proc = subprocess.Popen(
            [python, "-m", "btecctl", "serve", "--port", str(port), "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            text=True,
            cwd=cwd,
        )
        Served.started.append(self)
        self.lines: list[dict[str, Any]] = []
        self._errors: list[str] = []
        self._reader: threading.Thread | None = None

    def wait_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited: {self.proc.wait()} {self.proc.stderr.read()}")  # type: ignore[union-attr]
            entry = json.loads(line)
            self.lines.append(entry)
            if entry.get("event") == "ready":
                self._reader = threading.Thread(target=self._drain, daemon=True)
                self._reader.start()
                return entry
        raise AssertionError("serve did not become ready")

    def admin_token(self, email: str = "ops@example.org") -> str:
        """An admin made with `btecctl users create-admin` beside this server, signed in."""
        password = "a long enough passphrase for the ops admin"
        subprocess.run(
            [self.python, "-m", "btecctl", "users", "create-admin", email, "--name", "Ops",
             "--password-stdin"],
            env=self.environ, input=password + "\n", text=True, check=True,
            capture_output=True, timeout=120,
        )  # fmt: skip
        status, body = call(self.url + "/api/v1/auth/login",
                            body={"email": email, "password": password})  # fmt: skip
        assert status == 200, body
        return str(body["access_token"])

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:  # noqa: S310
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def _drain(self) -> None:
        """Read the server's output as it comes once it is ready: a pipe nobody reads fills
        up, and the server then blocks on its next log line."""
        assert self.proc.stdout is not None
        errors = threading.Thread(target=lambda: self._errors.extend(self.proc.stderr or ()),
                                  daemon=True)  # fmt: skip
        errors.start()
        for line in self.proc.stdout:
            if line.strip():
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    self.lines.append({"raw": line})
        errors.join()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        if self._reader is None:
            out, err = self.proc.communicate(timeout=timeout)
            self.lines += [json.loads(x) for x in out.splitlines() if x.strip()]
            self.stderr = err
        else:
            self.proc.wait(timeout)
            self._reader.join(timeout)
            self.stderr = "".join(self._errors)
        return int(self.proc.returncode)


def embedded_processes(data_dir: Path) -> list[psutil.Process]:
    """postgres and redis-server processes serving `data_dir`."""
    pg, redis = data_dir.resolve() / "pg", data_dir.resolve() / "redis"
    found = []
    for pid_file in (pg / "data" / "postmaster.pid", redis / "redis.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (OSError, ValueError, IndexError, psutil.Error):
            continue
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(data_dir.resolve()) in cmd and ("postgres" in cmd or "redis-server" in cmd):
            found.append(proc)
    return found


class WorkerProcess:
    """`btecctl worker --json` as a child process; its log lines are read as they come."""

    running: ClassVar[list[asyncio.subprocess.Process]] = []

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.ready = ready  # the `ready` event it printed
        self.lines: list[bytes] = []
        self._reader = asyncio.create_task(self._read())
        WorkerProcess.running.append(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line)

    @classmethod
    async def start(cls, settings: Settings, **env: str) -> WorkerProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
        environ.update(cli_env(settings, BTEC_ENV_FILE="", **env))
        if settings.smtp_url is not None:
            environ["BTEC_SMTP_URL"] = settings.smtp_url.get_secret_value()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "btecctl", "worker", "--json",
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await proc.stdout.readline()
                assert line, "the worker exited before it was ready"
                if b'"event": "ready"' in line:
                    break
        return cls(proc, json.loads(line))

    async def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await self.proc.wait()
                await self._reader
        except TimeoutError:
            self.proc.kill()
            raise
        return int(self.proc.returncode or 0)
