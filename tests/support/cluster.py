"""The shipped proxy and pooler configurations pointed at a test's loopback ports, and a small
btec cluster made of them: HAProxy (deploy/haproxy/haproxy.cfg) in front of several
`btecctl serve --no-worker`, `btecctl worker` processes, PgBouncer
(deploy/pgbouncer/pgbouncer.ini) in front of one PostgreSQL, one Redis and the S3 test server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.config.assets import PROJECT_ROOT
from server.platform.pgnames import database_name, with_database
from tests.support.env import free_port
from tests.support.wait import eventually_sync

HAPROXY = PROJECT_ROOT / "deploy" / "haproxy" / "haproxy.cfg"
PGBOUNCER = PROJECT_ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"


def haproxy_config(tmp_path: Path, listen: int, servers: list[int], fast: bool = False) -> Path:
    """The shipped HAProxy file with its two servers on `servers`. `fast`: checks every 300 ms
    (a test's drain is then short), and a stats socket to read each server's state from."""
    first, second = servers
    text = HAPROXY.read_text().replace("bind :80", f"bind 127.0.0.1:{listen}")
    text = text.replace("127.0.0.1:8081", f"127.0.0.1:{first}")
    text = text.replace("127.0.0.1:8082", f"127.0.0.1:{second}")
    if fast:
        text = text.replace("check inter 2s", "check inter 300ms")
        text = text.replace("slowstart 5s", "slowstart 1s")
        text = text.replace("global\n", f"global\n    stats socket {tmp_path}/haproxy.sock\n", 1)
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


def haproxy_states(tmp_path: Path) -> dict[str, str]:
    """Each server's state (UP, DOWN, ...) in the backend, read from the stats socket; none
    while HAProxy is starting."""
    data = b""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        try:
            sock.connect(str(tmp_path / "haproxy.sock"))
        except OSError:
            return {}
        sock.sendall(b"show stat\n")
        while chunk := sock.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["svname"]: r["status"].split()[0] for r in rows if r["pxname"] == "btec_api"
            and r["svname"] not in ("FRONTEND", "BACKEND")}  # fmt: skip


def pgbouncer_config(tmp_path: Path, direct: str, port: int) -> Path:
    """The shipped PgBouncer file, pointed at the test's database and port, trust on loopback."""
    server = urlsplit(direct)
    text = PGBOUNCER.read_text().replace(
        "btec = host=127.0.0.1 port=5432 dbname=btec",
        f"btec = host={server.hostname} port={server.port or 5432} dbname={database_name(direct)}",
    )
    text = text.replace("listen_port = 6432", f"listen_port = {port}")
    text = text.replace("auth_type = scram-sha-256", "auth_type = trust")
    text = text.replace("auth_file = /etc/pgbouncer/userlist.txt",
                        f"auth_file = {tmp_path}/userlist.txt\nunix_socket_dir =")  # fmt: skip
    (tmp_path / "userlist.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    path = tmp_path / "pgbouncer.ini"
    path.write_text(text)
    tmp_path.chmod(0o755)
    for f in (path, tmp_path / "userlist.txt"):
        f.chmod(0o644)
    return path


def pooled_url(direct: str, port: int) -> str:
    """`direct`'s database through PgBouncer on `port` (its database entry is `btec`)."""
    return with_database(direct, "btec").replace(f":{urlsplit(direct).port or 5432}/", f":{port}/")


def start_pgbouncer(binary: str, config: Path, port: int) -> subprocess.Popen[str]:
    """PgBouncer with `config`, once it accepts connections on `port`."""
    proc = subprocess.Popen([binary, "-u", "nobody", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip

    def listening() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    eventually_sync(listening, timeout=30, message="PgBouncer listens")
    return proc


@dataclass
class Worker:
    """`btecctl worker --json` with its own metrics port; its output is read as it comes."""

    environ: dict[str, str]
    metrics_port: int = field(default_factory=free_port)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        env = {**self.environ, "BTEC_WORKER_METRICS_PORT": str(self.metrics_port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "btecctl", "worker", "--json"],
                                     env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            entry = json.loads(line)
            self.lines.append(entry)
            if entry.get("event") == "ready":
                break
        else:
            raise AssertionError(f"the worker exited: {self.proc.wait()}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.append(json.loads(line))

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)


def btecctl(environ: dict[str, str], *args: str, timeout: float = 120) -> Any:
    """A btecctl command's JSON answer (it must exit 0)."""
    done = subprocess.run([sys.executable, "-m", "btecctl", *args, "--json"], env=environ,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def member_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of every member (and of btecctl beside them): the machine's but for
    BTEC_*, then `settings`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    return {**environ, "BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(data_dir), **settings}
