"""The server a run loads: one of btecctl's own, started for the run and gone after it, or one
at a URL; and what a run reads of it (its health document and its /metrics).

Its own server is `btecctl serve` in a scratch data dir (a temporary directory, removed
afterwards) on a free loopback port, with the embedded PostgreSQL and Redis, or (asked for
explicitly, to start faster) a scratch database made on BTEC_DATABASE_URL's PostgreSQL and
dropped afterwards. None of the operator's BTEC_* settings reach it: it runs on the defaults
plus what a load test needs (seed.SERVER_ENV: cheap argon2id, limits that never bite) and
tokens of its own for /metrics and the health details. It runs in a session of its own, so a
Ctrl-C in the terminal reaches btecctl alone, which stops the load first and then the server,
and it is sent SIGTERM if btecctl dies (Linux's parent-death signal).
"""

from __future__ import annotations

import collections
import contextlib
import json
import secrets
import shutil
import signal
import subprocess  # nosec B404 # starts btecctl serve itself, an argv list without a shell
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from btecctl.health import Reading, read, scrape
from btecctl.loadtest import seed
from btecctl.loadtest.children import child_env
from btecctl.loadtest.scenarios import Seed
from server.config.settings import Settings
from server.platform.children import die_with_parent

STARTUP_SECONDS = 180  # a first start makes a PostgreSQL cluster (initdb), slow on a busy machine
STOP_SECONDS = 60


class TargetError(RuntimeError):
    """btecctl's own server would not start or be seeded: what it said last."""


@dataclass
class Target:
    """Where the load goes, what btecctl knows of it, and the tokens it reads it with."""

    url: str
    own: bool
    health_token: str | None = None
    metrics_token: str | None = None
    seed_file: Path | None = None
    seeded: dict[str, int] = field(default_factory=dict)
    seed_tag: str | None = None
    pid: int | None = None

    def health(self) -> Reading:
        return read(self.url, self.health_token, 5.0, fresh=False)

    def environment(self, reading: Reading) -> str | None:
        return reading.doc.get("environment") if reading.doc else None

    def metrics(self) -> dict[str, Any]:
        """The server's own figures now, from /metrics; `{"error": ...}` when it refuses."""
        from pydantic import SecretStr

        token = SecretStr(self.metrics_token) if self.metrics_token else None
        try:
            families = scrape(self.url, token)
        except (LookupError, ConnectionError) as exc:
            return {"error": str(exc)}
        return _figures(families)


def _figures(families: list[Any]) -> dict[str, Any]:
    """What a run compares before and after: CPU, memory, requests by route and status, the
    database pool and the read cache."""
    plain: dict[str, float] = {}
    requests: dict[str, dict[str, int]] = {}
    for family in families:
        for sample in family.samples:
            if sample.name == "btec_http_requests_total":
                route = f"{sample.labels['method']} {sample.labels['route']}"
                by_status = requests.setdefault(route, {})
                by_status[sample.labels["status"]] = int(sample.value)
            elif not sample.labels and sample.name in PLAIN:
                plain[PLAIN[sample.name]] = sample.value
            elif sample.name in LABELLED:
                key = LABELLED[sample.name]
                plain[key] = plain.get(key, 0) + sample.value
    return {**plain, "requests": requests, "at": time.time()}


PLAIN = {
    "process_cpu_seconds_total": "cpu_seconds",
    "process_resident_memory_bytes": "rss_bytes",
    "process_open_fds": "open_fds",
    "btec_http_requests_in_progress": "requests_in_progress",
    "btec_db_pool_size": "db_pool_size",
    "btec_db_pool_idle": "db_pool_idle",
    "btec_db_pool_max": "db_pool_max",
    "btec_db_pool_acquire_seconds_count": "db_pool_acquires",
    "btec_db_pool_acquire_seconds_sum": "db_pool_acquire_seconds",
    "btec_db_pool_acquire_timeouts_total": "db_pool_acquire_timeouts",
    "btec_jobs_queued": "jobs_queued",
}
LABELLED = {"btec_cache_hits_total": "cache_hits", "btec_cache_misses_total": "cache_misses"}


def at_url(url: str, settings_token: str | None, metrics_token: str | None) -> Target:
    return Target(url=url, own=False, health_token=settings_token, metrics_token=metrics_token)


# btecctl's own server ----------------------------------------------------------------------


class _Served:
    """`btecctl serve --json` as a child; its output read as it comes, the last lines kept."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(  # nosec B603 # this interpreter running btecctl serve
            [sys.executable, "-m", "btecctl", "serve", "--host", "127.0.0.1", "--port", "0",
             "--json"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="btec-serve-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Until the server ends (its output is drained all along, so it never blocks)."""
        for raw in self.proc.stdout or ():
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if not self.ready.is_set() and '"event": "ready"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    self.url = json.loads(line)["url"]
                    self.ready.set()

    def wait_ready(self) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None:
                raise TargetError(f"btecctl serve exited ({self.proc.returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                raise TargetError(f"btecctl serve not ready in {STARTUP_SECONDS} s: {self.tail()}")
        return self.url

    def tail(self) -> str:
        return " | ".join(list(self.lines)[-8:]) or "no output"

    def stop(self) -> None:
        """SIGTERM (it drains and stops its embedded servers), SIGKILL past STOP_SECONDS."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_SECONDS)
        self._reader.join(STOP_SECONDS)


@dataclass(frozen=True)
class Seeding:
    """What to seed btecctl's own server with: the assessment workload of `sizes`, or
    `sizes.students` accounts alone; and whether passwords keep their real argon2id cost."""

    kind: Seed
    sizes: seed.Sizes
    real_hashing: bool = False


@contextlib.contextmanager
def own_server(
    settings: Settings, *, database_server: bool, seeding: Seeding | None
) -> Iterator[Target]:
    """btecctl's own server for one run, seeded as asked; stopped, its embedded servers and
    scratch data dir (or scratch database) gone when the run ends."""
    scratch = Path(tempfile.mkdtemp(prefix="btec-perf-"))
    server_env = seed.SERVER_ENV
    if seeding is not None and seeding.real_hashing:
        server_env = {k: v for k, v in server_env.items() if k not in seed.CHEAP}
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(_stop_embedded, scratch / "var")
            env = child_env(**server_env, BTEC_ENV_FILE="", BTEC_DATA_DIR=str(scratch / "var"),
                            BTEC_DRAIN_SECONDS="0", BTEC_METRICS_TOKEN=secrets.token_urlsafe(32),
                            BTEC_HEALTH_TOKEN=secrets.token_urlsafe(32))  # fmt: skip
            if database_server:
                env["BTEC_DATABASE_URL"] = stack.enter_context(_scratch_database(settings))
            served = _Served(env)
            stack.callback(served.stop)
            target = Target(url=served.wait_ready(), own=True, pid=served.proc.pid,
                            health_token=env["BTEC_HEALTH_TOKEN"],
                            metrics_token=env["BTEC_METRICS_TOKEN"])  # fmt: skip
            if seeding is not None:
                _seed(target, env, seeding, scratch / "seed.json")
            yield target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _scratch_database(settings: Settings) -> Iterator[str]:
    from server.platform.pgnames import with_database
    from server.schema.migrate_test import scratch_database

    if settings.database_url is None:
        raise ValueError("--use-database-server: BTEC_DATABASE_URL is not set")
    if settings.env == "production":
        raise ValueError("--use-database-server: refused with BTEC_ENV=production; a load test "
                         "never runs on production's database server")  # fmt: skip
    server = with_database(settings.database_url.get_secret_value(), "postgres")
    with scratch_database(server, prefix="btec_perf") as url:
        yield url


def _seed(target: Target, env: dict[str, str], seeding: Seeding, out: Path) -> None:
    seed.create_admin(env, seed.ADMIN_EMAIL, seed.PASSWORD)
    seed_into(target, seed.Admin(seed.ADMIN_EMAIL, seed.PASSWORD), seeding, out)


def seed_into(target: Target, admin: seed.Admin, seeding: Seeding, out: Path) -> None:
    """Seed the target as `admin`; the document the scenario reads is written to `out`."""
    import asyncio

    if seeding.kind == "accounts":
        made = seed.accounts_async(target.url, admin, seeding.sizes.students)
    else:
        made = seed.seed_async(target.url, admin, seeding.sizes)
    document = asyncio.run(made)
    out.write_text(json.dumps(document))
    target.seed_file, target.seeded, target.seed_tag = out, seed.counts(document), document["tag"]


def _stop_embedded(data_dir: Path) -> None:
    """Stop whatever embedded server is left in `data_dir` (its btecctl serve was killed)."""
    from server.platform.embedded import all_servers

    if data_dir.exists():
        for server in all_servers(data_dir):
            with contextlib.suppress(Exception):
                server.stop()
